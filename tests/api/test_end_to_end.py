"""The real thing: ``loopwatch serve`` as its own uvicorn process on loopback, driven over
HTTP with httpx, its events read back from the database file or PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.demo import ServiceProcess
from loopwatch.stores import open_store
from loopwatch.stores.base import EventQuery, Store
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, copy_database, metric_value
from tests.conftest import churn_rows

pytestmark = pytest.mark.slow


def train_into(database: str, home: Path, frame: pd.DataFrame) -> None:
    with Workspace(Settings.from_env({}, home=home, database=database)) as ws:
        ws.train("churn", frame.head(300), target="churned")


@pytest.fixture
def sqlite_database(tmp_path: Path, trained_template: Path) -> str:
    """A database file holding "churn" v1 (a copy of the session's trained template)."""
    path = tmp_path / "served.db"
    copy_database(trained_template, path)
    return str(path)


def opened(database: str) -> Store:
    return open_store(database if "://" in database else f"sqlite:///{database}")


def predict_and_check(service: ServiceProcess, database: str, rows: list[dict]) -> None:
    with httpx.Client(base_url=service.url, timeout=30.0) as http:
        assert http.get("/v1/health/ready").json()["checks"] == {"database": "ok", "log_writer": "ok"}
        headers = {"X-Request-ID": "e2e-1", "X-Client-ID": "e2e", "X-Client-Version": "1.0"}
        response = http.post(PREDICT, json={"rows": rows}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["X-Request-ID"] == "e2e-1"
        body = response.json()
        assert body["version"] == 1 and len(body["predictions"]) == len(rows)

        replay = http.post(PREDICT, json={"rows": rows}, headers=headers)
        assert replay.status_code == 200 and replay.headers["X-Idempotent-Replay"] == "true"
        assert replay.content == response.content
        assert_error(http.post(PREDICT, json={"rows": [{**rows[0], "plan": 7}]}), 422, "schema_violation")
        assert_error(
            http.post(PREDICT, content=b'{"rows": [{"age": NaN}]}', headers={"content-type": "application/json"}),
            422,
            "invalid_input",
        )
        # a chunked body over uvicorn: no Content-Length, still parsed and answered
        chunked = http.post(
            PREDICT,
            content=iter([json.dumps({"rows": rows[:1]}).encode()]),
            headers={"content-type": "application/json", "X-Request-ID": "e2e-chunked"},
        )
        assert chunked.status_code == 200 and "content-length" not in chunked.request.headers

    store = opened(database)
    try:
        events = store.query_events(EventQuery(request_id="e2e-1")).events
        assert [e.row_index for e in events] == list(range(len(rows)))
        assert [e.prediction for e in events] == body["predictions"]
        assert {e.client_id for e in events} == {"e2e"}
        assert store.get_fingerprint(events[0].fingerprint_id).client_version == "1.0"
        assert len(store.query_events(EventQuery(request_id="e2e-chunked")).events) == 1
        assert store.count_events() == len(rows) + 1
        assert [r.reason for r in store.query_rejections("churn")] == ["schema_violation", "invalid_input"]
    finally:
        store.close()


def test_a_real_service_on_sqlite(tmp_path: Path, sqlite_database: str, churn_training: pd.DataFrame) -> None:
    with ServiceProcess(sqlite_database, log_path=tmp_path / "service.log") as service:
        predict_and_check(service, sqlite_database, churn_rows(churn_training, 4))


@pytest.mark.postgres
def test_a_real_service_on_postgresql(tmp_path: Path, postgres_dsn: str, churn_training: pd.DataFrame) -> None:
    train_into(postgres_dsn, tmp_path, churn_training)
    with ServiceProcess(postgres_dsn, log_path=tmp_path / "service.log") as service:
        predict_and_check(service, postgres_dsn, churn_rows(churn_training, 4))


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the workers keep their metrics (the CLI keeps a PROMETHEUS_MULTIPROC_DIR it is given)."""
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    return path


@pytest.fixture
def two_workers(tmp_path: Path, sqlite_database: str, metrics_dir: Path) -> Iterator[ServiceProcess]:
    with ServiceProcess(sqlite_database, workers=2, log_path=tmp_path / "service.log") as service:
        yield service


def rows_predicted_by_each_worker(metrics_dir: Path) -> list[float]:
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = []
    for path in sorted(metrics_dir.glob("counter_*.db")):  # one file per worker process
        for metric in MultiProcessCollector.merge([str(path)]):
            counts += [s.value for s in metric.samples if s.name == "loopwatch_predicted_rows_total"]
    return counts


def test_two_workers_on_one_sqlite_file_store_every_request(
    two_workers: ServiceProcess, sqlite_database: str, metrics_dir: Path, churn_training: pd.DataFrame
) -> None:
    rows = churn_rows(churn_training, 5)
    n_requests = 100

    with httpx.Client(base_url=two_workers.url, timeout=60.0, limits=httpx.Limits(max_connections=16)) as http:

        def send(i: int) -> tuple[str, int, int]:
            request_id = f"w2-{i}"
            n = 1 + i % 5
            # a new connection each time, so the two workers' accepts share the load
            headers = {"X-Request-ID": request_id, "Connection": "close"}
            response = http.post(PREDICT, json={"rows": rows[:n]}, headers=headers)
            return request_id, n, response.status_code

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(send, range(n_requests)))

    assert [status for _, _, status in results] == [200] * n_requests
    store = opened(sqlite_database)
    try:
        for request_id, n, _ in results:
            stored = store.get_request(request_id)
            assert stored is not None and stored.n_rows == n, request_id
        store_events = store.count_events()
        assert store_events == sum(n for _, n, _ in results)
    finally:
        store.close()
    # both workers predicted and wrote to the one file ...
    per_worker = rows_predicted_by_each_worker(metrics_dir)
    assert len([n for n in per_worker if n > 0]) == 2, per_worker
    assert sum(per_worker) == store_events
    # ... and report into one set of metrics (prometheus multiprocess mode)
    text = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    labels = {"route": "/v1/models/{name}/predict", "method": "POST", "status": "200"}
    assert metric_value(text, "loopwatch_http_requests_total", labels) == n_requests
    assert metric_value(text, "loopwatch_predicted_rows_total") == store_events
