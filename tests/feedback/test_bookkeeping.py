"""Label bookkeeping: coverage and delay percentiles per window, against pandas and by hand."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.feedback.bookkeeping import label_coverage, summarize_outcomes, window_start
from loopwatch.records import LabelOutcome

UTC = timezone.utc
DAY = timedelta(days=1)
T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday

moments = st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda m: m.replace(tzinfo=UTC)
)


@given(moment=moments)
def test_day_and_week_windows_are_utc_calendar_days_and_monday_weeks(moment: datetime) -> None:
    day = window_start(moment, DAY)
    assert day == moment.replace(hour=0, minute=0, second=0, microsecond=0)
    week = window_start(moment, timedelta(weeks=1))
    assert week.weekday() == 0 and week <= moment < week + timedelta(weeks=1)
    hours = window_start(moment, timedelta(hours=5))
    assert hours <= moment < hours + timedelta(hours=5)


def test_coverage_and_delays_per_day_match_pandas() -> None:
    rng = np.random.default_rng(0)
    predictions = [T0 + timedelta(hours=float(h)) for h in rng.uniform(0, 72, size=300)]
    labelled = [p for p in predictions if rng.random() < 0.6]
    delays = rng.exponential(30, size=len(labelled))
    pairs = [(p, p + timedelta(hours=float(d))) for p, d in zip(labelled, delays)]
    counts = pd.Series(1, index=[window_start(p, DAY) for p in predictions]).groupby(level=0).sum()

    result = label_coverage(list(counts.items()), pairs, length=DAY)

    frame = pd.DataFrame({"day": [window_start(p, DAY) for p, _ in pairs], "hours": delays})
    assert [w.start for w in result.windows] == [T0, T0 + DAY, T0 + 2 * DAY]
    for window in result.windows:
        hours = frame.loc[frame["day"] == window.start, "hours"]
        assert window.end == window.start + DAY
        assert window.predictions == counts[window.start]
        assert window.labelled == len(hours)
        assert window.coverage == pytest.approx(len(hours) / counts[window.start])
        assert window.delay.p50_hours == pytest.approx(hours.quantile(0.5), rel=1e-9)
        assert window.delay.p90_hours == pytest.approx(hours.quantile(0.9), rel=1e-9)
        assert window.delay.max_hours == pytest.approx(hours.max(), rel=1e-9)
    assert (result.predictions, result.labelled) == (300, len(pairs))
    assert result.delay.p90_hours == pytest.approx(pd.Series(delays).quantile(0.9), rel=1e-9)
    out = result.to_dict()
    assert out["windows"][0]["start"] == "2025-03-03T00:00:00Z" and out["window_seconds"] == 86400.0
    assert set(out["windows"][0]["delay_hours"]) == {"p50", "p90", "max"}


def test_windows_without_labels_or_predictions_and_negative_delays() -> None:
    result = label_coverage(
        [(T0, 4), (T0 + DAY + timedelta(hours=3), 2)],
        [(T0 + timedelta(hours=1), T0), (T0 + 5 * DAY, T0 + 6 * DAY)],  # a label before its prediction
        length=DAY,
    )
    first, second, orphan = result.windows
    assert (first.predictions, first.labelled, first.coverage, first.delay.max_hours) == (4, 1, 0.25, -1.0)
    assert (second.start, second.labelled, second.coverage, second.delay.p50_hours) == (T0 + DAY, 0, 0.0, None)
    assert (orphan.start, orphan.predictions, orphan.coverage) == (T0 + 5 * DAY, 0, None)
    empty = label_coverage([], [], length=DAY)
    assert (empty.windows, empty.coverage, empty.delay.p50_hours) == ((), None, None)


def test_the_first_and_last_days_there_are() -> None:
    first, last = datetime(1, 1, 1, 3, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)
    result = label_coverage([(first, 1), (last, 2)], [(last, last)], length=timedelta(weeks=1))
    assert [(w.start, w.predictions, w.labelled) for w in result.windows] == [
        (datetime(1, 1, 1, tzinfo=UTC), 1, 0), (datetime(9999, 12, 27, tzinfo=UTC), 2, 1)
    ]
    assert result.windows[-1].end == datetime.max.replace(tzinfo=UTC)
    with pytest.raises(InvalidInput, match="too early"):
        label_coverage([(first, 1)], [], length=timedelta(hours=5))


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        label_coverage([], [], length=timedelta(0))
    with pytest.raises(InvalidInput):
        label_coverage([(T0, -1)], [], length=DAY)


@settings(max_examples=60, deadline=None)
@given(
    predictions=st.lists(moments, min_size=1, max_size=40),
    share=st.floats(0, 1),
    delays=st.lists(st.floats(-10, 1000, allow_nan=False), min_size=40, max_size=40),
    hours=st.integers(1, 24 * 14),
    seed=st.integers(0, 2**16),
)
def test_totals_bounds_and_order_invariance(
    predictions: list[datetime], share: float, delays: list[float], hours: int, seed: int
) -> None:
    length = timedelta(hours=hours)
    labelled = predictions[: int(len(predictions) * share)]
    pairs = [(p, p + timedelta(hours=d)) for p, d in zip(labelled, delays)]
    counts = [(p, 1) for p in predictions]
    result = label_coverage(counts, pairs, length=length)
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    assert label_coverage(list(reversed(counts)), shuffled, length=length) == result
    assert result.predictions == len(predictions) and result.labelled == len(pairs)
    assert [w.start for w in result.windows] == sorted({window_start(p, length) for p in predictions})
    for w in result.windows:
        assert 0 <= w.labelled <= w.predictions and (w.coverage is None or 0 <= w.coverage <= 1)
        if w.labelled:
            assert w.delay.p50_hours <= w.delay.p90_hours <= w.delay.max_hours  # type: ignore[operator]


def test_outcomes_are_counted_and_the_unstored_listed_with_their_position() -> None:
    outcomes = [
        LabelOutcome("stored", "r", 0), LabelOutcome("duplicate", "r", 0), LabelOutcome("unmatched", error="none"),
        LabelOutcome("corrected", "r", 1), LabelOutcome("stored", "r", 2),
    ]
    summary = summarize_outcomes(outcomes)
    assert {k: summary[k] for k in ("stored", "duplicates", "corrected", "unmatched")} == {
        "stored": 2, "duplicates": 1, "corrected": 1, "unmatched": 1
    }
    assert [(o["index"], o["status"]) for o in summary["outcomes"]] == [(1, "duplicate"), (2, "unmatched"), (3, "corrected")]
    assert summary["outcomes"][1]["reason"] == "none"
