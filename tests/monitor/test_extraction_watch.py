"""The extraction watch on a real SQLite log written through the HTTP app: four days of the
demo (seed 2, days 36-39) replayed batch by batch with each batch's client id; on day 38
client "probe-7" maps the decision boundary. Only probe-7 is named, in day 38's window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound
from loopwatch.monitor.extraction_watch import ClientAlert, watch_clients
from loopwatch.records import ModelSettings
from loopwatch.records.jsonutil import utc_iso
from loopwatch.simulate import ChurnScenario
from loopwatch.workspace import Workspace

UTC = timezone.utc
DAYS = (36, 37, 38, 39)
PROBE_DAY = 38
START = datetime(2026, 1, 5, tzinfo=UTC)


def day_start(index: int) -> datetime:
    return START + timedelta(days=index)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Iterator[Settings]:
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    home = tmp_path_factory.mktemp("extraction-home")
    settings = Settings.from_env({}, home=home, database=str(home / "extraction.db"))
    with Workspace(settings) as ws:
        ws.train("churn", churn_training, target="churned")
        ws.train("private", churn_training, target="churned")
        ws.registry.update_settings("private", ModelSettings(log_data=False))
    scenario = ChurnScenario(seed=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for index in DAYS:
            for batch in scenario.day(index).batches:
                body = {"rows": list(batch.rows), "timestamps": [utc_iso(t) for t in batch.timestamps],
                        "request_type": "replay"}
                models = ("churn", "private") if index == PROBE_DAY else ("churn",)
                for model in models:
                    answer = http.post(f"/v1/models/{model}/predict", json=body,
                                       headers={"X-Client-ID": batch.client_id})
                    assert answer.status_code == 200, answer.text
    yield settings


def test_only_the_probe_is_named_and_in_its_window(settings: Settings) -> None:
    with Workspace(settings) as ws:
        alerts = watch_clients(ws.store, ws.registry, "churn", since=None, until=None, window="1d")
    assert [a.client_id for a in alerts] == ["probe-7"]
    alert = alerts[0]
    assert (alert.window_start, alert.window_end) == (day_start(PROBE_DAY), day_start(PROBE_DAY + 1))
    # the incident starts at 13:00 and lasts three hours
    assert day_start(PROBE_DAY) + timedelta(hours=13) <= alert.first_seen < alert.last_seen
    assert alert.last_seen <= day_start(PROBE_DAY) + timedelta(hours=16)
    assert alert.n_rows == 400 and alert.flagged and alert.model_version == 1
    assert alert.score >= alert.threshold >= 0.5
    assert set(alert.reasons) >= {"grid", "spread"}
    data = alert.to_dict()
    assert data["client_id"] == "probe-7" and data["window_start"].startswith("2026-02-12")
    assert isinstance(data["features"]["neighbour_share"], float)


def test_every_client_window_is_scored_and_the_ordinary_ones_stay_far_below(settings: Settings) -> None:
    with Workspace(settings) as ws:
        scored = watch_clients(ws.store, ws.registry, "churn", since=None, until=None, all_clients=True)
    assert all(isinstance(a, ClientAlert) for a in scored)
    ordinary = [a for a in scored if a.client_id != "probe-7"]
    assert len(ordinary) == 3 * len(DAYS)
    assert {a.client_id for a in ordinary} == {"web-app", "mobile-app", "crm-batch"}
    assert not any(a.flagged for a in ordinary)
    assert max(a.score for a in ordinary) < 0.3


def test_the_range_limits_what_is_read(settings: Settings) -> None:
    with Workspace(settings) as ws:
        before = watch_clients(ws.store, ws.registry, "churn", since=day_start(36), until=day_start(PROBE_DAY))
        hours = watch_clients(ws.store, ws.registry, "churn", since=day_start(PROBE_DAY),
                              until=day_start(PROBE_DAY + 1), window="1h")
    assert before == []
    assert {a.client_id for a in hours} == {"probe-7"}
    assert all(day_start(PROBE_DAY) + timedelta(hours=13) <= a.window_start for a in hours)


def test_without_logged_inputs_the_probabilities_still_name_the_probe(settings: Settings) -> None:
    with Workspace(settings) as ws:
        alerts = watch_clients(ws.store, ws.registry, "private", since=None, until=None, all_clients=True)
    flagged = [a for a in alerts if a.flagged]
    assert [a.client_id for a in flagged] == ["probe-7"]
    assert set(flagged[0].signals) == {"boundary"}
    assert all(a.features["neighbour_share"] is None for a in alerts)


def test_events_handed_in_are_used_and_shadow_rows_ignored(settings: Settings) -> None:
    from dataclasses import replace

    from loopwatch.stores.base import EventQuery

    with Workspace(settings) as ws:
        events = list(ws.store.iter_events(EventQuery(model_name="churn", limit=10_000)))
        as_shadow = [replace(e, request_type="shadow") if e.client_id == "probe-7" else e for e in events]
        assert watch_clients(ws.store, ws.registry, "churn", since=None, until=None, events=as_shadow) == []


def test_bad_arguments(settings: Settings) -> None:
    with Workspace(settings) as ws:
        with pytest.raises(InvalidInput, match="time window"):
            watch_clients(ws.store, ws.registry, "churn", since=None, until=None, window="count:100")
        with pytest.raises(NotFound):
            watch_clients(ws.store, ws.registry, "nope", since=None, until=None)




def test_a_finding_names_the_probing_key_by_its_name_and_id(settings: Settings) -> None:
    """With auth on a request's client id is its key's id; the finding also says the key's name."""
    from dataclasses import replace

    from loopwatch.auth.manage import issue_key
    from loopwatch.monitor.security_evidence import probing_findings
    from loopwatch.stores.base import EventQuery

    with Workspace(settings) as ws:
        key, _ = issue_key(ws.store, name="partner probe", scopes=["predict"], now=day_start(30))
        events = [replace(e, client_id=key.key_id) if e.client_id == "probe-7" else e
                  for e in ws.store.iter_events(EventQuery(model_name="churn", limit=10_000))]
        keyed = probing_findings(ws.store, ws.registry, "churn", since=None, until=None, window="1d", events=events)
        plain = probing_findings(ws.store, ws.registry, "churn", since=None, until=None, window="1d",
                                 events=[e for e in events if e.client_id != key.key_id] + [
                                     replace(e, client_id="probe-7") for e in events if e.client_id == key.key_id])
    assert [(f.evidence["client_id"], f.evidence["client_name"]) for f in keyed] == [(key.key_id, "partner probe")]
    assert f"key 'partner probe' ({key.key_id})" in keyed[0].summary
    assert [(f.evidence["client_id"], f.evidence["client_name"]) for f in plain] == [("probe-7", "probe-7")]
    assert "client probe-7 sent" in plain[0].summary
