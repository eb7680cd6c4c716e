"""The demo's API keys: issued in its database before the service starts, held in memory for the run.

The demo's service runs with auth on, as a service beyond loopback must, so every
request carries a key, and each simulated party has its own:

- ``demo-operator`` (``admin``): the team's own calls (monitoring configuration,
  promotion, the loop evaluation);
- one ``predict`` key per prediction client, named by the client (``web-app``,
  ``probe-7``, ...);
- one ``feedback`` key per feedback source, named by the source (``crm-export``,
  ``partner-feed``);
- ``revenue-report`` (``feedback``): the daily business metrics.

With auth on, the service names a request's sender by its key id (the middleware
replaces ``X-Client-ID``), so the prediction log, the labels and the findings carry
key ids; a key's name says who that is. Tokens are never written anywhere: they live
in a :class:`DemoKeys` for the run, and ``to_dict`` shows the keys without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

import httpx

from loopwatch.auth import ApiKey
from loopwatch.auth.manage import KeyStore, issue_key
from loopwatch.errors import LoopwatchError

OPERATOR = "demo-operator"
BUSINESS_REPORTER = "revenue-report"
#: Who issued the keys (the keys' ``created_by``).
ISSUER = "demo"


@dataclass(frozen=True)
class DemoKeys:
    """The demo's keys by role and name, with their tokens (kept out of repr and to_dict)."""

    operator: ApiKey
    business: ApiKey
    clients: Mapping[str, ApiKey]
    sources: Mapping[str, ApiKey]
    tokens: Mapping[str, str] = field(repr=False)

    def operator_headers(self) -> dict[str, str]:
        return _bearer(self.tokens[self.operator.key_id])

    def business_headers(self) -> dict[str, str]:
        return _bearer(self.tokens[self.business.key_id])

    def client_headers(self, client: str) -> dict[str, str]:
        """The headers of a prediction client's requests; a client without a key is an error in the demo."""
        return _bearer(self.tokens[_find(self.clients, client, "prediction client").key_id])

    def source_headers(self, source: str) -> dict[str, str]:
        return _bearer(self.tokens[_find(self.sources, source, "feedback source").key_id])

    def to_dict(self) -> dict[str, Any]:
        """The keys as the summary shows them: role, name, key id and scopes, never a token."""
        return {
            "operator": _public(self.operator),
            "business_metrics": _public(self.business),
            "clients": [_public(key) for _, key in sorted(self.clients.items())],
            "feedback_sources": [_public(key) for _, key in sorted(self.sources.items())],
        }


def issue_demo_keys(
    store: KeyStore, *, clients: Iterable[str], sources: Iterable[str], now: datetime
) -> DemoKeys:
    """Issue the demo's keys in ``store`` (see the module docstring for which)."""
    tokens: dict[str, str] = {}

    def issue(name: str, scope: str) -> ApiKey:
        key, token = issue_key(store, name=name, scopes=[scope], now=now, created_by=ISSUER)
        tokens[key.key_id] = token
        return key

    return DemoKeys(
        operator=issue(OPERATOR, "admin"),
        business=issue(BUSINESS_REPORTER, "feedback"),
        clients={name: issue(name, "predict") for name in sorted(set(clients))},
        sources={name: issue(name, "feedback") for name in sorted(set(sources))},
        tokens=tokens,
    )


def scenario_parties(scenario: Any) -> tuple[list[str], list[str]]:
    """The prediction clients and feedback sources a scenario's period can contain: the regular
    ones, plus those its timeline's incidents bring (a probing client, a poisoning source)."""
    from loopwatch.simulate import CLIENTS, CRM_SOURCE

    clients = {spec.client_id for spec in CLIENTS}
    sources = {CRM_SOURCE}
    for incident in scenario.timeline.incidents:
        if "client_id" in incident.touches:
            clients.add(str(incident.touches["client_id"]))
        if incident.kind == "label_poisoning":
            sources.add(str(incident.touches["source"]))
    return sorted(clients), sorted(sources)


def check_auth(client: httpx.Client, keys: DemoKeys, *, model: str) -> list[dict[str, Any]]:
    """Two cheap requests that show the door is shut: no key gets 401, a predict key asking
    to train gets 403. Each is reported with the status expected and the one answered."""
    any_client = next(iter(sorted(keys.clients)))
    checks = [
        ("POST", f"/v1/models/{model}/predict", "no key", {}, 401),
        ("POST", f"/v1/models/{model}/train?target=churned", f"the predict key {any_client!r}",
         keys.client_headers(any_client), 403),
    ]
    found = []
    for method, path, who, headers, expected in checks:
        answer = client.request(method, path, json={"rows": []}, headers=headers)
        code = answer.json().get("error", {}).get("code") if answer.headers.get(
            "content-type", "").startswith("application/json") else None
        found.append({
            "request": f"{method} {path.split('?')[0]}",
            "key": who,
            "expected_status": expected,
            "status": answer.status_code,
            "error_code": code,
            "ok": answer.status_code == expected,
        })
    return found


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _find(keys: Mapping[str, ApiKey], name: str, what: str) -> ApiKey:
    try:
        return keys[name]
    except KeyError:
        raise LoopwatchError(f"the demo issued no key for the {what} {name!r}") from None


def _public(key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "key_id": key.key_id, "scopes": list(key.scopes)}
