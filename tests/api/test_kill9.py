"""The durability contract under SIGKILL: a 200 means the request's events are committed.

A real service process takes predict requests from 24 client threads; it is killed with
SIGKILL while requests are in flight. Every acknowledged request must then be in the
database with all its rows, no stored request may be partial, and after a restart a retry
of any request, acknowledged or not, never duplicates events.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from loopwatch.demo import ServiceProcess
from loopwatch.stores import open_store
from loopwatch.stores.base import EventQuery
from tests.api.helpers import PREDICT, send_until_killed
from tests.conftest import churn_rows

pytestmark = pytest.mark.slow

THREADS = 24
#: Requests each thread may send at most (a bound: the kill comes long before).
PER_THREAD = 2_000


def rows_for(request_id: str) -> int:
    """1 to 7 rows, fixed by the id, so that a retry sends the very same body."""
    return 1 + sum(map(ord, request_id)) % 7


def test_every_acknowledged_request_survives_sigkill_whole(
    churn_database: str, tmp_path: Path, churn_training: pd.DataFrame
) -> None:
    database = churn_database
    rows = churn_rows(churn_training, 7)
    sent: dict[str, int] = {}
    acked: dict[str, bytes] = {}
    lock = threading.Lock()

    def send(http: httpx.Client, worker: int, i: int) -> None:
        request_id = f"k9-{worker}-{i}"
        n = rows_for(request_id)
        with lock:
            sent[request_id] = n
        response = http.post(PREDICT, json={"rows": rows[:n]}, headers={"X-Request-ID": request_id})
        if response.status_code == 200:
            with lock:
                acked[request_id] = response.content
        elif response.status_code != 503:
            raise AssertionError(f"{request_id}: {response.status_code} {response.text[:200]}")

    service = ServiceProcess(database, log_path=tmp_path / "service.log")
    service.start()
    try:
        assert service.process is not None
        send_until_killed(service, send, lambda: len(acked), threads=THREADS, per_thread=PER_THREAD)
        in_flight_at_kill = len(sent) - len(acked)  # an upper bound: some had failed to connect
    finally:
        service.stop()

    unacked = sorted(set(sent) - set(acked))
    assert len(acked) >= 50, f"only {len(acked)} requests were acknowledged: the test proves little"

    store = open_store(database if "://" in database else f"sqlite:///{database}")
    try:
        # every acknowledged request is there, with all its rows
        for request_id, response in acked.items():
            stored = store.get_request(request_id)
            assert stored is not None, f"acknowledged {request_id} was lost"
            assert stored.n_rows == sent[request_id] and stored.response == response
            events = store.query_events(EventQuery(request_id=request_id)).events
            assert [e.row_index for e in events] == list(range(sent[request_id])), request_id
        # every stored request is whole, acknowledged or not
        stored_unacked = []
        for request_id in unacked:
            stored = store.get_request(request_id)
            n_events = len(store.query_events(EventQuery(request_id=request_id)).events)
            if stored is None:
                assert n_events == 0, f"{request_id}: events without their request"
            else:
                stored_unacked.append(request_id)
                assert stored.n_rows == n_events == sent[request_id], f"{request_id} is partial"
        total = store.count_events()
        assert total == sum(sent[r] for r in acked) + sum(sent[r] for r in stored_unacked)
    finally:
        store.close()
    print(  # shown with -s: how much was at stake when the server died
        f"\n[kill -9 on {database.split(':')[0] if '://' in database else 'sqlite'}] "
        f"sent {len(sent)}, acknowledged {len(acked)}, in flight at the kill ~{in_flight_at_kill}, "
        f"unacknowledged {len(unacked)} of which stored anyway {len(stored_unacked)}, events {total}"
    )

    # restart on the same database: retries return the stored answer and add nothing
    with ServiceProcess(database, log_path=tmp_path / "service-restarted.log") as again:
        with httpx.Client(base_url=again.url, timeout=30.0) as http, ThreadPoolExecutor(8) as pool:

            def retry(request_id: str) -> httpx.Response:
                n = sent[request_id]
                return http.post(PREDICT, json={"rows": rows[:n]}, headers={"X-Request-ID": request_id})

            some_acked = sorted(acked)[:5]
            for request_id, response in zip(some_acked, pool.map(retry, some_acked)):
                assert response.status_code == 200
                assert response.headers["X-Idempotent-Replay"] == "true"
                assert response.content == acked[request_id]
            for request_id, response in zip(unacked, pool.map(retry, unacked)):
                assert response.status_code == 200, response.text
                assert (response.headers.get("X-Idempotent-Replay") == "true") == (request_id in stored_unacked)
    store = open_store(database if "://" in database else f"sqlite:///{database}")
    try:
        for request_id in unacked:
            events = store.query_events(EventQuery(request_id=request_id)).events
            assert [e.row_index for e in events] == list(range(sent[request_id])), request_id
        assert store.count_events() == total + sum(sent[r] for r in unacked if r not in stored_unacked)
    finally:
        store.close()
