"""API keys at the door of the real app: 401 without a valid key, 403 without the scope,
every operation of the OpenAPI document checked, and the key as the client."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from loopwatch.auth.keys import generate_key
from loopwatch.stores.base import EventQuery
from tests.api.auth_helpers import SCOPES, Issued, issue, secure_client
from tests.api.helpers import PREDICT, assert_error, wait_for_rejections

METHODS = {"get", "put", "post", "delete", "patch"}
OPEN = {("get", "/v1/health/live"), ("get", "/v1/health/ready"), ("get", "/metrics")}
#: The scope each known operation needs. Operations other groups add are held to the
#: general rules (401 without a key, an admin key passes).
SCOPE_OF = {
    ("post", "/v1/models/{name}/predict"): "predict",
    ("post", "/v1/models/{name}/events"): "ingest",
    ("post", "/v1/feedback"): "feedback",
    ("post", "/v1/business-metrics"): "feedback",
    **{
        ("get", path): "read"
        for path in (
            "/v1/models", "/v1/models/{name}", "/v1/models/{name}/versions",
            "/v1/models/{name}/versions/{version}", "/v1/models/{name}/settings", "/v1/logs",
            "/v1/logs/export", "/v1/rejections", "/v1/training-events", "/v1/fingerprints/{fingerprint_id}",
            "/v1/models/{name}/monitor", "/v1/models/{name}/labels/coverage", "/v1/models/{name}/loops",
            "/v1/models/{name}/incidents", "/v1/models/{name}/monitoring-config",
            "/v1/models/{name}/monitoring-config/versions", "/v1/models/{name}/rebaselines",
            "/v1/models/{name}/labelling-queue",
        )
    },
    **{
        op: "admin"
        for op in (
            ("post", "/v1/models/{name}/train"), ("post", "/v1/models/{name}/promote"),
            ("post", "/v1/models/{name}/rollback"), ("put", "/v1/models/{name}/settings"),
            ("delete", "/v1/logs/requests/{request_id}"), ("post", "/v1/incidents/{incident_id}/acknowledge"),
            ("put", "/v1/models/{name}/monitoring-config"), ("post", "/v1/models/{name}/rebaseline"),
            ("post", "/v1/models/{name}/retrain"), ("post", "/v1/models/{name}/gate"),
            ("get", "/v1/keys"), ("post", "/v1/keys"), ("delete", "/v1/keys/{key_id}"),
        )
    },
}


@pytest.fixture
def keys(trained) -> dict[str, Issued]:  # type: ignore[no-untyped-def]
    return {scope: issue(trained.store, scope, name=f"{scope} key") for scope in SCOPES}


@pytest.fixture
def secure(settings, trained, keys) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with secure_client(settings) as client:
        yield client


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, item in doc["paths"].items():
        for method in item:
            if method in METHODS:
                yield method, path


def _call(client: TestClient, method: str, path: str, headers: dict[str, str], values: dict[str, str]) -> Any:
    url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)
    body = {} if method in {"post", "put"} else None
    return client.request(method.upper(), url, json=body, headers=headers)


def test_without_a_key_every_protected_operation_is_401_and_the_open_ones_answer(secure, keys) -> None:
    doc = secure.get("/openapi.json").json()  # the API description is open
    values = {"name": "churn", "version": "1", "key_id": keys["read"].key_id}
    seen = set(operations(doc))
    assert OPEN <= seen and set(SCOPE_OF) <= seen, set(SCOPE_OF) - seen
    for method, path in sorted(seen):
        response = _call(secure, method, path, {}, values)
        where = f"{method.upper()} {path}"
        if (method, path) in OPEN:
            assert response.status_code == 200, (where, response.text[:200])
            assert "security" not in doc["paths"][path][method], where
            continue
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer"), where
        op = doc["paths"][path][method]
        assert op["security"] == [{"bearer": []}, {"apiKey": []}], where
        assert {"401", "403", "429"} <= set(op["responses"]), where
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKey"]["name"] == "X-API-Key"


def test_each_operation_needs_its_scope(secure, keys, trained) -> None:
    doc = secure.get("/openapi.json").json()
    spare = issue(trained.store, "read", name="to revoke")
    values = {"name": "churn", "version": "1", "request_id": "no-such-request", "fingerprint_id": "nope",
              "incident_id": "nope", "key_id": spare.key_id}
    checked = 0
    for method, path in sorted(set(operations(doc)) - OPEN):
        needed = SCOPE_OF.get((method, path))
        for scope in SCOPES if needed else ("admin",):
            response = _call(secure, method, path, keys[scope].headers, values)
            where = f"{method.upper()} {path} with a {scope} key"
            if scope in (needed, "admin"):
                assert response.status_code not in (401, 403) and response.status_code < 500, (
                    where, response.status_code, response.text[:300])
            else:
                error = assert_error(response, 403, "forbidden")
                assert error["detail"] == {"key_id": keys[scope].key_id, "needed": needed, "scopes": [scope]}
            checked += 1
    assert checked >= 4 * len(SCOPE_OF)


@pytest.mark.parametrize("how", ["missing", "malformed", "unknown", "wrong secret", "basic", "in the query"])
def test_no_valid_key_is_401(secure, keys, how: str) -> None:
    token = keys["admin"].token
    headers = {
        "missing": {},
        "malformed": {"X-API-Key": "lw_nope"},
        "unknown": {"X-API-Key": generate_key(name="x", scopes=["admin"], now=datetime.now(timezone.utc))[1]},
        "wrong secret": {"X-API-Key": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")},
        "basic": {"Authorization": f"Basic {token}"},
        "in the query": {},
    }[how]
    params = {"api_key": token, "key": token} if how == "in the query" else None
    error = assert_error(secure.get("/v1/models", headers=headers, params=params), 401, "unauthorized")
    assert token not in error["message"]


def test_both_headers_are_accepted(secure, keys) -> None:
    token = keys["read"].token
    assert secure.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert secure.get("/v1/models", headers={"authorization": f"bearer {token}"}).status_code == 200
    assert secure.get("/v1/models", headers={"X-API-Key": token}).status_code == 200


def test_expired_and_revoked_keys_are_401(settings, trained) -> None:
    now = datetime.now(timezone.utc)
    expired = generate_key(name="old", scopes=["admin"], now=now - timedelta(days=2), expires_in=timedelta(days=1))
    trained.store.create_api_key(expired[0])
    admin = issue(trained.store, "admin")
    victim = issue(trained.store, "read")
    with secure_client(settings) as client:
        assert_error(client.get("/v1/models", headers={"X-API-Key": expired[1]}), 401)
        assert "expired" in client.get("/v1/models", headers={"X-API-Key": expired[1]}).json()["error"]["message"]
        assert client.get("/v1/models", headers=victim.headers).status_code == 200  # now cached
        revoked = client.delete(f"/v1/keys/{victim.key_id}", headers=admin.headers)
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        error = assert_error(client.get("/v1/models", headers=victim.headers), 401)  # at once in this worker
        assert "revoked" in error["message"]


def test_a_revoke_reaches_another_worker_at_once(settings, trained) -> None:
    admin = issue(trained.store, "admin")
    victim = issue(trained.store, "read")
    with secure_client(settings) as first, secure_client(settings) as second:
        # a long cache time: the revocation must not wait for it
        second.app.state.key_guard.ttl_seconds = 3600.0  # type: ignore[attr-defined]
        assert second.get("/v1/models", headers=victim.headers).status_code == 200  # now cached there
        verifier = second.app.state.key_guard._parts.verifier  # type: ignore[attr-defined]
        lookups = verifier.lookups_
        assert second.get("/v1/models", headers=victim.headers).status_code == 200
        assert first.delete(f"/v1/keys/{victim.key_id}", headers=admin.headers).status_code == 200
        error = assert_error(second.get("/v1/models", headers=victim.headers), 401)
        assert "revoked" in error["message"]
        # the other keys that worker holds are read again once, then cached as before
        assert second.get("/v1/models", headers=admin.headers).status_code == 200
        assert second.get("/v1/models", headers=admin.headers).status_code == 200
        assert verifier.lookups_ - lookups == 2  # the victim's and the admin's, once each


def test_the_key_is_refused_before_the_body_is_read(settings, trained, keys, rows) -> None:
    with secure_client(settings, max_body_bytes=1000) as client:
        assert_error(client.post(PREDICT, content=b"not json", headers={"content-type": "text/plain"}), 401)
        assert_error(client.post(PREDICT, content=b"{bad json", headers={"content-type": "application/json"}), 401)
        assert_error(client.post(PREDICT, content=b"x" * 5000, headers={"content-type": "application/json"}), 401)
        # with a key, the same bodies meet the usual checks
        headers = keys["predict"].headers
        assert_error(client.post(PREDICT, content=b"not json", headers={**headers, "content-type": "text/plain"}), 415)
        assert_error(client.post(PREDICT, content=b"x" * 5000,
                                 headers={**headers, "content-type": "application/json"}), 413)
        assert client.post(PREDICT, json={"rows": rows[:1]}, headers=headers).status_code == 200


def test_the_key_is_the_client_and_no_header_can_say_otherwise(secure, keys, trained, rows) -> None:
    predictor, labeller = keys["predict"], keys["feedback"]
    response = secure.post(PREDICT, json={"rows": rows[:2]},
                           headers={**predictor.headers, "X-Client-ID": "someone-else", "X-Request-ID": "who"})
    assert response.status_code == 200
    events = trained.store.query_events(EventQuery(request_id="who")).events
    assert [e.client_id for e in events] == [predictor.key_id] * 2
    bad = secure.post(PREDICT, json={"rows": [{"nope": 1}]}, headers={**predictor.headers, "X-Client-ID": "x"})
    assert bad.status_code == 422
    rejected = wait_for_rejections(secure_reader(secure, keys), 1, "churn")
    assert {r["client_id"] for r in rejected} == {predictor.key_id}
    label = {"request_id": "who", "row_index": 0, "label": 1, "label_time": "2030-01-01T00:00:00Z"}
    sent = secure.post("/v1/feedback", json={"model": "churn", "labels": [label]},
                       headers={**labeller.headers, "X-Client-ID": "crm"})
    assert sent.status_code == 200, sent.text
    stored = list(trained.store.iter_labels("churn"))
    assert [s.client_id for s in stored] == [labeller.key_id]


class _Reader:
    """A client whose GETs carry a read key (wait_for_rejections takes a client)."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kwargs)


def secure_reader(client: TestClient, keys: dict[str, Issued]) -> _Reader:
    return _Reader(client, keys["read"].headers)


def test_no_token_reaches_the_logs(settings, trained, rows, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin = issue(trained.store, "admin")
    with secure_client(settings) as client:
        created = client.post("/v1/keys", json={"name": "new", "scopes": ["predict"]}, headers=admin.headers)
        new_token = created.json()["token"]
        client.post(PREDICT, json={"rows": rows[:1]}, headers={"X-API-Key": new_token})
        client.get("/v1/models", headers={"X-API-Key": new_token})  # 403
        client.get("/v1/models", headers={"X-API-Key": new_token[:-1] + "Q"})  # 401
        client.get("/v1/keys", headers=admin.headers)
    for token in (admin.token, new_token):
        assert token not in caplog.text and token.split("_", 2)[2] not in caplog.text
