"""The demo's API keys: one per party with the right scope, tokens that verify and are never shown,
refusals that a real service with auth on answers, and grading that names a sender by its key's name."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from loopwatch.auth import token_matches
from loopwatch.demo.grading import grade_loops
from loopwatch.demo.keys import BUSINESS_REPORTER, OPERATOR, check_auth, issue_demo_keys, scenario_parties
from loopwatch.errors import LoopwatchError

NOW = datetime(2026, 1, 5, tzinfo=timezone.utc)


def test_every_party_of_the_scenario_gets_a_key_with_its_scope_only(workspace) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.simulate import ChurnScenario

    scenario = ChurnScenario(seed=7)
    clients, sources = scenario_parties(scenario)
    # every sender the period actually contains on its probing and poisoning days has a key
    for day in (scenario.day(38), scenario.day(46)):
        assert {batch.client_id for batch in day.batches} <= set(clients)
        assert {record.source for record in day.feedback} <= set(sources)
    assert "probe-7" in clients and "partner-feed" in sources

    keys = issue_demo_keys(workspace.store, clients=clients, sources=sources, now=NOW)
    stored = {key.key_id: key for key in workspace.store.list_api_keys()}
    expected_scopes = {OPERATOR: ("admin",), BUSINESS_REPORTER: ("feedback",)}
    expected_scopes |= {name: ("predict",) for name in clients} | {name: ("feedback",) for name in sources}
    assert sorted(key.name for key in stored.values()) == sorted(expected_scopes)
    for key in stored.values():
        assert key.scopes == expected_scopes[key.name], key
        assert key.created_by == "demo" and key.state(NOW) == "active" and not key.limited
    # each party's header carries its own key's token, which the stored hash accepts
    for name in clients:
        token = keys.client_headers(name)["Authorization"].removeprefix("Bearer ")
        assert token_matches(token, stored[keys.clients[name].key_id])
    for name in sources:
        token = keys.source_headers(name)["Authorization"].removeprefix("Bearer ")
        assert token_matches(token, stored[keys.sources[name].key_id])
    operator = keys.operator_headers()["Authorization"].removeprefix("Bearer ")
    assert token_matches(operator, stored[keys.operator.key_id])
    assert not token_matches(operator, stored[keys.business.key_id])
    # the summary shows names, ids and scopes, never a token
    shown = str(keys.to_dict()) + repr(keys)
    assert not any(token in shown for token in keys.tokens.values())
    assert {k["name"] for k in keys.to_dict()["clients"]} == set(clients)


def test_a_sender_without_a_key_is_an_error(workspace) -> None:  # type: ignore[no-untyped-def]
    keys = issue_demo_keys(workspace.store, clients=["web-app"], sources=["crm-export"], now=NOW)
    with pytest.raises(LoopwatchError, match="no key for the prediction client 'probe-7'"):
        keys.client_headers("probe-7")
    with pytest.raises(LoopwatchError, match="feedback source 'partner-feed'"):
        keys.source_headers("partner-feed")


def _probing_truth() -> dict:
    return {"incidents": [{"kind": "adversarial_probing", "day": 38, "max_delay_days": 1,
                           "duration_days": 0.125, "touches": {"client_id": "probe-7"}}]}


def _raised(evidence: dict) -> list[dict]:
    start = "2026-02-12T00:00:00+00:00"  # day 38 of a period starting 2026-01-05
    return [{"kind": "adversarial_probing", "loop": "model_selection", "first_seen": start, "detected_at": start,
             "incident_id": "i1", "summary": "probing", "evidence": evidence}]


@pytest.mark.parametrize(
    ("evidence", "named", "correct"),
    [
        ({"client_id": "0123456789abcdef", "client_name": "probe-7"}, "probe-7", True),  # auth on
        ({"client_id": "probe-7"}, "probe-7", True),  # auth off: the client id is the name
        ({"client_id": "0123456789abcdef"}, "0123456789abcdef", False),  # a key id is not a name
        ({"client_id": "0123456789abcdef", "client_name": "web-app"}, "web-app", False),
    ],
)
def test_grading_names_the_client_by_its_key_name(evidence: dict, named: str, correct: bool) -> None:
    graded = grade_loops(_probing_truth(), _raised(evidence), start=datetime(2026, 1, 5, tzinfo=timezone.utc),
                         n_days=70)
    [incident] = graded["incidents"]
    assert incident["named"] == named
    assert incident["named_id"] == evidence["client_id"]
    assert incident["correct"] is correct


@pytest.mark.slow
def test_a_service_with_auth_on_refuses_no_key_and_a_key_beyond_its_scope(tmp_path: Path) -> None:
    from loopwatch.config import Settings
    from loopwatch.demo import ServiceProcess
    from loopwatch.application.workspace import Workspace

    database = tmp_path / "loopwatch.db"
    with Workspace(Settings.from_env({}, home=tmp_path, database=str(database))) as ws:
        keys = issue_demo_keys(ws.store, clients=["web-app"], sources=["crm-export"], now=datetime.now(timezone.utc))
    with ServiceProcess(str(database), log_path=tmp_path / "service.log", auth=True) as service, httpx.Client(
        base_url=service.url, timeout=30.0
    ) as client:
        checks = check_auth(client, keys, model="churn")
        # the same predict key passes the door: the missing model answers, not the auth
        allowed = client.post("/v1/models/churn/predict", json={"rows": [{"x": 1}]},
                              headers=keys.client_headers("web-app"))
    assert [(c["status"], c["error_code"], c["ok"]) for c in checks] == [
        (401, "unauthorized", True), (403, "forbidden", True)
    ]
    assert allowed.status_code == 404, allowed.text
