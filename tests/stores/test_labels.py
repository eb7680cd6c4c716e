"""Labels: matched to predictions by request and row or by entity, idempotent, corrected
with history, read back in time order; entity ids on events; predictions per window."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.feedback.bookkeeping import window_start
from loopwatch.records import Label, LabelOutcome, ModelSettings
from loopwatch.stores import EventQuery, Store
from loopwatch.stores.export import write_ndjson, write_parquet
from tests.stores.builders import T0, days, make_request, version_kwargs, write_logged_at
from tests.stores.rawsql import table_count

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc


def label(value: object, at: datetime = T0 + timedelta(days=1), **key: object) -> Label:
    return Label(model_name="churn", label=value, label_time=at, **key)  # type: ignore[arg-type]


def by_row(value: object, request_id: str = "r1", row: int = 0, **extra: object) -> Label:
    return label(value, request_id=request_id, row_index=row, **extra)


@pytest.fixture
def logged(store: Store) -> Store:
    """Model "churn": request r1 of three rows at T0 (entities c1, -, c2), r2 of one row at T0+1d."""
    store.write_requests(
        [
            make_request("r1", n_rows=3, model_name="churn", entity_ids=["c1", None, "c2"]),
            make_request("r2", n_rows=1, model_name="churn", received_at=T0 + days(1), model_version=2),
            make_request("other", n_rows=1, model_name="iris", entity_ids=["c1"]),
        ]
    )
    return store


def test_entity_ids_are_logged_per_row_and_exported(store: Store, tmp_path: Path) -> None:
    store.write_requests([make_request("e1", n_rows=3, entity_ids=["a", None, "ü-7"]), make_request("e2", n_rows=1)])
    events = list(store.iter_events(EventQuery()))
    assert [(e.request_id, e.entity_id) for e in events] == [("e1", "a"), ("e1", None), ("e1", "ü-7"), ("e2", None)]
    assert [e.to_dict()["entity_id"] for e in events] == ["a", None, "ü-7", None]
    with (tmp_path / "events.ndjson").open("wb") as handle:
        write_ndjson(events, handle)
    assert '"entity_id":"a"' in (tmp_path / "events.ndjson").read_text()
    import pyarrow.parquet as pq

    write_parquet(events, tmp_path / "events.parquet")
    assert pq.read_table(tmp_path / "events.parquet").column("entity_id").to_pylist() == ["a", None, "ü-7", None]


def test_a_label_by_request_and_row_is_stored_with_its_prediction_facts(logged: Store) -> None:
    received = datetime(2024, 6, 1, 8, tzinfo=UTC)
    at = datetime(2024, 5, 20, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    outcome = logged.write_labels([by_row("yes", at=at, client_id="crm", received_at=received)])
    assert outcome == [LabelOutcome("stored", "r1", 0)]
    (stored,) = list(logged.iter_labels("churn"))
    assert stored.to_dict() == {
        "model_name": "churn", "request_id": "r1", "row_index": 0, "entity_id": "c1", "model_version": 1,
        "label": "yes", "label_time": "2024-05-20T07:30:00Z", "prediction_time": "2024-05-17T12:30:45.123456Z",
        "client_id": "crm", "received_at": "2024-06-01T08:00:00Z", "revision": 0,
    }
    assert stored.label_time.tzinfo == UTC and stored.delay_seconds == (at - T0).total_seconds()
    assert logged.label_history("churn", "r1", 0) == [stored]


def test_received_at_defaults_to_the_time_of_writing(logged: Store) -> None:
    before = datetime.now(UTC)
    logged.write_labels([by_row(1)])
    (stored,) = list(logged.iter_labels("churn"))
    assert before - timedelta(seconds=1) <= stored.received_at <= datetime.now(UTC) + timedelta(seconds=1)


DUPLICATES = [(1, 1), (1, 1.0), (2.5, 2.5), ("yes", "yes"), (True, True), (0, -0.0)]
CORRECTIONS = [(1, 2), (1, True), (1, "1"), ("yes", "Yes"), (False, 0), (0.5, 0.25)]


def test_the_same_value_again_is_a_duplicate_and_changes_nothing(store: Store) -> None:
    store.write_requests([make_request(f"d{i}", n_rows=1, model_name="churn") for i in range(len(DUPLICATES))])
    for i, (first, again) in enumerate(DUPLICATES):
        store.write_labels([by_row(first, f"d{i}", client_id="a", received_at=T0 + days(2))])
        before = list(store.iter_labels("churn"))
        outcome = store.write_labels([by_row(again, f"d{i}", at=T0 + days(9), client_id="b")])
        assert outcome == [LabelOutcome("duplicate", f"d{i}", 0)], (first, again)
        assert list(store.iter_labels("churn")) == before
        assert table_count(store, "label_revisions") == i + 1


def test_another_value_corrects_the_label_and_keeps_the_old_one(store: Store) -> None:
    store.write_requests([make_request(f"c{i}", n_rows=1, model_name="churn") for i in range(len(CORRECTIONS))])
    for i, (first, other) in enumerate(CORRECTIONS):
        rid = f"c{i}"
        store.write_labels([by_row(first, rid, at=T0 + days(1), client_id="a", received_at=T0 + days(1))])
        outcome = store.write_labels([by_row(other, rid, at=T0 + days(3), client_id="b", received_at=T0 + days(4))])
        assert outcome == [LabelOutcome("corrected", rid, 0)], (first, other)
        (current,) = [c for c in store.iter_labels("churn") if c.request_id == rid]
        assert (current.label, current.revision, current.client_id) == (other, 1, "b")
        assert type(current.label) is type(other)
        history = store.label_history("churn", rid, 0)
        assert [(h.label, h.revision, h.label_time, h.received_at, h.client_id) for h in history] == [
            (first, 0, T0 + days(1), T0 + days(1), "a"),
            (other, 1, T0 + days(3), T0 + days(4), "b"),
        ]
        assert [type(h.label) for h in history] == [type(first), type(other)]


def test_corrections_count_up_and_may_return_to_an_earlier_value(logged: Store) -> None:
    values = ["a", "b", "b", "c", "a"]
    statuses = [logged.write_labels([by_row(v)])[0].status for v in values]
    assert statuses == ["stored", "corrected", "duplicate", "corrected", "corrected"]
    assert [(h.label, h.revision) for h in logged.label_history("churn", "r1", 0)] == [
        ("a", 0), ("b", 1), ("c", 2), ("a", 3)
    ]
    assert [(c.label, c.revision) for c in logged.iter_labels("churn")] == [("a", 3)]


def test_labels_of_one_row_in_one_batch_apply_in_their_order(logged: Store) -> None:
    outcomes = logged.write_labels([by_row("x"), by_row(1, "r2"), by_row("x"), by_row("y"), by_row(2, "r2")])
    assert [o.status for o in outcomes] == ["stored", "stored", "duplicate", "corrected", "corrected"]
    assert [(c.request_id, c.label) for c in logged.iter_labels("churn")] == [("r1", "y"), ("r2", 2)]


def test_labels_no_prediction_fits_are_unmatched_and_not_stored(logged: Store) -> None:
    outcomes = logged.write_labels(
        [
            by_row("a", "nope", 0),
            by_row("b", "r1", 3),  # r1 has rows 0-2
            by_row("c", "other", 0),  # a prediction of another model
            label("d", entity_id="c9"),
            label("e", entity_id="ü"),
            by_row("ok", "r1", 1),
        ]
    )
    assert [o.status for o in outcomes] == ["unmatched"] * 5 + ["stored"]
    assert [(o.request_id, o.row_index) for o in outcomes[:3]] == [("nope", 0), ("r1", 3), ("other", 0)]
    assert all(o.error and "no prediction of model 'churn'" in o.error for o in outcomes[:5])
    assert outcomes[-1] == LabelOutcome("stored", "r1", 1)
    assert table_count(logged, "labels") == 1 and table_count(logged, "label_revisions") == 1
    assert logged.write_labels([]) == []


def test_an_entity_id_finds_the_latest_prediction_at_or_before_the_label(store: Store) -> None:
    store.write_requests(
        [
            make_request(f"p{day}", n_rows=1, model_name="churn", received_at=T0 + days(day), entity_ids=["cust"])
            for day in (0, 2, 5)
        ]
        + [make_request("iris-later", n_rows=1, model_name="iris", received_at=T0 + days(9), entity_ids=["cust"])]
    )
    cases = [(T0 + days(3), "p2"), (T0 + days(5), "p5"), (T0 + days(30), "p5"), (T0 + days(0.5), "p0"),
             (T0 - days(1), "p5")]  # every prediction came later: the latest one
    for i, (at, expected) in enumerate(cases):
        (outcome,) = store.write_labels([Label(model_name="churn", label=i, label_time=at, entity_id="cust")])
        assert (outcome.request_id, outcome.row_index) == (expected, 0), at
    found = {c.request_id: c for c in store.iter_labels("churn")}
    assert set(found) == {"p0", "p2", "p5"}
    assert found["p5"].entity_id == "cust" and found["p5"].prediction_time == T0 + days(5)
    assert found["p5"].revision == 2  # three labels for p5: two corrections after the first


def test_iter_labels_orders_by_the_chosen_time_and_bounds_it(store: Store) -> None:
    store.write_requests([make_request(f"q{i}", n_rows=1, model_name="churn", received_at=T0 + days(i)) for i in range(5)])
    # label delays run backwards, so label-time order is the reverse of prediction-time order
    store.write_labels(
        [Label(model_name="churn", label=i, label_time=T0 + days(10 - i), request_id=f"q{i}", row_index=0,
               received_at=T0 + days(20)) for i in range(5)]
    )
    assert [c.label for c in store.iter_labels("churn")] == [4, 3, 2, 1, 0]
    assert [c.label for c in store.iter_labels("churn", by="prediction_time")] == [0, 1, 2, 3, 4]
    # since inclusive, until exclusive, on the chosen time
    assert [c.label for c in store.iter_labels("churn", since=T0 + days(7), until=T0 + days(9))] == [3, 2]
    assert [c.label for c in store.iter_labels("churn", since=T0 + days(1), until=T0 + days(3),
                                               by="prediction_time")] == [1, 2]
    assert list(store.iter_labels("iris")) == []
    with pytest.raises(InvalidInput):
        store.iter_labels("churn", by="logged_at")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.iter_labels("churn", since=datetime(2024, 1, 1))


def test_ties_in_time_are_ordered_by_arrival_and_pages_lose_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import loopwatch.stores.sql_feedback as sql_feedback

    monkeypatch.setattr(sql_feedback, "LABEL_PAGE_ROWS", 3)
    store.write_requests([make_request("t", n_rows=11, model_name="churn")])
    arrivals = [T0 + timedelta(seconds=s) for s in (5, 3, 9, 1, 1, 7, 2, 8, 4, 6, 0)]
    store.write_labels(
        [Label(model_name="churn", label=i, label_time=T0 + days(1) if i < 6 else T0 + days(2), request_id="t",
               row_index=i, received_at=arrivals[i]) for i in range(11)]
    )
    found = list(store.iter_labels("churn"))
    expected = sorted(range(11), key=lambda i: (i >= 6, arrivals[i], i))
    assert [c.row_index for c in found] == expected


def test_erasing_a_request_erases_its_labels_and_their_history(logged: Store) -> None:
    logged.write_labels([by_row("a"), by_row("b"), by_row("c", "r1", 2), by_row(1, "r2")])
    assert logged.delete_request("r1") == 3
    assert [c.request_id for c in logged.iter_labels("churn")] == ["r2"]
    assert logged.label_history("churn", "r1", 0) == []
    assert table_count(logged, "label_revisions") == 1


def test_retention_removes_the_labels_of_removed_predictions(store: Store) -> None:
    store.create_model_version(**version_kwargs("churn"))
    store.set_model_settings("churn", ModelSettings(retention_days=10))
    # "new" replays an event older than "old"'s: the day each was logged is what counts
    write_logged_at(store, T0, [make_request("old", n_rows=1, model_name="churn", received_at=T0)])
    write_logged_at(store, T0 + days(20), [make_request("new", n_rows=1, model_name="churn",
                                                        received_at=T0 - days(9), replayed=True)])
    store.write_labels([by_row(1, "old"), by_row(2, "new"), by_row(3, "old")])
    assert store.apply_retention(T0 + days(25)) == {"churn": 1}
    assert [c.request_id for c in store.iter_labels("churn")] == ["new"]
    assert table_count(store, "label_revisions") == 1


def test_concurrent_writers_of_one_row_leave_a_consistent_history(logged: Store) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(15):
                logged.write_labels([by_row(f"w{worker}-{i}"), by_row(f"w{worker}-{i}", "r1", 1)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for row in (0, 1):
        history = logged.label_history("churn", "r1", row)
        assert [h.revision for h in history] == list(range(45))
        current = next(c for c in logged.iter_labels("churn") if c.row_index == row)
        assert (current.revision, current.label) == (44, history[-1].label)


LENGTHS = [timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(hours=5)]


def test_predictions_per_window_agree_with_the_windows_of_bookkeeping(store: Store) -> None:
    moments = [T0 + timedelta(hours=h * 7.5) for h in range(40)] + [
        datetime(1969, 12, 30, 5, tzinfo=UTC), datetime(1, 1, 3, 5, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
    ]
    store.write_requests(
        [make_request(f"w{i}", n_rows=2, model_name="churn", received_at=m) for i, m in enumerate(moments)]
    )
    for length in LENGTHS:
        _check_windows(store, moments, length)


def _check_windows(store: Store, moments: list[datetime], length: timedelta) -> None:
    expected: dict[datetime, int] = {}
    for m in moments:
        expected[window_start(m, length)] = expected.get(window_start(m, length), 0) + 2
    assert store.count_events_by_window("churn", length=length) == sorted(expected.items())
    since, until = T0 + days(2), T0 + days(5)
    inside: dict[datetime, int] = {}
    for m in moments:
        if since <= m < until:
            inside[window_start(m, length)] = inside.get(window_start(m, length), 0) + 2
    assert store.count_events_by_window("churn", length=length, since=since, until=until) == sorted(inside.items())
    assert store.count_events_by_window("iris", length=length) == []


def test_predictions_per_window_leave_out_the_candidates_shadow_events(store: Store) -> None:
    # a served request of four rows and the candidate's shadow of it, with the same event times
    store.write_requests([
        make_request("served", n_rows=4, model_name="churn", received_at=T0),
        make_request("served:shadow", n_rows=4, model_name="churn", model_version=2, request_type="shadow",
                     received_at=T0),
        make_request("batch", n_rows=2, model_name="churn", request_type="batch", received_at=T0 + days(1)),
    ])
    length = timedelta(days=1)
    assert store.count_events_by_window("churn", length=length) == [
        (window_start(T0, length), 4), (window_start(T0 + days(1), length), 2)
    ]
    # a label is for the served prediction: one naming the shadow is unmatched, and says why
    (outcome,) = store.write_labels([by_row(1, "served:shadow", 0)])
    assert outcome.status == "unmatched" and "shadow" in (outcome.error or "")
    assert [o.status for o in store.write_labels([by_row(1, "served", 0)])] == ["stored"]
