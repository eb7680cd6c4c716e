"""write_requests: one request becomes N events; idempotency; batches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.errors import StoreError
from loopwatch.records import RequestOutcome
from loopwatch.records.jsonutil import loads
from loopwatch.stores import EventQuery, Store, StoredRequest
from tests.stores.builders import T0, event_dict, expected_events, fingerprint, make_request
from tests.stores.rawsql import raw_rows, table_count

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc


def events_of(store: Store, request_id: str) -> list:
    return store.query_events(EventQuery(request_id=request_id)).events


def test_one_request_of_n_rows_becomes_n_events(store: Store) -> None:
    request = make_request("req-n", n_rows=7)
    before = datetime.now(UTC)
    assert store.write_requests([request]) == [RequestOutcome("stored", request.response)]
    after = datetime.now(UTC)

    events = events_of(store, "req-n")
    assert [e.request_id for e in events] == ["req-n"] * 7
    assert [e.row_index for e in events] == list(range(7))
    assert [event_dict(e) for e in events] == expected_events(request)
    for e in events:
        assert e.timestamp == T0 and e.timestamp.tzinfo == UTC
        assert e.logged_at.tzinfo == UTC
        assert before - timedelta(seconds=1) <= e.logged_at <= after + timedelta(seconds=1)
    assert len({e.logged_at for e in events}) == 1
    assert store.count_events() == 7
    assert table_count(store, "requests") == 1


def test_every_field_round_trips(store: Store) -> None:
    received = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=-7, minutes=-30)))
    request = make_request(
        "req-fields",
        model_name="churn.v2_model-x",
        model_version=17,
        request_type="batch",
        client_id="tenant/ü-42",
        received_at=received,
        predictions=[[1.5], ["yes", 0.25], [None], [[1, 2], {"nested": "ok"}]],
        probabilities=[[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.3333333333333333, 0.6666666666666667]],
        data=[
            {"a": 1, "b": "x", "c": None},
            {"a": -2.5e-300, "b": 'quote " and \\ backslash\nnewline\ttab', "c": True},
            {"a": 9223372036854775807, "b": "\u0000 nul and emoji \U0001f600", "c": False},
            {"a": [1, [2, [3]]], "b": "", "c": {"deep": {"er": [None]}}},
        ],
        row_summaries=[{"missing": []}, {"missing": ["c"]}, {"missing": []}, {"missing": ["a", "b"]}],
        request_summary={"rows": 4, "columns": 3, "missing": 3, "shape": [4, 3]},
        runtime_ms=0.1 + 0.2,
        replayed=False,
        fp=fingerprint("b" * 64, client_version="pipeline 3.1"),
    )
    store.write_requests([request])
    events = events_of(store, "req-fields")
    assert [event_dict(e) for e in events] == expected_events(request)
    assert all(e.timestamp == received.astimezone(UTC) and e.timestamp.tzinfo == UTC for e in events)
    assert all(e.timestamp.microsecond == 789012 for e in events)
    assert [e.row_runtime_ms for e in events] == [(0.1 + 0.2) / 4] * 4
    assert events[2].data is not None and events[2].data["a"] == 9223372036854775807
    assert isinstance(events[0].prediction[0], float) and isinstance(events[2].data["a"], int)
    assert all(e.replayed is False for e in events)

    # the request row keeps what idempotency needs
    stored = store.get_request("req-fields")
    assert stored == StoredRequest(
        "req-fields", "churn.v2_model-x", 17, request.body_sha256, request.response, 4
    )
    assert isinstance(stored.response, bytes)
    (summary,) = raw_rows(
        store, "SELECT request_summary FROM requests WHERE request_id = ?", ("req-fields",)
    )[0]
    assert loads(summary) == request.request_summary


def test_replayed_request_keeps_one_timestamp_per_row(store: Store) -> None:
    stamps = [
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 0, 0, 0, tzinfo=timezone(timedelta(hours=5))),
    ]
    request = make_request("replay-1", n_rows=3, request_type="replay", timestamps=stamps, received_at=T0)
    assert request.replayed is True
    store.write_requests([request])
    events = store.query_events(EventQuery(request_id="replay-1")).events
    # ordered by event time, which is not row order here
    by_row = sorted(events, key=lambda e: e.row_index)
    assert [e.timestamp for e in by_row] == stamps
    assert all(e.timestamp.tzinfo == UTC for e in by_row)
    assert [e.row_index for e in events] == [2, 0, 1]
    assert all(e.replayed for e in events)
    assert [event_dict(e) for e in by_row] == expected_events(request)


def test_probability_none_and_data_not_logged(store: Store) -> None:
    regression = make_request(
        "reg-1", n_rows=2, predictions=[[3.25], [-1.0]], probabilities=None, data=None, client_id=None
    )
    store.write_requests([regression])
    events = events_of(store, "reg-1")
    assert [e.probability for e in events] == [None, None]
    assert [e.data for e in events] == [None, None]
    assert [e.client_id for e in events] == [None, None]
    assert [e.prediction for e in events] == [[3.25], [-1.0]]
    rows = raw_rows(store, "SELECT probability, data, client_id FROM events WHERE request_id = ?", ("reg-1",))
    assert rows == [(None, None, None)] * 2  # SQL NULL, not the JSON text "null"


def test_empty_lists_and_dicts_are_not_none(store: Store) -> None:
    request = make_request(
        "empty-1", n_rows=1, predictions=[[]], probabilities=[[]], data=[{}], row_summaries=[{}]
    )
    store.write_requests([request])
    (event,) = events_of(store, "empty-1")
    assert (
        event.prediction == []
        and event.probability == []
        and event.data == {}
        and event.input_data_summary == {}
    )


def test_fingerprint_is_stored_once_and_retrievable(store: Store) -> None:
    fp = fingerprint("c" * 64, client_version="1.2.3")
    other = fingerprint("d" * 64)
    store.write_requests([make_request(f"fp-{i}", fp=fp) for i in range(3)])
    store.write_requests([make_request("fp-3", fp=fp), make_request("fp-4", fp=other)])
    assert table_count(store, "fingerprints") == 2
    assert table_count(store, "fingerprints", "id = ?", (fp.id,)) == 1
    assert store.get_fingerprint(fp.id) == fp
    assert store.get_fingerprint(other.id) == other
    assert store.get_fingerprint("0" * 20) is None
    assert {e.fingerprint_id for e in store.iter_events(EventQuery(client_id="client-a"))} == {
        fp.id,
        other.id,
    }


def test_fingerprint_known_to_another_store_instance_is_not_duplicated(store: Store) -> None:
    from loopwatch.stores import open_store

    fp = fingerprint("e" * 64)
    store.write_requests([make_request("a-1", fp=fp)])
    second = open_store(store.url)
    try:
        second.write_requests([make_request("a-2", fp=fp)])
    finally:
        second.close()
    assert table_count(store, "fingerprints") == 1
    assert store.count_events() == 6


def test_empty_batch_writes_nothing(store: Store) -> None:
    assert store.write_requests([]) == []
    assert table_count(store, "requests") == 0


# --- idempotency ---------------------------------------------------------------------


def test_same_id_same_body_is_a_duplicate_with_the_stored_response(store: Store) -> None:
    first = make_request("idem-1", n_rows=2, body={"rows": [1, 2]}, response=b'{"first":true}')
    assert store.write_requests([first]) == [RequestOutcome("stored", b'{"first":true}')]
    logged_at = events_of(store, "idem-1")[0].logged_at
    retry = make_request(
        "idem-1",
        n_rows=5,
        body={"rows": [1, 2]},
        response=b'{"second":true}',
        received_at=T0 + timedelta(hours=1),
    )
    assert store.write_requests([retry]) == [RequestOutcome("duplicate", b'{"first":true}')]
    events = events_of(store, "idem-1")
    assert len(events) == 2 and store.count_events() == 2
    assert all(e.timestamp == T0 and e.logged_at == logged_at for e in events)
    assert store.get_request("idem-1").response == b'{"first":true}'  # type: ignore[union-attr]


def test_same_id_other_body_is_a_conflict(store: Store) -> None:
    store.write_requests([make_request("idem-2", body={"rows": [1]}, response=b"one")])
    outcome = store.write_requests([make_request("idem-2", body={"rows": [2]}, response=b"two")])
    assert [o.status for o in outcome] == ["conflict"]
    assert store.count_events() == 3
    stored = store.get_request("idem-2")
    assert stored is not None and stored.response == b"one"


def test_duplicates_inside_one_batch(store: Store) -> None:
    a = make_request("dup-a", n_rows=2, body="A", response=b"ra")
    a_retry = make_request("dup-a", n_rows=4, body="A", response=b"ra-again")
    a_reuse = make_request("dup-a", n_rows=1, body="other", response=b"ra-other")
    b = make_request("dup-b", n_rows=1, body="B", response=b"rb")
    outcomes = store.write_requests([a, b, a_retry, a_reuse, b])
    assert outcomes == [
        RequestOutcome("stored", b"ra"),
        RequestOutcome("stored", b"rb"),
        RequestOutcome("duplicate", b"ra"),
        RequestOutcome("conflict", b"ra"),
        RequestOutcome("duplicate", b"rb"),
    ]
    assert len(events_of(store, "dup-a")) == 2
    assert len(events_of(store, "dup-b")) == 1
    assert table_count(store, "requests") == 2


def test_get_request_of_unknown_id_is_none(store: Store) -> None:
    assert store.get_request("never-seen") is None


# --- a bad request in a batch ------------------------------------------------------------


def _bad_requests() -> dict[str, object]:
    return {
        # more predictions than row summaries: building its event rows fails
        "rows_mismatch": make_request("bad", predictions=[[0], [1], [2]], row_summaries=[{}, {}]),
        # an integer JSON cannot carry in its logged input data
        "unserialisable_data": make_request("bad", data=[{"x": 1}, {"x": 2**70}, {"x": 3}]),
    }


@pytest.mark.parametrize("kind", ["rows_mismatch", "unserialisable_data"])
def test_a_bad_request_alone_stores_nothing(store: Store, kind: str) -> None:
    bad = _bad_requests()[kind]
    with pytest.raises(StoreError):
        store.write_requests([bad])  # type: ignore[list-item]
    assert store.get_request("bad") is None
    assert table_count(store, "requests") == 0
    assert table_count(store, "events") == 0
    # the store is still usable on the same connection
    assert [o.status for o in store.write_requests([make_request("after")])] == ["stored"]


@pytest.mark.parametrize("kind", ["rows_mismatch", "unserialisable_data"])
def test_a_bad_request_does_not_sink_the_rest_of_its_batch(store: Store, kind: str) -> None:
    bad = _bad_requests()[kind]
    good = [make_request(f"good-{i}", n_rows=i + 1) for i in range(4)]
    batch = [good[0], good[1], bad, good[2], good[3]]
    outcomes = store.write_requests(batch)  # type: ignore[arg-type]
    assert [o.status for o in outcomes] == ["stored", "stored", "failed", "stored", "stored"]
    assert outcomes[2].error and outcomes[2].response is None
    # the bad request: whole or not at all
    assert store.get_request("bad") is None
    assert table_count(store, "requests", "request_id = ?", ("bad",)) == 0
    assert table_count(store, "events", "request_id = ?", ("bad",)) == 0
    # every good request, before and after the bad one, is stored whole
    for i, request in enumerate(good):
        assert store.get_request(request.request_id) is not None, request.request_id
        assert [event_dict(e) for e in events_of(store, request.request_id)] == expected_events(request)
    assert store.count_events() == 1 + 2 + 3 + 4
    # and a retry of the batch without the bad one finds them all stored
    outcomes = store.write_requests(good)
    assert [o.status for o in outcomes] == ["duplicate"] * 4
    assert [o.response for o in outcomes] == [r.response for r in good]
    assert store.count_events() == 10


def test_a_failed_batch_does_not_leave_fingerprints_cached_but_unstored(store: Store) -> None:
    fp = fingerprint("f" * 64)
    bad = make_request("bad", fp=fp, predictions=[[0], [1]], row_summaries=[{}])
    with pytest.raises(StoreError):
        store.write_requests([bad])
    assert store.get_fingerprint(fp.id) is None
    store.write_requests([make_request("ok", fp=fp)])
    assert store.get_fingerprint(fp.id) == fp
    assert {e.fingerprint_id for e in events_of(store, "ok")} == {fp.id}
