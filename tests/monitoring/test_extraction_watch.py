"""The extraction watch on a real SQLite log written through the HTTP app: four days of the
demo (seed 2, days 36-39) replayed batch by batch with each batch's client id; on day 38
client "probe-7" maps the decision boundary. Only probe-7 is named, in day 38's window. Each
client is judged against the other clients of its window and its own earlier windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound
from loopwatch.application.monitoring.extraction_watch import ClientAlert, watch_clients
from loopwatch.records import ModelSettings
from loopwatch.records.jsonutil import utc_iso
from loopwatch.simulate import ChurnScenario
from loopwatch.application.workspace import Workspace

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
    assert alert.score >= alert.threshold == 1.0
    assert set(alert.reasons) >= {"grid", "spread"}
    assert all(alert.signals[k] >= alert.thresholds[k] >= 0.5 for k in alert.reasons)
    # judged against the reference and the three other clients of its window (it has no history)
    assert set(alert.against["grid"]) == {"reference", "others"}
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
    # from their second day on, the ordinary clients are also judged against their own history
    assert all("history" in a.against["support"] for a in ordinary if a.window_start > day_start(DAYS[0]))


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
    from loopwatch.application.monitoring.security_evidence import probing_findings
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


def _events(settings: Settings, days: tuple[int, ...]) -> list[Any]:
    from loopwatch.stores.base import EventQuery

    with Workspace(settings) as ws:
        events = list(ws.store.iter_events(EventQuery(model_name="churn", since=day_start(days[0]),
                                                      until=day_start(days[-1] + 1), limit=10_000)))
    return [e for e in events if e.client_id != "probe-7"]


def test_a_move_of_every_clients_traffic_to_the_boundary_names_no_client(settings: Settings) -> None:
    """Day 37's answers all set near the boundary (as a drift towards it would): against the
    reference each client crowds the boundary; against the other clients of the window, none does."""
    from dataclasses import replace

    events = [replace(e, probability=[0.5, 0.5]) for e in _events(settings, (37,))]
    with Workspace(settings) as ws:
        together = watch_clients(ws.store, ws.registry, "churn", since=None, until=None, events=events,
                                 all_clients=True)
        alone = watch_clients(ws.store, ws.registry, "churn", since=None, until=None,
                              events=[e for e in events if e.client_id == "web-app"])
    assert {a.client_id for a in together} == {"web-app", "mobile-app", "crm-batch"}
    assert not any(a.flagged for a in together)
    assert all(a.against["boundary"]["reference"] == 1.0 and a.against["boundary"]["others"] == 0.0
               for a in together)
    # a client alone in its window has no population to be judged against: the reference decides
    assert [(a.client_id, a.reasons) for a in alone] == [("web-app", ("boundary",))]


def test_a_client_is_judged_against_its_own_earlier_windows(settings: Settings) -> None:
    """mobile-app's answers sit near the boundary on days 36 and 37. On day 36 every client's do
    (not flagged, so day 36 becomes its history); on day 37 only mobile-app's: against the
    reference and the others it crowds the boundary, against its own normal it does not."""
    from dataclasses import replace

    events = [replace(e, probability=[0.5, 0.5]) if e.timestamp < day_start(37) or e.client_id == "mobile-app"
              else e for e in _events(settings, (36, 37))]
    with Workspace(settings) as ws:
        alerts = watch_clients(ws.store, ws.registry, "churn", since=None, until=None, events=events,
                               all_clients=True)
        fresh = watch_clients(ws.store, ws.registry, "churn", since=None, until=None, all_clients=True,
                              events=[e for e in events if e.timestamp >= day_start(37)])
    day37 = {a.client_id: a for a in alerts if a.window_start == day_start(37)}
    assert not any(a.flagged for a in alerts)
    mobile = day37["mobile-app"].against["boundary"]
    assert mobile["reference"] == 1.0 and mobile["others"] > 0.5 and mobile["history"] == 0.0
    # without day 36 in the range, mobile-app has no history and is named
    assert [a.client_id for a in fresh if a.flagged] == ["mobile-app"]


def test_a_versions_detector_is_fitted_once_per_process(settings: Settings) -> None:
    """Fitting takes a second or more: later evaluations reuse it, per artifact and reference."""
    from loopwatch.application.monitoring.extraction_watch import _fit

    with Workspace(settings) as ws:
        meta = ws.registry.resolve("churn")
        first = _fit(ws.registry, meta, fpr=0.01, seed=0)
        assert _fit(ws.registry, meta, fpr=0.01, seed=0) is first
        assert _fit(ws.registry, meta, fpr=0.05, seed=0) is not first


def test_from_window_summaries_the_loop_engine_names_the_probe_alone(settings: Settings) -> None:
    """Each client's sample of queries (with its exact count, times and boundary share) names
    the same client in the same window as its logged queries, and its queries are left out of
    that window's drift as from the log: no incident but the probe's."""
    from loopwatch.application.monitoring.loops_runner import evaluate_loops
    from loopwatch.application.summaries import Summariser

    with Workspace(settings) as ws:
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        until = day_start(DAYS[-1] + 1)
        report = evaluate_loops(ws.store, ws.registry, "churn", until=until, summariser=summariser)
        from_log = evaluate_loops(ws.store, ws.registry, "churn", until=until)
    kinds = sorted((i.kind, i.first_seen) for i in report.incidents)
    assert kinds == sorted((i.kind, i.first_seen) for i in from_log.incidents)
    probes = [i for i in report.incidents if i.kind == "adversarial_probing"]
    assert [(i.evidence["client_id"], i.first_seen) for i in probes] == [("probe-7", day_start(PROBE_DAY))]
    (logged,) = [i for i in from_log.incidents if i.kind == "adversarial_probing"]
    assert probes[0].evidence["n_rows"] == logged.evidence["n_rows"] == 400
    assert set(probes[0].evidence["reasons"]) >= {"grid", "spread"}
