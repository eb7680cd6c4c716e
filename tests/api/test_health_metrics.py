"""Health checks, Prometheus metrics, and back-pressure: a full log queue is a 503 with
Retry-After, never an unbounded queue and never a request logged after a 503."""

from __future__ import annotations

import threading
from typing import Any, Sequence

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loopwatch.config import Settings
from loopwatch.records import LoggedRequest, RequestOutcome
from loopwatch.service import create_app
from loopwatch.stores.base import EventQuery, Store
from tests.api.helpers import PREDICT, assert_error, metric_value, wait_for


def test_liveness_and_readiness(client) -> None:
    live = client.get("/v1/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok", "checks": {}}
    ready = client.get("/v1/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "log_writer": "ok"}}


def test_readiness_is_503_once_the_log_writer_has_stopped(client, rows) -> None:
    client.app.state.loopwatch.writer.close()
    ready = client.get("/v1/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "ok", "log_writer": "stopped"}}
    # and predictions are refused, not answered without their events
    refused = client.post(PREDICT, json={"rows": rows[:1]})
    assert_error(refused, 503, "overloaded")
    assert refused.headers["Retry-After"] == "1"


def label_values(text: str) -> dict[str, set[str]]:
    """Every label name with all the values it takes, across all loopwatch metrics."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("loopwatch_"):
            continue
        for sample in family.samples:
            for name, value in sample.labels.items():
                found.setdefault(name, set()).add(value)
    return found


def test_metrics_are_labelled_by_route_template_only(client, rows) -> None:
    for i in range(3):
        assert client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": f"secret-id-{i}"}).status_code == 200
    assert client.get("/v1/models/churn").status_code == 200
    assert client.get("/v1/logs", params={"request_id": "secret-id-0"}).status_code == 200
    assert client.get("/v1/models/churn/nothing-here").status_code == 404
    assert client.get(PREDICT).status_code == 405

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    templates = set(client.get("/openapi.json").json()["paths"]) | {"unmatched"}
    labels = label_values(text)
    assert labels["route"] <= templates, labels["route"] - templates
    assert {"/v1/models/{name}/predict", "/v1/models/{name}", "/v1/logs", "unmatched"} <= labels["route"]
    everything = {v for values in labels.values() for v in values}
    assert not any("churn" in v or "secret-id" in v or "nothing-here" in v for v in everything), everything

    requests = "loopwatch_http_requests_total"
    assert metric_value(text, requests, {"route": "/v1/models/{name}/predict", "method": "POST", "status": "200"}) == 3
    assert metric_value(text, requests, {"route": "/v1/models/{name}/predict", "method": "GET", "status": "405"}) == 1
    assert metric_value(text, requests, {"route": "/v1/models/{name}", "method": "GET", "status": "200"}) == 1
    assert metric_value(text, requests, {"route": "unmatched", "method": "GET", "status": "404"}) == 1
    latency = "loopwatch_http_request_duration_seconds"
    assert metric_value(text, latency + "_count", {"route": "/v1/models/{name}/predict"}) == 4
    assert metric_value(text, latency + "_bucket", {"route": "/v1/models/{name}/predict", "le": "+Inf"}) == 4
    assert metric_value(text, latency + "_sum", {"route": "/v1/models/{name}/predict"}) > 0
    assert "loopwatch_log_queue_depth 0.0" in text.splitlines()
    assert metric_value(text, "loopwatch_predicted_rows_total") == 6
    assert metric_value(text, "loopwatch_log_commit_seconds_count") >= 1


def test_the_rejections_counter_counts_each_refusal_by_reason(client, rows) -> None:
    def rejected(reason: str) -> float:
        return metric_value(client.get("/metrics").text, "loopwatch_rejections_total", {"reason": reason})

    assert rejected("schema_violation") == 0
    assert_error(client.post(PREDICT, json={"rows": [{**rows[0], "plan": 1}]}), 422, "schema_violation")
    assert rejected("schema_violation") == 1
    assert_error(client.post(PREDICT, json={"rows": [{**rows[0], "plan": 1}]}), 422, "schema_violation")
    assert rejected("schema_violation") == 2
    assert_error(client.post(PREDICT, json={"rows": []}), 422, "invalid_input")
    assert rejected("invalid_input") == 1
    assert_error(client.post("/v1/models/nope/predict", json={"rows": rows[:1]}), 404, "not_found")
    assert rejected("not_found") == 1
    assert client.post(PREDICT, json={"rows": rows[:1]}).status_code == 200
    assert rejected("schema_violation") == 2


class HeldWrites:
    """The real SQLite store of the test, except that ``write_requests`` waits for a release.

    Only the log writer is held: reads, the registry and rejections go straight through.
    """

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.holding = threading.Event()
        self.release = threading.Event()

    def write_requests(self, requests: Sequence[LoggedRequest]) -> list[RequestOutcome]:
        self.holding.set()
        if not self.release.wait(60):
            raise RuntimeError("the test never released the writer")
        return self._inner.write_requests(requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_full_log_queue_answers_503_with_retry_after_and_logs_nothing(trained, rows) -> None:
    held = HeldWrites(trained.store)
    app = create_app(Settings.from_env(queue_max_requests=1, retry_after_seconds=3), store=held)
    results: dict[str, httpx.Response] = {}
    lock = threading.Lock()

    with TestClient(app, raise_server_exceptions=False) as client:

        def send(request_id: str) -> None:
            response = client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": request_id})
            with lock:
                results[request_id] = response

        def statuses() -> list[int]:
            with lock:
                return [r.status_code for r in results.values()]

        first = threading.Thread(target=send, args=("held",))
        burst = [threading.Thread(target=send, args=(f"burst-{i}",)) for i in range(8)]
        try:
            first.start()
            assert held.holding.wait(10), "the writer never took the first request"
            for thread in burst:  # the writer is stuck on "held": one of these fits in the queue
                thread.start()
            wait_for(lambda: statuses().count(503) == 7, timeout=30)
            assert app.state.loopwatch.writer.depth == 1
            assert statuses() == [503] * 7  # the queued one and "held" are still waiting
            metrics = client.get("/metrics").text
            assert metric_value(metrics, "loopwatch_overloaded_total") == 7
            assert metric_value(metrics, "loopwatch_log_queue_depth") == 1
        finally:
            held.release.set()
            for thread in [first, *burst]:
                thread.join(30)
        assert not any(t.is_alive() for t in [first, *burst])

        accepted = sorted(rid for rid, r in results.items() if r.status_code == 200)
        overloaded = sorted(rid for rid, r in results.items() if r.status_code == 503)
        assert len(results) == 9 and len(accepted) == 2 and "held" in accepted and len(overloaded) == 7
        for rid in overloaded:
            error = assert_error(results[rid], 503, "overloaded")
            assert results[rid].headers["Retry-After"] == "3"
            assert "retry" in error["message"]
        for rid in accepted:
            assert results[rid].json()["request_id"] == rid
            assert [e.row_index for e in trained.store.query_events(EventQuery(request_id=rid)).events] == [0, 1]
        for rid in overloaded:
            assert trained.store.get_request(rid) is None
            assert trained.store.query_events(EventQuery(request_id=rid)).events == []
        assert trained.store.count_events() == 4

        # once the queue drains, a retry of a refused request goes through and is logged once
        retry = client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": overloaded[0]})
        assert retry.status_code == 200 and "X-Idempotent-Replay" not in retry.headers
        assert trained.store.count_events() == 6
        assert metric_value(client.get("/metrics").text, "loopwatch_log_queue_depth") == 0
