"""Ingested events in the store, on SQLite and PostgreSQL: per-event idempotency (duplicates
counted, other content a conflict that stores nothing), and external version labels that
become one integer version each, also when several threads see a new label at once."""

from __future__ import annotations

import threading
from typing import Any

from loopwatch.records.ingest import INGESTED_REQUEST_TYPE, IngestBatch
from loopwatch.records.jsonutil import dumps
from loopwatch.stores import Store
from loopwatch.stores.base import EventQuery, to_micros
from tests.stores.builders import T0, fingerprint, make_request, version_kwargs

pytest_plugins = ["tests.postgres_fixtures"]


def batch(rows: list[tuple[str, int, str]], *, version: int = 1, model: str = "iris") -> IngestBatch:
    """Events (request id, row index, content) in the store's ingest columns."""
    fp = fingerprint()
    ts = to_micros(T0)
    encoded = [
        (rid, i, model, version, ts + i, ts, 5.0, 5.0, dumps([content]).decode(), None,
         '{"shape":[1,1],"n_missing":0,"missing":[]}', dumps({"x": 1.0}).decode(), INGESTED_REQUEST_TYPE,
         "key-1", fp.id, 1, None, f"sha-{content}")
        for rid, i, content in rows
    ]
    requests: dict[str, tuple[int, int]] = {}
    for rid, _, _ in rows:
        count, _ = requests.get(rid, (0, ts))
        requests[rid] = (count + 1, ts)
    return IngestBatch(model_name=model, rows=encoded, fingerprints={fp.id: fp}, requests=requests)


def test_new_events_are_stored_and_read_back_as_ingested(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    outcome = store.write_ingested(batch([("r-1", 0, "a"), ("r-1", 1, "b"), ("r-2", 0, "c")]))
    assert (outcome.status, outcome.accepted, outcome.duplicates) == ("stored", 3, 0)
    events = list(store.iter_events(EventQuery(model_name="iris")))
    assert sorted((e.request_id, e.row_index, e.prediction[0]) for e in events) == [
        ("r-1", 0, "a"), ("r-1", 1, "b"), ("r-2", 0, "c")]
    assert {e.request_type for e in events} == {"ingested"} and {e.client_id for e in events} == {"key-1"}
    assert store.get_request("r-1") is not None and store.get_request("r-1").n_rows == 2


def test_same_content_is_a_duplicate_and_other_content_a_conflict_that_stores_nothing(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    store.write_ingested(batch([("r-1", 0, "a"), ("r-1", 1, "b")]))
    again = store.write_ingested(batch([("r-1", 0, "a"), ("r-1", 1, "b"), ("r-1", 2, "c"), ("r-1", 2, "c")]))
    assert (again.status, again.accepted, again.duplicates) == ("stored", 1, 3)
    refused = store.write_ingested(batch([("r-9", 0, "z"), ("r-1", 1, "other")]))
    assert refused.status == "conflict" and refused.conflicts == (("r-1", 1),)
    assert store.count_events() == 3
    assert store.get_request("r-9") is None


def test_an_id_loopwatch_predicted_under_conflicts_with_an_ingested_event(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    store.write_requests([make_request("served-1", n_rows=1)])
    refused = store.write_ingested(batch([("served-1", 0, "a")]))
    assert refused.status == "conflict"
    assert [e.request_type for e in store.iter_events(EventQuery(request_id="served-1"))] != ["ingested"]


def test_an_external_label_becomes_one_version_copied_from_its_base(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    first = store.resolve_external_version("iris", "fraud-2026-02", base_version=1, created_at=T0)
    again = store.resolve_external_version("iris", "fraud-2026-02", base_version=1, created_at=T0)
    other = store.resolve_external_version("iris", "fraud-2026-03", base_version=1, created_at=T0)
    assert (first, again, other) == (2, 2, 3)
    assert store.external_versions("iris") == {"fraud-2026-02": 2, "fraud-2026-03": 3}
    base, copy = store.get_model_version("iris", 1), store.get_model_version("iris", 2)
    # the base's own params come along: they say what the copy is (its settings, monitor-only)
    assert copy.params == {**base.params, "external_version": "fraud-2026-02", "based_on": 1}
    assert (copy.schema, copy.artifact_sha256, copy.reference_sha256, copy.profile_sha256) == (
        base.schema, base.artifact_sha256, base.reference_sha256, base.profile_sha256)


def test_concurrent_first_sightings_make_one_version(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    barrier = threading.Barrier(6)
    found: list[int] = []

    def sight(label: str) -> None:
        barrier.wait()
        found.append(store.resolve_external_version("iris", label, base_version=1, created_at=T0))

    threads = [threading.Thread(target=sight, args=("v-" + "ab"[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(found)) == [2, 3]
    assert sorted(store.external_versions("iris").values()) == [2, 3]
    assert [v.version for v in store.list_versions("iris")] == [1, 2, 3]


def test_a_label_on_a_monitor_only_model_makes_a_monitor_only_version(store: Store) -> None:
    store.create_model_version(**{**version_kwargs("iris", artifact=b""), "estimator": "monitor-only",
                                  "params": {"monitor_only": True, "not_applicable": {"shadow": "no model"}}})
    number = store.resolve_external_version("iris", "ext-1", base_version=1, created_at=T0)
    copy = store.get_model_version("iris", number)
    assert copy.params["monitor_only"] is True and copy.params["not_applicable"] == {"shadow": "no model"}
    assert copy.estimator == "monitor-only" and copy.params["external_version"] == "ext-1"


def test_columns_promised_constant_are_stored_as_if_bound_row_by_row(store: Store) -> None:
    """The SQLite path writes constant columns as literals: the rows read back the same
    as a batch that binds every value, odd text (a quote, non-ASCII) included."""
    store.create_model_version(**version_kwargs("iris"))
    rows = [("r-a", i, str(i)) for i in range(4)]
    plain = batch(rows)
    odd = [row[:13] + ("it's ключ",) + row[14:] for row in batch([("r-b", i, str(i)) for i in range(4)]).rows]
    promised = IngestBatch(model_name="iris", rows=odd, fingerprints=plain.fingerprints,
                           requests={"r-b": (4, to_micros(T0))},
                           constant_columns=frozenset(i for i in range(18) if len({r[i] for r in odd}) == 1))
    assert {2, 3, 5, 6, 12, 13, 14, 15, 16} <= promised.constant_columns
    store.write_ingested(plain)
    store.write_ingested(promised)
    events: dict[str, list[Any]] = {}
    for event in store.iter_events(EventQuery(model_name="iris")):
        events.setdefault(event.request_id, []).append(event)
    assert len(events["r-a"]) == len(events["r-b"]) == 4
    for a, b in zip(sorted(events["r-a"], key=lambda e: e.row_index), sorted(events["r-b"], key=lambda e: e.row_index)):
        assert b.client_id == "it's ключ"
        assert {**vars(a), "request_id": "", "client_id": ""} == {**vars(b), "request_id": "", "client_id": ""}


def test_sql_literals_read_back_as_the_same_value_and_type() -> None:
    import sqlite3

    from hypothesis import given, strategies as st

    from loopwatch.stores.sql_ingest import sql_literal

    con = sqlite3.connect(":memory:")

    @given(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=30), st.from_regex(r"[A-Za-z0-9_.:-]{0,30}", fullmatch=True)))
    def reads_back(value: object) -> None:
        literal = sql_literal(value)
        if literal is None:  # left to be bound
            assert isinstance(value, (float, str))
            return
        (back,) = con.execute(f"SELECT {literal}").fetchone()
        assert back == value and type(back) is type(value)

    reads_back()
