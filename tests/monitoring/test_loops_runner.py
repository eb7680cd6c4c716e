"""The loop engine on a real SQLite log: known incidents in, incidents and loops out.

Sixteen simulated days of a churn model (400 predictions a day) are logged in
process, with their own event times, through the real predictor and group-commit
writer. The days and what happens on them:

- days 0-2 stable (they are the latency baseline);
- days 3-4 a covariate shift: ``watch_hours`` up by 0.6 standard deviations;
- days 5-6 stable, while a broken candidate is scored in shadow on the same rows
  (``watch_hours`` times 60): what the shadow logs must never be evaluated;
- days 7-8 a selection bias: 12% of traffic from BR, a country absent from training;
- days 9-10 stable;
- day 11 10:00 to day 13 10:00 a software change: mobile-app 3.0.0 sends watch_hours
  in minutes;
- day 14 on: version 2, a random forest five times slower, is promoted.

The model's monitoring configuration watches ``country`` and holds the median
runtime to three times its baseline. Building this log is the expensive part, so
it is built once per module; every test reads it, and tests that record incidents
work on a copy of the database.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.report import LoopReport
from loopwatch.application.configs import load_monitoring_config
from loopwatch.loops.evidence import WindowEvidence
from loopwatch.application.monitoring.loops_runner import evaluate_loops, latency_budget, record_incidents
from loopwatch.application.prediction import PredictCall
from loopwatch.simulate import ChurnScenario, Timeline, default_timeline
from loopwatch.application.workspace import Workspace

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 16
PER_DAY = 400
COVARIATE_DAY, SHADOW_DAYS, SELECTION_DAY, SOFTWARE_DAY, SLOW_MODEL_DAY = 3, (5, 6), 7, 11, 14
INCIDENT_DAYS = 2
STABLE_DAYS = (0, 1, 2, 5, 6, 9, 10)
#: Median runtime of a request (ms) per model version.
RUNTIME_MS = {1: 6.0, 2: 30.0}
CONFIG = {
    "segment_feature": "country",
    "latency_budget_ratio": 3.0,
    "latency_percentile": 50.0,
    "latency_baseline_windows": 3,
}


def day(index: int) -> datetime:
    return START + timedelta(days=index)


def scenario() -> ChurnScenario:
    timeline = default_timeline(
        covariate_shift_day=COVARIATE_DAY, selection_bias_day=SELECTION_DAY, software_change_day=SOFTWARE_DAY,
        covariate_shift_sd=0.6, data_incident_days=INCIDENT_DAYS,
    )
    kinds = {"covariate_shift", "selection_bias", "software_change"}
    incidents = tuple(i for i in timeline.incidents if i.kind in kinds)
    return ChurnScenario(seed=3, days=DAYS, predictions_per_day=PER_DAY, timeline=Timeline(incidents=incidents))


class Log:
    """The module's database, and a way to open it (or a copy of it)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.database = home / "loops.db"

    def workspace(self, database: Path | None = None) -> Workspace:
        path = database or self.database
        return Workspace(Settings.from_env({}, home=path.parent, database=str(path)))

    def copy(self, folder: Path) -> Path:
        """A consistent copy of the database (the backup API folds the WAL in)."""
        target = folder / "copy.db"
        with sqlite3.connect(self.database) as source, sqlite3.connect(target) as dest:
            source.backup(dest)
        return target


def timed(logged: Any, rng: np.random.Generator) -> Any:
    """The request with a runtime drawn for its version: the machine these tests share is busy, and
    its load would move measured medians by more than the budget's margin. Version 2 is five
    times slower; a shadow request, slower still, would break any budget if it were counted."""
    median = 500.0 if logged.request_type == "shadow" else RUNTIME_MS[logged.model_version]
    return replace(logged, runtime_ms=float(median * rng.lognormal(0.0, 0.25)))


def log_day(ws: Workspace, index: int, batches: Any, *, shadow: bool) -> None:
    rng = np.random.default_rng(index)
    futures = []
    for i, batch in enumerate(batches):
        rows = [dict(r) for r in batch.rows]
        request_id = f"d{index:02d}-{i:03d}"
        call = PredictCall(model_name="churn", rows=rows, request_id=request_id, client_id=batch.client_id,
                           client_version=batch.client_version, request_type=batch.request_type,
                           timestamps=list(batch.timestamps), entity_ids=list(batch.entity_ids))
        futures.append(ws.writer.submit(timed(ws.predictor.predict(call), rng)))
        if shadow:  # the candidate, broken, scored off the request path as the service does it
            broken = [{**r, "watch_hours": r["watch_hours"] * 60.0} for r in rows]
            futures.append(ws.writer.submit(timed(ws.predictor.predict(PredictCall(
                model_name="churn", version=2, rows=broken, request_id=f"{request_id}:shadow",
                client_id=batch.client_id, client_version=batch.client_version, request_type="shadow",
                timestamps=list(batch.timestamps))), rng)))
    for future in futures:
        future.result()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    found = Log(tmp_path_factory.mktemp("loops-runner"))
    world = scenario()
    with found.workspace() as ws:
        training = world.training_data(n=3000)
        ws.train("churn", training, target="churned", seed=0)
        ws.train("churn", training, target="churned", seed=0, estimator="random_forest",
                 estimator_params={"n_estimators": 50}, alias="candidate")
        ws.train("quiet", training.head(500), target="churned", seed=0)  # never called, never configured
        ws.store.put_monitor_config("churn", CONFIG, at=day(0))
        for today in world.days():
            if today.index == SLOW_MODEL_DAY:
                ws.registry.promote("churn", 2)
            log_day(ws, today.index, today.batches, shadow=today.index in SHADOW_DAYS)
    return found


@pytest.fixture(scope="module")
def report(log: Log) -> LoopReport:
    with log.workspace() as ws:
        return evaluate_loops(ws.store, ws.registry, "churn", until=day(DAYS))


@pytest.fixture
def copy(log: Log, tmp_path: Path) -> Iterator[Workspace]:
    with log.workspace(log.copy(tmp_path)) as ws:
        yield ws


def by_kind(report: LoopReport, kind: str) -> list[Any]:
    return [i for i in report.incidents if i.kind == kind]


def window_of(report: LoopReport, index: int) -> list[WindowEvidence]:
    return [w for w in report.windows if w.start == day(index)]


# --- the incidents ----------------------------------------------------------------------------


def test_the_configuration_is_read_from_the_store(log: Log, report: LoopReport) -> None:
    with log.workspace() as ws:
        config, version = load_monitoring_config(ws.store, "churn")
        assert (config, version) == (MonitoringConfig.from_dict(CONFIG), 1)
        assert load_monitoring_config(ws.store, "quiet") == (MonitoringConfig(), None)
    assert report.config_version == 1 and report.window == "1d"
    assert report.evaluated_at == day(DAYS)


def test_a_covariate_shift_is_an_eda_incident_from_its_first_day(report: LoopReport) -> None:
    (incident,) = by_kind(report, "covariate_shift")
    assert incident.first_seen == day(COVARIATE_DAY)
    assert incident.last_seen == day(COVARIATE_DAY + INCIDENT_DAYS)
    assert incident.detected_at == day(COVARIATE_DAY + 1)  # the end of the first window that showed it
    assert incident.loop == "eda"
    assert "watch_hours" in incident.evidence["drifted_features"]
    assert not incident.evidence["estimate_dropped"]  # the label-free estimate held, hence EDA


def test_a_new_segment_is_a_selection_bias_for_data_collection(report: LoopReport) -> None:
    (incident,) = by_kind(report, "selection_bias")
    assert incident.first_seen == day(SELECTION_DAY)
    assert incident.last_seen == day(SELECTION_DAY + INCIDENT_DAYS)
    assert incident.loop == "data_collection"
    assert incident.evidence["segment_feature"] == "country"
    share = incident.evidence["new_segments"]["BR"]
    assert 0.05 < share < 0.2  # the simulator sends about 12% from BR


def test_a_new_client_version_that_multiplies_a_feature_is_a_software_change(report: LoopReport) -> None:
    (incident,) = by_kind(report, "software_change")
    assert incident.first_seen == day(SOFTWARE_DAY)
    assert incident.loop == "model_selection"
    change = incident.evidence["software_change"]
    assert (change["what"], change["value"]) == ("client_version", "mobile-app 3.0.0")
    assert (change["client"], change["client_version"]) == ("mobile-app", "3.0.0")
    assert 'from client "mobile-app" at version "3.0.0",' in incident.summary
    assert change["features"] == ["watch_hours"]
    # and the world's drift of the same feature a week earlier was not blamed on software
    assert by_kind(report, "covariate_shift")[0].first_seen < incident.first_seen


def test_a_slower_model_is_a_latency_regression_against_the_ratio_budget(report: LoopReport) -> None:
    (incident,) = by_kind(report, "latency_regression")
    assert incident.first_seen == day(SLOW_MODEL_DAY)
    assert incident.last_seen == day(DAYS)
    assert incident.loop == "model_selection"
    baseline = [w.latency_ms for w in report.windows[:CONFIG["latency_baseline_windows"]]]
    assert incident.evidence["budget_ms"] == pytest.approx(float(np.median(baseline)) * 3.0, rel=1e-3)
    assert incident.evidence["latency_ms"] > incident.evidence["budget_ms"]
    assert incident.evidence["software_changes"][0]["value"] == "2"  # lined up with the new version


def test_stable_days_raise_no_incident(report: LoopReport) -> None:
    assert sorted(i.kind for i in report.incidents) == [
        "covariate_shift", "latency_regression", "selection_bias", "software_change"]
    stable = {day(i) for i in STABLE_DAYS}
    assert not [i for i in report.incidents if i.first_seen in stable]
    for index in STABLE_DAYS:
        (window,) = window_of(report, index)
        assert window.drifted_features == {} and not window.multivariate_drift, index


def test_every_incident_has_one_recommendation_for_its_loop(report: LoopReport) -> None:
    by_id = {r.incident_id: r for r in report.recommendations if r.incident_id is not None}
    assert set(by_id) == {i.incident_id for i in report.incidents}
    for incident in report.incidents:
        assert (by_id[incident.incident_id].loop, by_id[incident.incident_id].reason) == (incident.loop, incident.kind)
    # no labels were sent at all: the one signal is that the model has none
    (signal,) = [r for r in report.recommendations if r.incident_id is None]
    assert (signal.loop, signal.reason, signal.evidence["coverage"]) == ("data_collection", "low_label_coverage", 0.0)
    assert report.labels is not None
    assert report.labels.to_dict() == {"predictions": DAYS * PER_DAY, "labelled": 0, "coverage": 0.0}
    assert report.performance.to_dict() == {}


def test_an_evaluation_sees_nothing_after_until(until: Callable[[int], LoopReport]) -> None:
    early = until(COVARIATE_DAY)
    assert early.incidents == [] and len(early.windows) == COVARIATE_DAY
    assert early.evaluated_at == day(COVARIATE_DAY)


def test_a_model_without_traffic_gives_an_empty_report(log: Log) -> None:
    with log.workspace() as ws:
        empty = evaluate_loops(ws.store, ws.registry, "quiet", until=day(DAYS))
    assert empty.incidents == [] and empty.recommendations == [] and empty.windows == []


# --- shadow events ------------------------------------------------------------------------------


def test_shadow_events_are_never_evaluated(log: Log, report: LoopReport) -> None:
    with log.workspace() as ws:
        shadows = sum(1 for e in ws.store.iter_events(_query("churn")) if e.request_type == "shadow")
    assert shadows == len(SHADOW_DAYS) * PER_DAY  # they are in the log
    for index in SHADOW_DAYS:
        (window,) = window_of(report, index)  # one window, of the served version only
        assert window.n_events == PER_DAY and window.model_versions == [1]
        assert window.drifted_features == {}
        # the candidate's version is not new software because it was scored in shadow
        assert all(c.what != "model_version" for c in window.software_changes)
    (first_served,) = window_of(report, SLOW_MODEL_DAY)
    change = next(c for c in first_served.software_changes if c.what == "model_version")
    assert change.value == "2" and change.windows_since_first == 0


def _query(name: str) -> Any:
    from loopwatch.stores.base import EventQuery

    return EventQuery(model_name=name, limit=10_000)


# --- the latency budget ---------------------------------------------------------------------------


def test_an_absolute_latency_budget_wins() -> None:
    config = MonitoringConfig(latency_budget_ms=40.0, latency_budget_ratio=2.0, latency_baseline_windows=2)
    assert latency_budget(config, [5.0, 7.0, 100.0]) == 40.0
    assert latency_budget(config, []) == 40.0  # known before any window


def test_a_ratio_budget_is_a_multiple_of_the_median_of_the_first_windows() -> None:
    config = MonitoringConfig(latency_budget_ratio=2.5, latency_baseline_windows=3)
    # the median of the first three (4, 10, 6), not of all, and not their mean
    assert latency_budget(config, [4.0, 10.0, 6.0, 500.0, 600.0]) == pytest.approx(6.0 * 2.5)
    # windows without a runtime do not count towards the baseline
    assert latency_budget(config, [4.0, None, 6.0, 8.0]) is None


def test_a_ratio_budget_waits_for_its_baseline_windows() -> None:
    config = MonitoringConfig(latency_budget_ratio=2.0, latency_baseline_windows=3)
    assert latency_budget(config, []) is None
    assert latency_budget(config, [5.0, 6.0]) is None
    assert latency_budget(config, [5.0, 6.0, 7.0]) == pytest.approx(12.0)


def test_no_budget_without_a_budget() -> None:
    assert latency_budget(MonitoringConfig(), [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]) is None


def test_the_baseline_windows_are_not_held_to_the_ratio_budget(report: LoopReport) -> None:
    budgets = [w.latency_budget_ms for w in report.windows]
    n = CONFIG["latency_baseline_windows"]
    assert budgets[:n] == [None] * n
    assert len(set(budgets[n:])) == 1 and budgets[n] is not None


# --- recording incidents ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def until(log: Log) -> Callable[[int], LoopReport]:
    """The evaluation of the module's log up to the start of a day (each one computed once: the
    tests record them into their own copies of the database, which hold the same log)."""
    done: dict[int, LoopReport] = {}

    def evaluate(index: int) -> LoopReport:
        if index not in done:
            with log.workspace() as ws:
                done[index] = evaluate_loops(ws.store, ws.registry, "churn", until=day(index))
        return done[index]

    return evaluate


def test_new_incidents_are_returned_once(copy: Workspace, until: Callable[[int], LoopReport]) -> None:
    report = until(COVARIATE_DAY + INCIDENT_DAYS)
    (incident,) = report.incidents
    first = record_incidents(copy.store, report, now=day(6))
    assert [r.incident_id for r in first] == [incident.incident_id]
    assert (first[0].status, first[0].kind, first[0].loop) == ("open", "covariate_shift", "eda")
    assert first[0].detected_at == day(6)  # when loopwatch recorded it...
    assert first[0].evidence["evidence_available_at"] == incident.detected_at.isoformat()  # ...and when it could
    assert record_incidents(copy.store, report, now=day(6) + timedelta(hours=1)) == []
    # a later evaluation that still shows it records nothing new either
    assert record_incidents(copy.store, until(6), now=day(7)) == []
    assert [r.incident_id for r in copy.store.list_incidents("churn")] == [incident.incident_id]


def test_an_incident_two_later_windows_no_longer_show_is_resolved(copy: Workspace, until: Callable[[int], LoopReport]) -> None:
    incident_id = until(COVARIATE_DAY + INCIDENT_DAYS).incidents[0].incident_id
    ended = COVARIATE_DAY + INCIDENT_DAYS  # the first window without it
    # one later window without it: it may be a pause
    record_incidents(copy.store, until(ended + 1), now=day(ended + 1))
    assert copy.store.get_incident(incident_id).status == "open"
    # two later windows without it: it ended
    record_incidents(copy.store, until(ended + 2), now=day(ended + 2))
    resolved = copy.store.get_incident(incident_id)
    assert resolved.status == "resolved" and resolved.last_seen == day(ended)


def test_a_quiet_period_without_traffic_resolves_nothing(copy: Workspace, until: Callable[[int], LoopReport]) -> None:
    # the slow model serves until the log ends; weeks without any traffic follow
    report = until(DAYS + 30)
    assert report.windows[-1].end == day(DAYS)
    record_incidents(copy.store, report, now=day(DAYS + 30))
    status = {r.kind: r.status for r in copy.store.list_incidents("churn")}
    assert status["latency_regression"] == "open"
    # the ones that ended while traffic flowed are resolved all the same
    assert status["covariate_shift"] == status["selection_bias"] == "resolved"


def test_acknowledged_incidents_stay_acknowledged(copy: Workspace, until: Callable[[int], LoopReport]) -> None:
    (incident,) = until(COVARIATE_DAY + 1).incidents
    record_incidents(copy.store, until(COVARIATE_DAY + 1), now=day(COVARIATE_DAY + 1))
    copy.store.acknowledge_incident(incident.incident_id, by="ana", at=day(COVARIATE_DAY + 1), note="looking")
    # the next evaluation still shows it, with one more window: it stays acknowledged, and is not new
    later = until(COVARIATE_DAY + INCIDENT_DAYS)
    assert record_incidents(copy.store, later, now=day(COVARIATE_DAY + 2)) == []
    stored = copy.store.get_incident(incident.incident_id)
    assert (stored.status, stored.acknowledged_by, stored.note) == ("acknowledged", "ana", "looking")
    assert stored.last_seen == day(COVARIATE_DAY + INCIDENT_DAYS)
    # once it has ended it moves on to resolved, never back to open
    record_incidents(copy.store, until(COVARIATE_DAY + INCIDENT_DAYS + 2), now=day(9))
    assert copy.store.get_incident(incident.incident_id).status == "resolved"


def test_the_report_is_json_ready(report: LoopReport) -> None:
    import json

    data = json.loads(json.dumps(report.to_dict()))
    assert [i["kind"] for i in data["incidents"]] == [i.kind for i in report.incidents]
    assert pd.Timestamp(data["incidents"][0]["first_seen"]) == report.incidents[0].first_seen
