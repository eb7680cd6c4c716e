"""The prediction log over HTTP: filters, cursor pagination, exports, erasure by
request id, and the training runs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, workspace_on_copy

#: request id -> (rows, headers, extra body); 12 events over two versions, two clients, four days
TRAFFIC: dict[str, tuple[int, dict[str, str], dict[str, Any]]] = {
    "a1": (3, {"X-Client-ID": "alpha"}, {"timestamp": "2025-01-01T12:00:00Z"}),
    "a2": (2, {"X-Client-ID": "alpha"}, {"timestamp": "2025-01-02T12:00:00Z", "request_type": "batch"}),
    "b1": (4, {"X-Client-ID": "beta"}, {"timestamps": [f"2025-01-03T0{h}:00:00Z" for h in range(4)]}),
    "b2": (1, {"X-Client-ID": "beta"}, {}),
    "c1": (2, {}, {"timestamp": "2025-01-04T12:00:00Z", "version": 2}),
}
TOTAL = sum(n for n, _, _ in TRAFFIC.values())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Shadow scoring off, so that the log holds exactly what the tests sent."""
    return settings.with_overrides(shadow_enabled=False)


@pytest.fixture
def trained(settings: Settings, trained_template_with_candidate: Path) -> Iterator[Workspace]:
    """Here "churn" has v1 in production and v2 as the candidate (for the version filter)."""
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        assert ws.store.get_aliases("churn") == {"production": 1, "candidate": 2}
        yield ws


@pytest.fixture
def logged(client, trained, rows):  # type: ignore[no-untyped-def]
    """The app's client after the traffic above."""
    for request_id, (n, headers, extra) in TRAFFIC.items():
        response = client.post(PREDICT, json={"rows": rows[:n], **extra}, headers={"X-Request-ID": request_id, **headers})
        assert response.status_code == 200, response.text
    assert trained.store.count_events() == TOTAL
    return client


def keys(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["request_id"], e["row_index"]) for e in events]


def count(client, **params: Any) -> int:  # type: ignore[no-untyped-def]
    response = client.get("/v1/logs", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return len(response.json()["events"])


def test_filters_combine_with_and(logged) -> None:
    assert count(logged) == count(logged, model="churn") == TOTAL
    assert count(logged, model="nope") == 0
    assert count(logged, version=2) == 2 and count(logged, version=1) == TOTAL - 2
    assert count(logged, request_id="b1") == 4
    assert count(logged, client_id="alpha") == 5
    assert count(logged, request_type="batch") == 2
    assert count(logged, request_type="api") == TOTAL - 2
    # event times: since inclusive, until exclusive
    assert count(logged, since="2025-01-02T12:00:00Z", until="2025-01-03T03:00:00Z") == 2 + 3
    assert count(logged, since="2025-01-03T02:00:00+00:00", client_id="beta") == 2 + 1
    assert count(logged, until="2025-01-01T12:00:00Z") == 0
    assert count(logged, since="2025-01-03T01:00:00+01:00", until="2025-01-03T03:00:00Z") == 3  # offsets count


def test_pagination_through_next_cursor_visits_every_event_once(logged) -> None:
    everything = logged.get("/v1/logs", params={"limit": 1000}).json()["events"]
    assert len(everything) == TOTAL

    for params, expected in (({}, TOTAL), ({"client_id": "beta"}, 5)):
        seen: list[tuple[str, int]] = []
        sizes = []
        cursor = None
        for _ in range(50):  # bounded: 12 events in pages of 5 need 3
            page = logged.get("/v1/logs", params={"limit": 5, **params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            seen += keys(body["events"])
            sizes.append(len(body["events"]))
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert cursor is None, "pagination did not end"
        assert len(seen) == len(set(seen)) == expected
        assert sizes == [5] * (expected // 5) + ([expected % 5] if expected % 5 else [])
        wanted = [k for k, e in zip(keys(everything), everything) if not params or e["client_id"] == "beta"]
        assert seen == wanted  # same order as one big page: event time, request id, row


def test_page_size_and_cursor_validation(logged, trained) -> None:
    assert_error(logged.get("/v1/logs", params={"limit": 10_001}), 422, "invalid_input")
    assert_error(logged.get("/v1/logs", params={"limit": 0}), 422, "invalid_input")
    assert_error(logged.get("/v1/rejections", params={"limit": 10_001}), 422, "invalid_input")
    for cursor in ("garbage", "!!!", base64.urlsafe_b64encode(json.dumps([2**70, "x", 0]).encode()).decode(),
                   base64.urlsafe_b64encode(b'{"ts": 1}').decode(), "x" * 1001):
        assert_error(logged.get("/v1/logs", params={"cursor": cursor}), 422, "invalid_input")
    with TestClient(create_app(Settings.from_env(max_page_size=3)), raise_server_exceptions=False) as small:
        assert_error(small.get("/v1/logs", params={"limit": 4}), 422, "invalid_input")
        assert len(small.get("/v1/logs", params={"limit": 3}).json()["events"]) == 3
        # without a limit the page is the smaller of 100 and max_page_size (a 422 before)
        default = small.get("/v1/logs")
        assert default.status_code == 200, default.text
        assert len(default.json()["events"]) == 3 and default.json()["next_cursor"]
        assert small.get("/v1/rejections").status_code == 200
        # an export is not one page: it pages through everything
        lines = small.get("/v1/logs/export").text.splitlines()
        assert len(lines) == TOTAL


def test_times_without_a_timezone_are_422(logged) -> None:
    for params in ({"since": "2025-01-01T00:00:00"}, {"until": "2025-01-01T00:00:00"}, {"since": "yesterday"}):
        error = assert_error(logged.get("/v1/logs", params=params), 422, "invalid_input")
        assert "since" in error["message"] or "until" in error["message"]
        assert_error(logged.get("/v1/logs/export", params=params), 422, "invalid_input")
    assert_error(logged.get("/v1/rejections", params={"since": "2025-01-01T00:00:00"}), 422, "invalid_input")
    assert_error(logged.get("/v1/logs", params={"version": 2**40}), 422)  # a 500 on SQLite before


def test_export_ndjson(logged) -> None:
    response = logged.get("/v1/logs/export", params={"format": "ndjson"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert len(events) == TOTAL
    assert sorted(keys(events)) == sorted(keys(logged.get("/v1/logs", params={"limit": 1000}).json()["events"]))
    assert all(e["model_name"] == "churn" and "prediction" in e and "data" in e for e in events)

    alpha = logged.get("/v1/logs/export", params={"client_id": "alpha"}).text.splitlines()
    assert {json.loads(line)["request_id"] for line in alpha} == {"a1", "a2"} and len(alpha) == 5
    assert_error(logged.get("/v1/logs/export", params={"format": "xml"}), 422, "invalid_input")


def test_export_parquet(logged) -> None:
    response = logged.get("/v1/logs/export", params={"format": "parquet"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.num_rows == TOTAL
    assert sorted(zip(table.column("request_id").to_pylist(), table.column("row_index").to_pylist())) == sorted(
        (rid, i) for rid, (n, _, _) in TRAFFIC.items() for i in range(n)
    )
    only_v2 = pq.read_table(io.BytesIO(logged.get("/v1/logs/export", params={"format": "parquet", "version": 2}).content))
    assert only_v2.num_rows == 2 and set(only_v2.column("request_id").to_pylist()) == {"c1"}


def test_delete_a_request_removes_its_events_then_404(logged, trained) -> None:
    deleted = logged.delete("/v1/logs/requests/b1")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"request_id": "b1", "deleted_events": 4}
    assert count(logged, request_id="b1") == 0
    assert trained.store.get_request("b1") is None
    assert trained.store.count_events() == TOTAL - 4
    assert count(logged, request_id="b2") == 1  # the rest untouched

    assert_error(logged.delete("/v1/logs/requests/b1"), 404, "not_found")
    assert_error(logged.delete("/v1/logs/requests/never-sent"), 404, "not_found")
    assert trained.store.count_events() == TOTAL - 4


def test_training_events_are_listed(logged) -> None:
    runs = logged.get("/v1/training-events")
    assert runs.status_code == 200
    events = runs.json()
    assert [(e["model_name"], e["model_version"]) for e in events] == [("churn", 1), ("churn", 2)]
    first = events[0]
    assert first["duration_ms"] > 0 and first["metrics"] and first["data_summary"]["shape"][0] == 1500
    assert events[1]["data_summary"]["shape"][0] == 300
    assert len({e["event_id"] for e in events}) == 2
    assert len(logged.get("/v1/training-events", params={"model": "churn"}).json()) == 2
    assert logged.get("/v1/training-events", params={"model": "nope"}).json() == []
