"""Window summaries in the store (migration 12), on SQLite and PostgreSQL alike: round trip,
merge on write and on read, deletion by range, the watermark, events by when they were logged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from loopwatch.errors import InvalidInput
from loopwatch.stores import Store
from loopwatch.stores.base import to_micros
from loopwatch.stores.sql_summaries import decode_summary, encode_summary
from loopwatch.summaries.window import SummaryLayout, summarise_frame
from tests.stores.builders import make_request, write_logged_at
from tests.summaries.test_conformance import events, exact_view

pytest_plugins = ["tests.postgres_fixtures"]

LAYOUT = SummaryLayout(numeric={"x": (-1.0, 0.0, 1.0)}, categorical=("c",), classes=("no", "yes"),
                       output_edges={"probability_yes": (0.5,), "probability_no": (0.5,)}, sample_k=30, client_k=5)
DAY = datetime(2026, 2, 2, tzinfo=timezone.utc)


def hours(rng: np.random.Generator, n: int, offset: int, model: str = "churn") -> dict:
    frame = events(rng, n, offset)
    # spread over the day's first six hours
    frame["__timestamp"] = [DAY + timedelta(seconds=int(s)) for s in rng.integers(0, 6 * 3600, n)]
    return summarise_frame(frame, model=model, layouts={1: LAYOUT})


def test_summaries_round_trip_and_merge_on_write(store: Store) -> None:
    rng = np.random.default_rng(1)
    first, second = hours(rng, 300, 0), hours(rng, 200, 10_000)
    assert store.window_summaries("churn") == [] and store.summary_watermark("churn") is None
    assert store.merge_window_summaries("churn", list(first.values()), logged_through=50) == len(first)
    stored = store.window_summaries("churn")
    assert [(s.version, s.start) for s in stored] == sorted(first)
    for s in stored:
        assert s == first[(s.version, s.start)].stored()
    store.merge_window_summaries("churn", list(second.values()), logged_through=40)  # never backwards
    assert store.summary_watermark("churn") == 50
    for s in store.window_summaries("churn"):
        want = [p[(1, s.start)] for p in (first, second) if (1, s.start) in p]
        expected = want[0] if len(want) == 1 else want[0].merge(want[1])
        assert exact_view(s) == exact_view(expected.stored())
    assert sum(s.n for s in store.window_summaries("churn")) == 500
    store.set_summary_watermark("churn", None)
    assert store.summary_watermark("churn") is None
    # the payload: compressed JSON, several times smaller than the JSON
    one = stored[0]
    assert decode_summary(encode_summary(one)) == one


def test_a_range_is_merged_on_read_from_days_and_hours(store: Store) -> None:
    rng = np.random.default_rng(2)
    built = hours(rng, 400, 0)
    store.merge_window_summaries("churn", list(built.values()))
    whole = store.read_window("churn", version=1, start=DAY, end=DAY + timedelta(days=1))
    assert whole is not None and whole.n == 400
    # roll the first three hours up into a day row (as retention does), and read again
    early = store.window_summaries("churn", end=DAY + timedelta(hours=3))
    assert store.delete_window_summaries("churn", before=DAY + timedelta(hours=3)) == len(early)
    day = early[0]
    for s in early[1:]:
        day = day.merge(s)
    store.put_window_summaries("churn", [day], kind="day")
    again = store.read_window("churn", version=1, start=DAY, end=DAY + timedelta(days=1))
    assert again is not None and exact_view(again)["features"] == exact_view(whole)["features"]
    assert store.read_window("churn", version=2, start=DAY, end=DAY + timedelta(days=1)) is None
    assert store.read_window("churn", version=1, start=DAY + timedelta(hours=3),
                             end=DAY + timedelta(hours=4)).n == built[(1, DAY + timedelta(hours=3))].n
    with pytest.raises(InvalidInput, match="kind"):
        store.window_summaries("churn", kind="week")
    assert store.summarised_models() == ["churn"]


def test_a_stored_window_on_another_layout_is_refused(store: Store) -> None:
    rng = np.random.default_rng(3)
    store.merge_window_summaries("churn", list(hours(rng, 50, 0).values()))
    moved = SummaryLayout.from_dict({**LAYOUT.to_dict(), "numeric": {"x": [0.5]}})
    frame = events(rng, 20, 500)
    frame["__timestamp"] = DAY
    other = summarise_frame(frame, model="churn", layouts={1: moved})
    if (1, DAY) in {(s.version, s.start) for s in store.window_summaries("churn")}:
        with pytest.raises(InvalidInput, match="layouts"):
            store.merge_window_summaries("churn", list(other.values()))
    store.delete_window_summaries("churn", version=1)
    store.merge_window_summaries("churn", list(other.values()))
    assert [s.layout_id for s in store.window_summaries("churn")] == [moved.layout_id]


def test_events_come_by_when_they_were_logged_not_their_event_time(store: Store) -> None:
    t1, t2 = DAY + timedelta(days=3), DAY + timedelta(days=3, seconds=5)
    # logged second, but about an older moment (a backfill)
    write_logged_at(store, t1, [make_request("a1", n_rows=2, received_at=DAY + timedelta(days=2))])
    write_logged_at(store, t2, [make_request("b1", n_rows=3, received_at=DAY),
                                make_request("b2", n_rows=1, received_at=DAY)])
    write_logged_at(store, t2, [make_request("x1", model_name="other")])
    batches = list(store.iter_events_logged("iris", after=None, through=to_micros(t2), batch_requests=2))
    # the second batch would end inside one commit (b1, b2): it takes the whole commit
    assert [([e.request_id for e in batch], reached) for batch, reached in batches] == [
        (["a1", "a1", "b1", "b1", "b1", "b2"], to_micros(t2))]
    later = [e.request_id for batch, _ in store.iter_events_logged("iris", after=to_micros(t1), through=to_micros(t2))
             for e in batch]
    assert later == ["b1", "b1", "b1", "b2"]
    one = list(store.iter_events_logged("iris", after=None, through=to_micros(t2), batch_requests=1))
    assert [reached for _, reached in one] == [to_micros(t1), to_micros(t2)]
    window = store.iter_window_events("iris", version=1, start=DAY, end=DAY + timedelta(hours=1),
                                      logged_through=to_micros(t2))
    assert sorted({e.request_id for e in window}) == ["b1", "b2"]
    assert store.iter_window_events("iris", version=1, start=DAY, end=DAY + timedelta(hours=1),
                                    logged_through=to_micros(t1)) == []
    assert list(store.iter_events_logged("iris", after=to_micros(t2), through=to_micros(t2) + 10)) == []
    assert store.latest_logged_at("iris") == to_micros(t2) and store.latest_logged_at("none") is None


def test_a_batch_of_the_log_is_bounded_by_events_at_a_commits_end(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingested file commits thousands of rows in one request: a batch takes whole commits
    until it holds about ``BATCH_EVENTS`` events, however few requests that is."""
    from loopwatch.stores import sql_summaries

    monkeypatch.setattr(sql_summaries, "BATCH_EVENTS", 5)
    moments = [DAY + timedelta(days=3, seconds=s) for s in range(4)]
    write_logged_at(store, moments[0], [make_request("a", n_rows=4, received_at=DAY)])
    write_logged_at(store, moments[1], [make_request("b", n_rows=3, received_at=DAY),
                                        make_request("c", n_rows=3, received_at=DAY)])
    write_logged_at(store, moments[2], [make_request("d", n_rows=6, received_at=DAY)])
    write_logged_at(store, moments[3], [make_request("e", n_rows=1, received_at=DAY)])
    batches = list(store.iter_events_logged("iris", after=None, through=to_micros(moments[3])))
    # a (4) is short of 5, so b's commit joins it whole; d alone is over; e is the rest
    assert [(sorted({e.request_id for e in batch}), reached) for batch, reached in batches] == [
        (["a", "b", "c"], to_micros(moments[1])), (["d"], to_micros(moments[2])), (["e"], to_micros(moments[3]))]
    columns = list(store.iter_event_columns_logged("iris", after=None, through=to_micros(moments[3])))
    assert [reached for _, reached in columns] == [reached for _, reached in batches]
