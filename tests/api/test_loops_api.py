"""The loops routes on the real app and a real SQLite file: evaluation, incidents, acknowledgement,
versioned monitoring configuration, rebaselines, and the schedule running inside the service."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.stores import open_store
from tests.api.helpers import assert_error, copy_database, wait_for
from tests.loops.receivers import Receiver, serve_receiver
from tests.loops.scheduling import IMPOSSIBLE_BUDGET, NOW, build_template

CONFIG = "/v1/models/churn/monitoring-config"
UNTIL = NOW.isoformat()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    return build_template(tmp_path_factory.mktemp("loops-api-template") / "loopwatch.db", churn_training)


def _client(settings: Settings, template: Path) -> Iterator[TestClient]:
    copy_database(template, Path(settings.database_url[len("sqlite:///"):]))
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield http


@pytest.fixture
def client(settings: Settings, template: Path) -> Iterator[TestClient]:
    """The app on a copy of the template: "churn" v1 in production with three days of traffic."""
    yield from _client(settings, template)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text[:1000]
    return response.json()


def evaluate(client: TestClient, **params: str) -> dict[str, Any]:
    return ok(client.get("/v1/models/churn/loops", params={"until": UNTIL, **params}))


def test_a_fresh_evaluation_records_its_incidents(client: TestClient) -> None:
    ok(client.put(CONFIG, json=IMPOSSIBLE_BUDGET))
    data = evaluate(client)
    assert data["fresh"] is True and data["model"] == "churn" and data["config_version"] == 1
    (incident,) = data["incidents"]
    assert incident["kind"] == "latency_regression" and incident["loop"] == "model_selection"
    assert incident["status"] == "open" and incident["acknowledged_at"] is None
    assert data["open_incidents"] == 1
    linked = [r for r in data["recommendations"] if r["incident_id"] == incident["incident_id"]]
    assert linked and linked[0]["incident_status"] == "open" and linked[0]["action"]
    assert data["windows"]  # the engine's evidence per window comes along

    # recorded: listed, and answered without evaluating again
    (stored,) = ok(client.get("/v1/models/churn/incidents"))
    assert stored["incident_id"] == incident["incident_id"] and stored["model_name"] == "churn"
    recorded = ok(client.get("/v1/models/churn/loops", params={"fresh": "false"}))
    assert recorded["fresh"] is False and recorded["open_incidents"] == 1
    assert [i["incident_id"] for i in recorded["incidents"]] == [incident["incident_id"]]
    assert recorded["recommendations"][0]["loop"] == "model_selection"

    # evaluating again records nothing new
    assert evaluate(client)["incidents"][0]["incident_id"] == incident["incident_id"]
    assert len(ok(client.get("/v1/models/churn/incidents"))) == 1


def test_acknowledging_an_incident(client: TestClient) -> None:
    ok(client.put(CONFIG, json=IMPOSSIBLE_BUDGET))
    incident_id = evaluate(client)["incidents"][0]["incident_id"]
    done = ok(client.post(f"/v1/incidents/{incident_id}/acknowledge", json={"note": "profiling the new build"},
                          headers={"X-Client-ID": "oncall-ana"}))
    assert done["status"] == "acknowledged" and done["acknowledged_by"] == "oncall-ana"
    assert done["note"] == "profiling the new build" and done["acknowledged_at"]

    assert ok(client.get("/v1/models/churn/incidents", params={"status": "open"})) == []
    assert len(ok(client.get("/v1/models/churn/incidents", params={"status": "acknowledged"}))) == 1
    again = evaluate(client)
    assert again["open_incidents"] == 0 and again["incidents"][0]["status"] == "acknowledged"
    linked = [r for r in again["recommendations"] if r["incident_id"] == incident_id]
    assert linked[0]["incident_status"] == "acknowledged"
    # "by" in the body wins over the header; acknowledging twice keeps it acknowledged
    twice = ok(client.post(f"/v1/incidents/{incident_id}/acknowledge", json={"by": "ben"}))
    assert twice["acknowledged_by"] == "ben" and twice["note"] == "profiling the new build"


def test_monitoring_configuration_versions(client: TestClient) -> None:
    default = ok(client.get(CONFIG))
    assert default["version"] is None and default["config"]["window"] == "1d"
    assert default["config"]["webhooks"] == [] and ok(client.get(f"{CONFIG}/versions")) == []

    first = ok(client.put(CONFIG, json={"latency_budget_ms": 50}, params={"author": "ana"}))
    assert first["version"] == 1 and first["author"] == "ana"
    assert first["config"]["latency_budget_ms"] == 50.0 and first["config"]["window"] == "1d"
    second = ok(client.put(CONFIG, json={"webhooks": ["https://hooks.example.org/x"], "window": "7d"},
                           headers={"X-Client-ID": "ben"}))
    assert second["version"] == 2 and second["author"] == "ben"
    assert second["config"]["latency_budget_ms"] == 50.0  # merged onto the latest
    assert second["config"]["webhooks"] == ["https://hooks.example.org/x"]

    assert ok(client.get(CONFIG))["version"] == 2
    assert ok(client.get(CONFIG, params={"version": 1}))["config"]["webhooks"] == []
    assert [v["version"] for v in ok(client.get(f"{CONFIG}/versions"))] == [1, 2]
    assert evaluate(client, fresh="false")["window"] == "7d"


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"latency_budget": 50}', "unknown monitoring settings: latency_budget"),
        (b'{"drift_alpha": "small"}', "drift_alpha must be a finite number"),
        (b'{"drift_alpha": NaN}', "not valid JSON"),
        (b'{"schedule_seconds": -1}', "schedule_seconds must be a positive number"),
        (b'{"webhooks": ["file:///etc/passwd"]}', "webhooks must be http"),
        (b'{"window": "fortnight"}', "window 'fortnight' must look like"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "at least one setting"),
        (b"", "JSON object"),
        (b"latency=50", "not valid JSON"),
    ],
)
def test_bad_configuration_changes_are_422(client: TestClient, body: bytes, message: str) -> None:
    response = client.put(CONFIG, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 422)
    assert message in error["message"]
    assert ok(client.get(f"{CONFIG}/versions")) == []  # nothing stored


def test_rebaseline(client: TestClient) -> None:
    body = {"since": (NOW - timedelta(days=3)).isoformat(), "until": UNTIL, "reason": "new pricing is the norm"}
    done = ok(client.post("/v1/models/churn/rebaseline", json=body))
    assert done["model_name"] == "churn" and done["model_version"] == 1 and done["number"] == 1
    assert done["reason"] == "new pricing is the norm" and len(done["profile_sha256"]) == 64
    assert ok(client.post("/v1/models/churn/rebaseline", json={**body, "version": 1}))["number"] == 2
    assert [r["number"] for r in ok(client.get("/v1/models/churn/rebaselines"))] == [1, 2]


@pytest.mark.parametrize(
    "request_args, status, message",
    [
        (("get", "/v1/models/ghost/loops", {}), 404, "ghost"),
        (("get", "/v1/models/churn/loops", {"params": {"since": "2026-03-01T00:00:00"}}), 422, "timezone"),
        (("get", "/v1/models/churn/loops", {"params": {"since": UNTIL, "until": "2026-03-01T00:00:00Z"}}),
         422, "before"),
        (("get", "/v1/models/churn/loops", {"params": {"window": "fortnight"}}), 422, "window"),
        (("get", "/v1/models/churn/loops", {"params": {"fresh": "perhaps"}}), 422, "fresh"),
        (("get", "/v1/models/ghost/incidents", {}), 404, "ghost"),
        (("get", "/v1/models/churn/incidents", {"params": {"status": "closed"}}), 422, "status must be one of"),
        (("post", "/v1/incidents/no-such-incident/acknowledge", {"json": {}}), 404, "no-such-incident"),
        (("post", "/v1/incidents/x/acknowledge", {"json": {"by": "", "note": "n"}}), 422, "by"),
        (("post", "/v1/incidents/x/acknowledge", {"json": {"who": "ana"}}), 422, "who"),
        (("get", CONFIG, {"params": {"version": 9}}), 404, "version 9"),
        (("get", CONFIG, {"params": {"version": 0}}), 422, "version"),
        (("get", "/v1/models/ghost/monitoring-config", {}), 404, "ghost"),
        (("put", "/v1/models/ghost/monitoring-config", {"json": {"window": "1h"}}), 404, "ghost"),
        (("get", "/v1/models/ghost/monitoring-config/versions", {}), 404, "ghost"),
        (("get", "/v1/models/ghost/rebaselines", {}), 404, "ghost"),
        (("post", "/v1/models/ghost/rebaseline", {"json": {"since": "2026-03-01T00:00:00Z", "until": UNTIL,
                                                           "reason": "r"}}), 404, "ghost"),
        (("post", "/v1/models/churn/rebaseline", {"json": {"since": "2026-03-01T00:00:00Z", "until": UNTIL,
                                                           "reason": "r", "version": 9}}), 404, "version 9"),
        (("post", "/v1/models/churn/rebaseline", {"json": {"since": UNTIL, "until": "2026-03-01T00:00:00Z",
                                                           "reason": "r"}}), 422, "before"),
        (("post", "/v1/models/churn/rebaseline", {"json": {"since": "2026-03-01T00:00:00", "until": UNTIL,
                                                           "reason": "r"}}), 422, "timezone"),
        (("post", "/v1/models/churn/rebaseline", {"json": {"since": "2026-03-01T00:00:00Z", "until": UNTIL}}),
         422, "reason"),
        (("post", "/v1/models/churn/rebaseline", {"json": {"since": "2020-01-01T00:00:00Z",
                                                           "until": "2020-01-02T00:00:00Z", "reason": "r"}}),
         422, "at least 20"),
    ],
)
def test_bad_requests_get_the_one_error_shape(
    client: TestClient, request_args: tuple[str, str, dict[str, Any]], status: int, message: str
) -> None:
    method, path, kwargs = request_args
    error = assert_error(getattr(client, method)(path, **kwargs), status)
    assert message in error["message"], error


def test_the_service_runs_the_schedule_and_alerts(
    tmp_path: Path, template: Path, receiver: Receiver
) -> None:
    """Two apps (two workers) on one file, each with its scheduler ticking every 50 ms:
    the incident is recorded and alerted once."""
    settings = Settings.from_env({}, home=tmp_path, schedule_tick_seconds=0.05)
    _configured_copy(settings, template, {**IMPOSSIBLE_BUDGET, "webhooks": [receiver.url]})
    with _app(settings) as first, _app(settings) as second:
        assert sum(t.name == "loopwatch-scheduler" for t in threading.enumerate()) >= 2
        (incident,) = wait_for(lambda: ok(second.get("/v1/models/churn/incidents")), timeout=30)
        wait_for(lambda: receiver.bodies, timeout=30)
        assert incident["kind"] == "latency_regression"
        time.sleep(0.5)  # both workers keep ticking: the alert stays one
        assert receiver.ids() == [incident["incident_id"]]
        assert ok(first.get("/v1/models/churn/incidents")) == [incident]
    assert not any(t.name == "loopwatch-scheduler" and t.is_alive() for t in threading.enumerate())


def test_the_schedule_can_be_turned_off(tmp_path: Path, template: Path) -> None:
    settings = Settings.from_env({}, home=tmp_path, schedule_enabled=False, schedule_tick_seconds=0.05)
    _configured_copy(settings, template, IMPOSSIBLE_BUDGET)
    with _app(settings) as http:
        assert not any(t.name == "loopwatch-scheduler" for t in threading.enumerate())
        time.sleep(0.3)
        assert ok(http.get("/v1/models/churn/incidents")) == []


def _configured_copy(settings: Settings, template: Path, config: dict[str, Any]) -> None:
    """The template with a monitoring configuration, stored before any scheduler can run."""
    path = Path(settings.database_url[len("sqlite:///"):])
    copy_database(template, path)
    store = open_store(settings.database_url)
    try:
        store.put_monitor_config("churn", config, at=NOW, author="test")
    finally:
        store.close()


def _app(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_the_monitor_route_reads_window_summaries_when_they_are_on(settings: Settings, template: Path) -> None:
    """With summaries on, ``GET /monitor`` lets the summariser catch up, then reads the windows
    from its summaries: the same windows and events as from the log."""
    from dataclasses import replace

    params = {"until": UNTIL}
    for http in _client(settings, template):
        from_log = ok(http.get("/v1/models/churn/monitor", params=params))
    on = replace(settings, summaries_enabled=True)
    for http in _client(on, template):
        from_summaries = ok(http.get("/v1/models/churn/monitor", params=params))
    store = open_store(on.database_url)
    try:
        assert store.window_summaries("churn")  # built by the route's catch-up, before it read them
    finally:
        store.close()
    assert from_log["windows"]
    assert [(w["start"], w["n_events"]) for w in from_summaries["windows"]] == \
        [(w["start"], w["n_events"]) for w in from_log["windows"]]
