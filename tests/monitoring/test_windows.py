"""Windows over logged events: spec parsing, event-time UTC days, count windows, the events table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from loopwatch.errors import InvalidInput
from loopwatch.application.monitoring import WindowSpec, events_frame, split
from loopwatch.records import PredictionEvent

UTC = timezone.utc
LOGGED_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(
    timestamp: datetime,
    *,
    row: int = 0,
    data: dict | None = None,
    prediction: list | None = None,
    probability: list[float] | None = None,
    logged_at: datetime = LOGGED_NOW,
    version: int = 1,
) -> PredictionEvent:
    return PredictionEvent(
        request_id=f"req-{row // 100}",
        row_index=row,
        model_name="churn",
        model_version=version,
        timestamp=timestamp,
        logged_at=logged_at,
        runtime_ms=2.0,
        row_runtime_ms=0.5,
        prediction=[1] if prediction is None else prediction,
        probability=[0.25, 0.75] if probability is None else probability,
        input_data_summary={},
        data={"watch_hours": 10.0 + row, "plan": "basic"} if data is None else data,
        request_type="replay",
        client_id="sim",
        fingerprint_id="f" * 16,
        replayed=timestamp < logged_at,
    )


# ------------------------------------------------------------------ WindowSpec


@pytest.mark.parametrize(
    "spec,length",
    [
        ("1h", timedelta(hours=1)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("2w", timedelta(weeks=2)),
        (" 1D ", timedelta(days=1)),
    ],
)
def test_time_specs(spec: str, length: timedelta) -> None:
    parsed = WindowSpec.parse(spec)
    assert parsed.length == length
    assert parsed.count is None


@pytest.mark.parametrize("spec,count", [("count:1", 1), ("count:500", 500), ("COUNT:1000", 1000)])
def test_count_specs(spec: str, count: int) -> None:
    parsed = WindowSpec.parse(spec)
    assert parsed.count == count
    assert parsed.length is None


@pytest.mark.parametrize(
    "spec",
    ["", "d", "0d", "0h", "-1d", "1m", "1s", "1.5d", "1 d", "1dd", "day", "count:", "count:0", "count:-5",
     "count:x", "count:1.5", "count 10"],
)
def test_bad_specs_are_invalid_input(spec: str) -> None:
    with pytest.raises(InvalidInput):
        WindowSpec.parse(spec)


def test_weeks_start_on_monday_and_days_at_utc_midnight() -> None:
    wednesday = datetime(2026, 1, 7, 15, 30, tzinfo=UTC)
    assert WindowSpec.parse("1w").start_of(wednesday) == datetime(2026, 1, 5, tzinfo=UTC)
    assert datetime(2026, 1, 5, tzinfo=UTC).weekday() == 0
    assert WindowSpec.parse("1d").start_of(wednesday) == datetime(2026, 1, 7, tzinfo=UTC)
    assert WindowSpec.parse("1h").start_of(wednesday) == datetime(2026, 1, 7, 15, tzinfo=UTC)
    # a moment given in another zone belongs to its UTC day
    late_in_new_york = datetime(2026, 1, 7, 21, 0, tzinfo=timezone(timedelta(hours=-5)))  # 02:00 UTC on the 8th
    assert WindowSpec.parse("1d").start_of(late_in_new_york) == datetime(2026, 1, 8, tzinfo=UTC)


# ------------------------------------------------------------------ split by time


def test_split_by_day_uses_event_time_and_utc_days() -> None:
    before_midnight = datetime(2026, 1, 5, 23, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 1, 6, 0, 1, tzinfo=UTC)
    # 23:30 at UTC-2 is 01:30 UTC on the 6th: the UTC day counts, not the sender's
    other_zone = datetime(2026, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    # replayed events: logged today, happened long ago; and in the wrong order
    events = [
        event(after_midnight, row=1),
        event(before_midnight, row=0),
        event(other_zone, row=2),
        event(datetime(2025, 6, 1, 8, 0, tzinfo=UTC), row=3),
    ]
    frame = events_frame(events, classes=(0, 1))
    windows = list(split(frame, WindowSpec.parse("1d")))
    assert [w.start for w in windows] == [
        datetime(2025, 6, 1, tzinfo=UTC),
        datetime(2026, 1, 5, tzinfo=UTC),
        datetime(2026, 1, 6, tzinfo=UTC),
    ]
    assert all(w.end - w.start == timedelta(days=1) for w in windows)
    assert [w.n for w in windows] == [1, 1, 2]
    assert windows[1].frame["watch_hours"].tolist() == [10.0]  # row 0, at 23:59
    assert sorted(windows[2].frame["watch_hours"].tolist()) == [11.0, 12.0]
    # the logging time plays no part: every event was logged on the same day
    assert {e.logged_at for e in events} == {LOGGED_NOW}
    for w in windows:
        assert w.frame["__timestamp"].map(lambda t: w.start <= t < w.end).all()


def test_split_skips_empty_windows_and_keeps_timezone() -> None:
    days = [datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 9, 10, tzinfo=UTC)]
    frame = events_frame([event(t, row=i) for i, t in enumerate(days)], classes=(0, 1))
    windows = list(split(frame, WindowSpec.parse("1d")))
    assert [w.start.date().isoformat() for w in windows] == ["2026-01-05", "2026-01-09"]
    assert all(w.start.utcoffset() == timedelta(0) for w in windows)


def test_split_by_hour_and_week() -> None:
    base = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
    times = [base + timedelta(minutes=m) for m in (5, 59, 61, 125)] + [base + timedelta(days=7, minutes=1)]
    frame = events_frame([event(t, row=i) for i, t in enumerate(times)], classes=(0, 1))
    hourly = list(split(frame, WindowSpec.parse("1h")))
    assert [w.n for w in hourly] == [2, 1, 1, 1]
    weekly = list(split(frame, WindowSpec.parse("1w")))
    assert [(w.start, w.n) for w in weekly] == [(base, 4), (base + timedelta(days=7), 1)]


def test_split_of_nothing_is_nothing() -> None:
    assert list(split(pd.DataFrame(), WindowSpec.parse("1d"))) == []


# ------------------------------------------------------------------ split by count


def test_split_by_count_in_event_time_order() -> None:
    base = datetime(2026, 1, 5, tzinfo=UTC)
    # 25 events given newest first
    events = [event(base + timedelta(minutes=25 - i), row=i) for i in range(25)]
    windows = list(split(events_frame(events, classes=(0, 1)), WindowSpec.parse("count:10")))
    assert [w.n for w in windows] == [10, 10, 5]
    # each window spans its first and last event, in time order, without overlap
    for w in windows:
        stamps = list(w.frame["__timestamp"])
        assert stamps == sorted(stamps)
        assert (w.start, w.end) == (stamps[0], stamps[-1])
    assert windows[0].end < windows[1].start
    assert windows[0].start == base + timedelta(minutes=1)
    assert windows[-1].end == base + timedelta(minutes=25)


# ------------------------------------------------------------------ the events table


def test_events_frame_of_a_classifier() -> None:
    t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    events = [
        event(t, row=0, prediction=[1], probability=[0.2, 0.8]),
        event(t, row=1, prediction=[0], probability=[0.9, 0.1], data={"watch_hours": None, "plan": "pro"}),
    ]
    frame = events_frame(events, classes=(0, 1))
    assert {"watch_hours", "plan", "prediction", "probability_0", "probability_1"} <= set(frame.columns)
    # the model's outputs are profiled as strings for classifiers: the events must match
    assert frame["prediction"].tolist() == ["1", "0"]
    assert frame["probability_1"].tolist() == [0.8, 0.1]
    assert frame["probability_0"].tolist() == [0.2, 0.9]
    assert frame["plan"].tolist() == ["basic", "pro"]
    assert pd.isna(frame["watch_hours"].iloc[1])
    facts = {c for c in frame.columns if c.startswith("__")}
    assert {"__timestamp", "__version", "__client_id", "__request_id", "__has_data"} <= facts
    assert frame["__has_data"].all()


def test_events_frame_of_a_regressor_and_rows_without_data() -> None:
    t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    events = [
        event(t, row=0, prediction=[3.5], probability=[]),
        event(t, row=1, prediction=[1.25], probability=[], data={}),
    ]
    frame = events_frame(events)  # no classes: a regressor
    assert frame["prediction"].tolist() == [3.5, 1.25]
    assert not any(c.startswith("probability_") for c in frame.columns)
    no_data = PredictionEvent(**{**events[1].__dict__, "data": None})
    assert events_frame([no_data])["__has_data"].tolist() == [False]
