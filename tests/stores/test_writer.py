"""The group-commit writer over a real store of each backend."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from typing import Any, Sequence

import pytest

from loopwatch.errors import Overloaded, StoreError
from loopwatch.records import LoggedRequest, RequestOutcome
from loopwatch.records.jsonutil import utc_iso
from loopwatch.stores import EventQuery, Store
from loopwatch.stores.writer import GroupCommitWriter
from tests.stores.builders import T0, make_request
from tests.stores.rawsql import table_count

pytest_plugins = ["tests.postgres_fixtures"]

WAIT = 30  # seconds any single future may take before the test fails


class GatedStore:
    """The real store, except that write_requests waits until the gate opens.

    Lets a test hold the writer thread inside a commit while it fills the queue.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def write_requests(self, requests: Sequence[LoggedRequest]) -> list[RequestOutcome]:
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        self.batches.append([r.request_id for r in requests])
        return self._store.write_requests(requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_many_threads_submitting_concurrently(store: Store) -> None:
    commits: list[tuple[int, int]] = []
    writer = GroupCommitWriter(
        store,
        batch_max_requests=64,
        batch_max_wait_ms=5,
        on_commit=lambda n, rows, elapsed: commits.append((n, rows)),
    ).start()
    threads, per_thread = 8, 50
    futures: dict[str, Future[RequestOutcome]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def client(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                request = make_request(f"t{t}-{i:03d}", n_rows=1 + (t + i) % 3, client_id=f"thread-{t}")
                future = writer.submit(request)
                with lock:
                    futures[request.request_id] = future
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(WAIT)
        assert errors == []
        outcomes = {rid: f.result(timeout=WAIT) for rid, f in futures.items()}
    finally:
        writer.close()
    assert len(outcomes) == threads * per_thread
    assert {o.status for o in outcomes.values()} == {"stored"}
    expected_rows = sum(1 + (t + i) % 3 for t in range(threads) for i in range(per_thread))
    assert store.count_events() == expected_rows
    assert table_count(store, "requests") == threads * per_thread
    # group commit: every request counted once, in fewer commits than requests
    assert sum(n for n, _ in commits) == threads * per_thread
    assert sum(rows for _, rows in commits) == expected_rows
    assert len(commits) < threads * per_thread
    for t in range(threads):
        events = list(store.iter_events(EventQuery(client_id=f"thread-{t}", limit=100)))
        assert {e.request_id for e in events} == {f"t{t}-{i:03d}" for i in range(per_thread)}


def test_a_retry_through_the_writer_is_a_duplicate(store: Store) -> None:
    writer = GroupCommitWriter(store).start()
    try:
        first = writer.write(make_request("w-1", body="x", response=b"first"), timeout=WAIT)
        again = writer.write(make_request("w-1", body="x", response=b"second"), timeout=WAIT)
        reused = writer.write(make_request("w-1", body="y", response=b"third"), timeout=WAIT)
    finally:
        writer.close()
    assert first == RequestOutcome("stored", b"first")
    assert again == RequestOutcome("duplicate", b"first")
    assert reused.status == "conflict"
    assert store.count_events() == 3


def test_full_queue_raises_overloaded(store: Store) -> None:
    gated = GatedStore(store)
    writer = GroupCommitWriter(
        gated,
        queue_max_requests=3,
        batch_max_requests=1,  # type: ignore[arg-type]
        retry_after_seconds=7,
    ).start()
    try:
        held = writer.submit(make_request("held"))
        assert gated.entered.wait(WAIT)  # the writer thread is inside write_requests
        queued = [writer.submit(make_request(f"queued-{i}")) for i in range(3)]
        assert writer.depth == 3
        with pytest.raises(Overloaded) as info:
            writer.submit(make_request("refused"))
        assert info.value.retry_after == 7 and info.value.status == 503
        assert not held.done() and not any(f.done() for f in queued)
        assert store.count_events() == 0  # nothing is committed while the gate is shut
    finally:
        gated.gate.set()
        outcomes = [f.result(timeout=WAIT) for f in [held, *queued]]
        writer.close()
    assert [o.status for o in outcomes] == ["stored"] * 4
    assert store.get_request("refused") is None
    assert store.count_events() == 4 * 3
    assert gated.batches == [["held"], ["queued-0"], ["queued-1"], ["queued-2"]]


def test_close_commits_what_is_queued(store: Store) -> None:
    gated = GatedStore(store)
    writer = GroupCommitWriter(gated, batch_max_requests=2, batch_max_wait_ms=0).start()  # type: ignore[arg-type]
    futures = [writer.submit(make_request("first"))]
    assert gated.entered.wait(WAIT)
    futures += [writer.submit(make_request(f"later-{i}")) for i in range(5)]
    closer = threading.Thread(target=writer.close)
    closer.start()
    # close() is waiting for the queue to drain; new work is refused meanwhile
    closer.join(0.2)
    assert closer.is_alive()
    with pytest.raises(Overloaded):
        writer.submit(make_request("too-late"))
    gated.gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert all(f.done() for f in futures)  # close() returned only after they were committed
    assert [f.result().status for f in futures] == ["stored"] * 6
    assert table_count(store, "requests") == 6 and store.get_request("too-late") is None
    assert sorted(r for batch in gated.batches for r in batch) == sorted(
        ["first"] + [f"later-{i}" for i in range(5)]
    )
    writer.close()  # a second close is harmless


def test_events_are_logged_as_json_lines_after_commit(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopwatch.events")
    replay_times = [T0.replace(microsecond=1), T0.replace(microsecond=2)]
    requests = [
        make_request("log-a", n_rows=3, client_id=None, probabilities=None, data=None),
        make_request(
            "log-b",
            n_rows=2,
            request_type="replay",
            timestamps=replay_times,
            data=[{"s": 'q"\n'}, {"s": None}],
        ),
    ]
    writer = GroupCommitWriter(store).start()
    try:
        outcomes = [f.result(timeout=WAIT) for f in [writer.submit(r) for r in requests]]
        duplicate = writer.write(requests[0], timeout=WAIT)  # stored already: logged once only
    finally:
        writer.close()  # joins the writer thread, so its log records are all in
    assert [o.status for o in outcomes] == ["stored", "stored"] and duplicate.status == "duplicate"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "loopwatch.events"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "loopwatch.events")
    assert [(d["request_id"], d["row_index"]) for d in lines] == [
        ("log-a", 0),
        ("log-a", 1),
        ("log-a", 2),
        ("log-b", 0),
        ("log-b", 1),
    ]
    stored = {(e.request_id, e.row_index): e for e in store.iter_events(EventQuery())}
    for line in lines:
        event = stored[(line["request_id"], line["row_index"])]
        assert line["timestamp"] == utc_iso(event.timestamp)
        assert line["prediction"] == event.prediction
        assert line["probability"] == event.probability
        assert line["data"] == event.data
        assert line["input_data_summary"] == event.input_data_summary
        assert line["client_id"] == event.client_id
        assert line["fingerprint_id"] == event.fingerprint_id
        assert (line["model_name"], line["model_version"]) == (event.model_name, event.model_version)
        assert line["replayed"] == event.replayed and line["request_type"] == event.request_type
    assert lines[3]["timestamp"] == "2024-05-17T12:30:45.000001Z"


def test_events_are_not_logged_when_the_commit_fails(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopwatch.events")
    writer = GroupCommitWriter(store).start()
    try:
        bad = writer.submit(make_request("bad", predictions=[[1], [2]], row_summaries=[{}]))
        with pytest.raises(StoreError):
            bad.result(timeout=WAIT)
        ok = writer.write(make_request("ok", n_rows=1), timeout=WAIT)
    finally:
        writer.close()
    assert ok.status == "stored"
    logged = [
        json.loads(r.getMessage())["request_id"] for r in caplog.records if r.name == "loopwatch.events"
    ]
    assert logged == ["ok"]
    assert store.get_request("bad") is None
