"""The durability contract of ingestion under SIGKILL: a 200 means the batch's events are
committed, and after a restart the senders' retries of every batch, acknowledged or not,
store nothing twice.

A real service process takes POST /v1/models/churn/events from 16 client threads and is
killed with SIGKILL while batches are in flight.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from loopwatch.demo import ServiceProcess
from loopwatch.stores import open_store
from loopwatch.stores.base import EventQuery
from tests.api.helpers import send_until_killed
from tests.conftest import churn_rows

pytestmark = pytest.mark.slow

EVENTS = "/v1/models/churn/events"
THREADS = 16
PER_THREAD = 2_000


def batch_for(request_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1 to 7 events, fixed by the id, so that a retry sends the very same batch."""
    n = 1 + sum(map(ord, request_id)) % 7
    return [{"request_id": request_id, "row_index": i, "features": rows[i], "prediction": i % 2,
             "probabilities": [0.6, 0.4] if i % 2 == 0 else [0.3, 0.7], "model_version": "ext-7",
             "timestamp": "2026-03-01T12:00:00Z", "latency_ms": 4.0 + i} for i in range(n)]


def test_every_acknowledged_batch_survives_sigkill_and_retries_add_nothing(
    churn_database: str, tmp_path: Path, churn_training: pd.DataFrame
) -> None:
    database = churn_database
    rows = churn_rows(churn_training, 7)
    sent: dict[str, int] = {}
    acked: set[str] = set()
    lock = threading.Lock()

    def send(http: httpx.Client, worker: int, i: int) -> None:
        request_id = f"ing9-{worker}-{i}"
        events = batch_for(request_id, rows)
        with lock:
            sent[request_id] = len(events)
        response = http.post(EVENTS, json={"events": events})
        if response.status_code == 200:
            assert response.json()["accepted"] == len(events)
            with lock:
                acked.add(request_id)
        elif response.status_code != 503:
            raise AssertionError(f"{request_id}: {response.status_code} {response.text[:200]}")

    service = ServiceProcess(database, log_path=tmp_path / "service.log")
    service.start()
    try:
        assert service.process is not None
        send_until_killed(service, send, lambda: len(acked), threads=THREADS, per_thread=PER_THREAD)
    finally:
        service.stop()
    assert len(acked) >= 50, f"only {len(acked)} batches were acknowledged: the test proves little"
    url = database if "://" in database else f"sqlite:///{database}"
    store = open_store(url)
    try:
        for request_id in acked:
            events = store.query_events(EventQuery(request_id=request_id)).events
            assert [e.row_index for e in events] == list(range(sent[request_id])), f"{request_id} lost or partial"
        for request_id in set(sent) - acked:  # whole or absent, never partial
            assert len(store.query_events(EventQuery(request_id=request_id)).events) in (0, sent[request_id])
    finally:
        store.close()

    # restart: every sender retries every batch it sent; nothing is stored twice
    with ServiceProcess(database, log_path=tmp_path / "service-restarted.log") as again:
        with httpx.Client(base_url=again.url, timeout=30.0) as http, ThreadPoolExecutor(8) as pool:

            def retry(request_id: str) -> httpx.Response:
                return http.post(EVENTS, json={"events": batch_for(request_id, rows)})

            for request_id, response in zip(sorted(sent), pool.map(retry, sorted(sent))):
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["accepted"] + body["duplicates"] == sent[request_id]
                if request_id in acked:
                    assert body["duplicates"] == sent[request_id]
    store = open_store(url)
    try:
        assert store.count_events() == sum(sent.values())
        assert store.external_versions("churn") == {"ext-7": 2}
    finally:
        store.close()
