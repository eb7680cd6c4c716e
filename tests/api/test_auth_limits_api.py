"""Rate limits and daily budgets on the real app: 429 with Retry-After, one limit across two
app instances (two workers) on one SQLite file, and the /v1/keys routes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.auth_helpers import fixed_clock, issue, secure_client
from tests.api.helpers import PREDICT, assert_error

NOON = 1_772_366_400.0  # 2026-03-01T12:00:00Z


def test_the_rate_limit_is_429_with_retry_after_until_the_next_second(settings, trained, rows) -> None:
    key = issue(trained.store, "predict", rate_per_second=3)
    with secure_client(settings) as client:
        now = fixed_clock(client, NOON + 0.25)
        answers = [client.post(PREDICT, json={"rows": rows[:1]}, headers=key.headers) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        error = assert_error(answers[3], 429, "too_many_requests")
        assert answers[3].headers["retry-after"] == "1"
        assert error["detail"] == {"key_id": key.key_id, "limit": "second"}
        now[0] = NOON + 1.0
        assert client.post(PREDICT, json={"rows": rows[:1]}, headers=key.headers).status_code == 200


def test_the_daily_budget_is_429_until_midnight_utc(settings, trained) -> None:
    key = issue(trained.store, "read", daily_budget=4)
    with secure_client(settings) as client:
        now = fixed_clock(client, NOON)
        codes = []
        for minute in range(6):
            now[0] = NOON + minute * 60
            codes.append(client.get("/v1/models", headers=key.headers).status_code)
        assert codes == [200, 200, 200, 200, 429, 429]
        refused = client.get("/v1/models", headers=key.headers)
        assert_error(refused, 429)
        assert refused.headers["retry-after"] == str(12 * 3600 - 5 * 60)
        assert refused.json()["error"]["detail"]["limit"] == "day"
        now[0] = NOON + 12 * 3600  # midnight
        assert client.get("/v1/models", headers=key.headers).status_code == 200


def test_a_refused_key_costs_no_store_write_per_request(settings, trained) -> None:
    key = issue(trained.store, "read", rate_per_second=5)
    with secure_client(settings) as client:
        fixed_clock(client, NOON)
        for _ in range(100):
            client.get("/v1/models", headers=key.headers)
        limiter = client.app.state.key_guard.parts(client.app.state.loopwatch.store).limiter
        assert limiter.claims_ == 6  # five leases of one, and the claim that found none left


@pytest.mark.parametrize("limits", [{"rate_per_second": 20}, {"daily_budget": 25}, {"rate_per_second": 40,
                                                                                     "daily_budget": 30}])
def test_two_workers_on_one_sqlite_file_enforce_one_limit(settings, trained, rows, limits: dict[str, Any]) -> None:
    """Two app instances, each with its own store connections, writer and limiter, like two
    uvicorn workers: together they never serve more than the limit, and serve all of it."""
    key = issue(trained.store, "predict", **limits)
    expected = min(limits.values())
    with secure_client(settings) as first, secure_client(settings) as second:
        fixed_clock(first, NOON)
        fixed_clock(second, NOON)
        served = {0: 0, 1: 0}
        for i in range(3 * expected):
            client = (first, second)[i % 2]
            response = client.post(PREDICT, json={"rows": rows[:1]}, headers=key.headers)
            assert response.status_code in (200, 429), response.text
            served[i % 2] += response.status_code == 200
        assert sum(served.values()) == expected
        assert served[0] > 0 and served[1] > 0


def test_keys_are_created_listed_and_revoked_through_the_api(settings, trained) -> None:
    admin = issue(trained.store, "admin", name="ops")
    with secure_client(settings) as client:
        created = client.post(
            "/v1/keys",
            json={"name": "partner", "scopes": ["predict", "read"], "expires_days": 30, "rate_per_second": 5,
                  "daily_budget": 1000},
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        token, key = body["token"], body["key"]
        assert token.startswith(f"lw_{key['key_id']}_")
        assert key["scopes"] == ["predict", "read"] and key["state"] == "active"
        assert key["created_by"] == admin.key_id and key["expires_at"] and key["budget_used_today"] == 0
        assert client.get("/v1/models", headers={"X-API-Key": token}).status_code == 200
        listed = client.get("/v1/keys", headers=admin.headers)
        assert {k["name"] for k in listed.json()} == {"ops", "partner"}
        stored = trained.store.get_api_key(key["key_id"])
        assert token not in listed.text and stored.token_sha256 not in listed.text
        assert "sha256" not in listed.text and "token" not in listed.text
        partner = next(k for k in listed.json() if k["name"] == "partner")
        assert partner["budget_used_today"] >= 1  # its GET above was counted
        revoked = client.delete(f"/v1/keys/{key['key_id']}", headers=admin.headers)
        assert revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
        assert_error(client.get("/v1/models", headers={"X-API-Key": token}), 401)
        assert_error(client.delete(f"/v1/keys/{'0' * 16}", headers=admin.headers), 404)
        assert_error(client.delete("/v1/keys/not-a-key-id", headers=admin.headers), 422)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["write"]},
        {"name": "", "scopes": ["read"]},
        {"name": "x\u0000", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_days": 0},
        {"name": "x", "scopes": ["read"], "expires_days": "30"},
        {"name": "x", "scopes": ["read"], "rate_per_second": 1.5},
        {"name": "x", "scopes": ["read"], "daily_budget": True},
        {"name": "x", "scopes": ["read"], "token": "lw_mine"},
    ],
)
def test_bad_key_requests_are_422(settings, trained, body: dict[str, Any]) -> None:
    admin = issue(trained.store, "admin")
    with secure_client(settings) as client:
        assert_error(client.post("/v1/keys", json=body, headers=admin.headers), 422)
    assert len(trained.store.list_api_keys()) == 1


def test_with_auth_off_on_loopback_nothing_changes(client, rows) -> None:
    """The default on loopback: no key needed, and X-Client-ID still names the client."""
    assert client.app.state.loopwatch.settings.auth_enabled is False
    response = client.post(PREDICT, json={"rows": rows[:1]}, headers={"X-Client-ID": "web"})
    assert response.status_code == 200
    page = client.get("/v1/logs", params={"client_id": "web"}).json()
    assert len(page["events"]) == 1


def test_the_body_rows_and_page_limits_still_hold_behind_a_key(settings, trained, rows) -> None:
    key = issue(trained.store, "admin")
    with secure_client(settings, max_body_bytes=20_000, max_rows_per_request=3, max_page_size=2) as client:
        headers = key.headers
        assert_error(client.post(PREDICT, content=b"[" + b"1," * 20_000 + b"1]",
                                 headers={**headers, "content-type": "application/json"}), 413)
        assert_error(client.post(PREDICT, json={"rows": rows[:4]}, headers=headers), 413)
        assert client.post(PREDICT, json={"rows": rows[:3]}, headers=headers).status_code == 200
        labels = [{"entity_id": f"c{i}", "label": 1, "label_time": "2030-01-01T00:00:00Z"} for i in range(4)]
        assert_error(client.post("/v1/feedback", json={"model": "churn", "labels": labels}, headers=headers), 413)
        assert_error(client.get("/v1/logs", params={"limit": 3}, headers=headers), 422)
        assert len(client.get("/v1/logs", params={"limit": 2}, headers=headers).json()["events"]) == 2
