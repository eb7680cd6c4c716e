"""Model names over HTTP: one plain path segment on every route, encoded or not, and no error
repeats a long input.

The name rule is checked after routing, on the name as the route decoded it, so ``%2e%2e``
is ``..`` and refused like it. Clients normalise ``/v1/models/../train`` to ``/v1/train``
before sending it, so the unnormalised path is sent to the app as raw ASGI (and, in the
slow test, over a socket to a real ``loopwatch serve``).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.demo import ServiceProcess
from loopwatch.service import create_app
from loopwatch.stores import open_store
from tests.api.helpers import PREDICT, assert_error, copy_database

LONG = "Z" * 10_000
#: How a name breaking the rule is written in a URL, and which name the route then sees.
BAD_SEGMENTS = {
    "%2e%2e": "..", "%2E%2e": "..", ".%2e": "..", "%2e": ".", "...": "...", "a%20b": "a b", "%C3%A9": "é",
    "a%5Cb": "a\\b", "-x": "-x", "%25": "%", "a%09b": "a\tb", LONG: LONG,
}
#: A body each write route accepts as far as its parser goes (the name is checked first).
BODIES: dict[str, Any] = {"json": {}}


def _name_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path template) of the API whose path holds a model name."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return sorted((m.upper(), p) for p, ops in paths.items() if "{name}" in p for m in ops)


def _url(template: str, segment: str) -> str:
    return template.replace("{name}", segment).replace("{version}", "1")


def _send(client: TestClient, method: str, url: str) -> Any:
    if "/train" in url:
        return client.request(method, url + "?target=churned", content=b"a,churned\n1,0\n2,1\n",
                              headers={"content-type": "text/csv"})
    if method in ("POST", "PUT"):
        return client.request(method, url, json={})
    return client.request(method, url)


def test_every_route_with_a_model_name_refuses_names_that_are_not_one_plain_segment(client, trained) -> None:
    routes = _name_routes(client)
    assert len(routes) >= 25  # every model route of the API, read and write
    for method, template in routes:
        for segment, seen in BAD_SEGMENTS.items():
            error = assert_error(_send(client, method, _url(template, segment)), 422, "invalid_input")
            assert "model name" in error["message"] and "is not allowed" in error["message"], (method, template)
            assert seen[:100] in error["message"] or seen[:100].encode("unicode_escape").decode() in error["message"]
            assert LONG[:101] not in error["message"]
    assert [m.name for m in trained.store.list_models()] == ["churn"]
    # a control: the same routes with the model's own name are not refused for the name
    for method, template in routes:
        answer = _send(client, method, _url(template, "churn"))
        assert answer.status_code < 500 and "is not allowed" not in answer.text, (method, template, answer.text)


def test_a_slash_or_a_nul_in_the_name_never_reaches_a_route(client, trained) -> None:
    for url in ("/v1/models/a%2Fb/predict", "/v1/models/..%2F..%2Fx/train?target=y", "/v1/models/%2F"):
        assert client.post(url, json={"rows": []}).status_code in (404, 405, 422)
    assert_error(client.post("/v1/models/a%00b/predict", json={}), 422, "invalid_input")
    assert [m.name for m in trained.store.list_models()] == ["churn"]


def test_model_filters_and_bodies_follow_the_rule_too(client, trained) -> None:
    for url in ("/v1/logs?model=..", "/v1/rejections?model=%2e%2e", "/v1/training-events?model=a%20b",
                "/v1/logs/export?model=..", f"/v1/logs?model={LONG}"):
        error = assert_error(client.get(url), 422, "invalid_input")
        assert "model filter" in error["message"] and LONG[:101] not in error["message"]
    label = {"request_id": "r", "row_index": 0, "label": 1, "label_time": "2030-01-01T00:00:00Z"}
    for name in ("..", ".", "a/b", "é"):
        assert_error(client.post("/v1/feedback", json={"model": name, "labels": [label]}), 422)
    assert client.get("/v1/logs?model=churn").status_code == 200


async def _raw(app: Any, method: str, raw_path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One request to the ASGI app with the path exactly as given (no client normalises it)."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(path), "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def test_unnormalised_dot_segments_reach_the_app_and_are_refused(client, trained, churn_training) -> None:
    csv = churn_training.head(60).to_csv(index=False).encode()
    rows = json.dumps({"rows": churn_training.drop(columns=["churned"]).head(1).to_dict(orient="records")})
    cases = [
        ("POST", "/v1/models/../train?target=churned", csv, "text/csv"),
        ("POST", "/v1/models/%2e%2e/train?target=churned", csv, "text/csv"),
        ("POST", "/v1/models/./train?target=churned", csv, "text/csv"),
        ("POST", "/v1/models/../predict", rows.encode(), "application/json"),
        ("GET", "/v1/models/..", b"", "application/json"),
        ("GET", "/v1/models/../versions", b"", "application/json"),
    ]
    for method, path, body, media in cases:
        status, answer = client.portal.call(_raw, client.app, method, path, body, media)  # type: ignore[union-attr]
        assert status == 422, (path, answer[:300])
        assert b"is not allowed" in answer
    assert [m.name for m in trained.store.list_models()] == ["churn"]
    # a control through the same door: a plain name trains
    status, answer = client.portal.call(  # type: ignore[union-attr]
        _raw, client.app, "POST", "/v1/models/churn2/train?target=churned", csv, "text/csv")
    assert status == 201, answer[:300]


def test_no_error_repeats_a_long_input(client, trained, rows) -> None:
    """Each request carries 10,000 characters somewhere (the path, the query, a header, the
    body); the answer is a 4xx that repeats at most 100 of them."""
    feature = dict(rows[0])
    category = next(k for k, v in feature.items() if isinstance(v, str))
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/models/{LONG}", {}),
        ("GET", f"/v1/logs?client_id={LONG}", {}),
        ("GET", f"/v1/logs/export?request_id={LONG}", {}),
        ("GET", f"/v1/models/churn/monitor?window={LONG}", {}),
        ("GET", f"/v1/models/churn/monitor?segment={LONG}", {}),
        ("GET", f"/v1/fingerprints/{LONG}", {}),
        ("DELETE", f"/v1/logs/requests/{LONG}", {}),
        ("DELETE", f"/v1/keys/{LONG}", {}),
        ("POST", f"/v1/incidents/{LONG}/acknowledge", {"json": {}}),
        ("POST", PREDICT, {"json": {"rows": rows[:1]}, "headers": {"X-Request-ID": LONG}}),
        ("POST", PREDICT, {"content": b"{}", "headers": {"content-type": f"application/{LONG}"}}),
        ("POST", PREDICT, {"json": {"rows": [{**feature, LONG: 1}]}}),
        ("POST", PREDICT, {"json": {"rows": [{**feature, category: LONG}]}}),
        ("POST", PREDICT, {"json": {"rows": rows[:1], LONG: 1}}),
        ("POST", "/v1/feedback", {"json": {"model": "churn", "labels": [
            {"request_id": LONG, "row_index": 0, "label": 1, "label_time": "2030-01-01T00:00:00Z"}]}}),
        ("POST", "/v1/feedback", {"json": {"model": "churn", "labels": [
            {"request_id": "r", "row_index": 0, "label": 1, "label_time": LONG}]}}),
        ("POST", "/v1/keys", {"json": {"name": LONG, "scopes": ["read"]}}),
        ("POST", "/v1/keys", {"json": {"name": "k", "scopes": [LONG]}}),
        ("PUT", "/v1/models/churn/monitoring-config", {"json": {LONG: 1}}),
        ("POST", "/v1/models/churn/train?target=" + LONG, {"content": b"a,b\n1,2\n",
                                                              "headers": {"content-type": "text/csv"}}),
        ("POST", "/v1/models/churn/events", {"json": {"events": [{LONG: 1}]}}),
    ]
    for method, url, kwargs in requests:
        answer = client.request(method, url, **kwargs)
        assert 400 <= answer.status_code < 500, (method, url[:80], answer.status_code, answer.text[:300])
        assert LONG[:101] not in answer.text, (method, url[:80], answer.text[:400])
        assert len(answer.content) < 3_000, (method, url[:80], len(answer.content))


def test_stored_names_that_break_the_rule_are_reported_at_start_up(settings, trained, caplog) -> None:
    trained.store.rename_model("churn", "..")  # as a name stored before the rule would be
    with caplog.at_level(logging.WARNING, logger="loopwatch.service"):
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert_error(client.get("/v1/models/%2e%2e"), 422)
            listed = client.get("/v1/models").json()
            assert [m["name"] for m in listed] == [".."]  # listed, so that it can be found and renamed
    warnings = [r.getMessage() for r in caplog.records if "breaks the model name rule" in r.getMessage()]
    assert len(warnings) == 1 and "'..'" in warnings[0] and "loopwatch models rename" in warnings[0]


@pytest.mark.slow
def test_a_real_server_refuses_dot_segments_sent_on_the_wire(
    tmp_path: Path, trained_template: Path, churn_training: pd.DataFrame
) -> None:
    database = tmp_path / "names.db"
    copy_database(trained_template, database)
    csv = churn_training.head(60).to_csv(index=False).encode()
    with ServiceProcess(str(database), log_path=tmp_path / "service.log") as service:
        for path in ("/v1/models/../train?target=churned", "/v1/models/%2e%2e/train?target=churned",
                     "/v1/models/%2E%2E/train?target=churned", "/v1/models/./train?target=churned"):
            request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                       f"Content-Length: {len(csv)}\r\nConnection: close\r\n\r\n").encode() + csv
            with socket.create_connection(("127.0.0.1", service.port), timeout=30) as conn:
                conn.sendall(request)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
            status = int(answer.split(b" ", 2)[1])
            assert status == 422 and b"is not allowed" in answer, (path, answer[:400])
    store = open_store(str(database))
    try:
        assert [m.name for m in store.list_models()] == ["churn"]
    finally:
        store.close()
