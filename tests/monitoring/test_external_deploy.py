"""A new external model version is a deploy the loop engine lines its evidence up with.

A monitor-only regressor of flight air time (real 2013 New York departures) is registered
from a February reference. Ten days of its predictions are ingested from a Parquet file, as
a batch job elsewhere would leave them: the first six days under the label ``air-2026-01``,
the last four under ``air-2026-03``. The new version is five times slower, and its feature
pipeline sends distances in kilometres. Every monitor-only version shares one artifact hash
(that of no bytes), so only the label, become the next integer version, tells the two apart.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.application.file_ingestion import ColumnMap, ingest_file
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.report import LoopReport
from loopwatch.application.monitoring.loops_runner import evaluate_loops
from loopwatch.application.workspace import Workspace
from tests.realdata import flights

MODEL = "air-time"
FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance"]
START = pd.Timestamp("2026-03-01", tz="UTC")
DAYS, PER_DAY, DEPLOY_DAY = 10, 250, 6
OLD, NEW = "air-2026-01", "air-2026-03"
#: Median runtime (ms) of each external version.
RUNTIME_MS = {OLD: 8.0, NEW: 40.0}


def _predict(frame: pd.DataFrame) -> np.ndarray:
    """The team's model, as far as loopwatch can tell: a function of the features it never sees."""
    return (0.12 * frame["distance"].to_numpy(dtype=np.float64) + 18.0).round(1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, int]]:
    folder = tmp_path_factory.mktemp("external-deploy")
    rng = np.random.default_rng(11)
    data = flights().dropna(subset=["air_time"])
    month = data["time"].dt.month
    reference = data[month == 2].sample(n=4_000, random_state=5)[FEATURES + ["air_time"]].reset_index(drop=True)
    reference["prediction"] = _predict(reference)

    events = data[month == 3].sample(n=DAYS * PER_DAY, random_state=6)[FEATURES].reset_index(drop=True)
    day = np.repeat(np.arange(DAYS), PER_DAY)
    events["time"] = START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(
        rng.integers(0, 86_400, len(events)), unit="s")
    deployed = day >= DEPLOY_DAY
    label = np.where(deployed, NEW, OLD)
    # the new version's feature pipeline: distances in kilometres instead of miles
    events.loc[deployed, "distance"] = (events.loc[deployed, "distance"] * 1.609344).round(0)
    events["prediction"] = _predict(events)
    events["model_version"] = label
    events["latency_ms"] = np.array([RUNTIME_MS[v] for v in label]) * rng.lognormal(0.0, 0.1, len(events))
    events["request_id"] = [f"job-{i}" for i in range(len(events))]
    events.sort_values("time").to_parquet(folder / "march.parquet")

    settings = Settings(database=str(folder / "loopwatch.db"), home=folder)
    with Workspace(settings) as ws:
        ws.register(MODEL, reference=reference, target="air_time", prediction_column="prediction",
                    task="regression", categorical=["carrier", "origin", "dest", "weekday"])
        mapping = ColumnMap(fields={"request_id": "request_id", "timestamp": "time", "prediction": "prediction",
                                    "model_version": "model_version", "latency_ms": "latency_ms"})
        ingested = ingest_file(ws.registry, folder / "march.parquet", model=MODEL, mapping=mapping)
        assert ingested.accepted == len(events)
    return settings, ingested.versions


CONFIG = MonitoringConfig(latency_percentile=50.0, latency_budget_ratio=3.0, latency_baseline_windows=3)


def evaluated(settings: Settings, *, summaries: bool) -> LoopReport:
    from loopwatch.application.summaries import Summariser

    with Workspace(settings) as ws:
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0)) if summaries else None
        return evaluate_loops(ws.store, ws.registry, MODEL, since=START.to_pydatetime(),
                              until=(START + timedelta(days=DAYS)).to_pydatetime(), config=CONFIG,
                              summariser=summariser)


@pytest.fixture(scope="module")
def report(deployed: tuple[Settings, dict[str, int]]) -> tuple[LoopReport, dict[str, int]]:
    settings, versions = deployed
    return evaluated(settings, summaries=False), versions


def test_from_window_summaries_the_monitor_only_deploy_gives_the_same_incidents(
    deployed: tuple[Settings, dict[str, int]], report: tuple[LoopReport, dict[str, int]],
) -> None:
    """A monitor-only model has no client queries to watch (ingested events are none) and no
    detector to fit: from summaries, the same windows and the same incidents as from the log."""
    from_log, _ = report
    found = evaluated(deployed[0], summaries=True)
    assert [(w.start, w.n_events) for w in found.windows] == [(w.start, w.n_events) for w in from_log.windows]
    assert sorted((i.kind, i.first_seen) for i in found.incidents) == sorted(
        (i.kind, i.first_seen) for i in from_log.incidents)
    assert {"latency_regression", "software_change"} <= {i.kind for i in found.incidents}


def test_each_label_becomes_its_own_integer_version(report: tuple[LoopReport, dict[str, int]]) -> None:
    _, versions = report
    assert versions == {OLD: 2, NEW: 3}  # version 1 is the registered reference


def test_the_slower_new_version_is_a_latency_regression_that_names_it(
        report: tuple[LoopReport, dict[str, int]]) -> None:
    found, versions = report
    slow = [i for i in found.incidents if i.kind == "latency_regression"]
    assert slow, [(i.kind, i.summary) for i in found.incidents]
    first = min(slow, key=lambda i: i.first_seen)
    assert first.first_seen == (START + pd.Timedelta(days=DEPLOY_DAY)).to_pydatetime()
    changes = first.evidence["software_changes"]
    assert [(c["what"], c["value"], c["label"]) for c in changes] == [("model_version", str(versions[NEW]), NEW)]
    assert NEW in first.summary


def test_the_drift_only_the_new_version_sends_is_a_software_change_of_that_version(
        report: tuple[LoopReport, dict[str, int]]) -> None:
    found, versions = report
    changed = [i for i in found.incidents if i.kind == "software_change"]
    assert changed, [(i.kind, i.summary) for i in found.incidents]
    culprit = changed[0].evidence["software_change"]
    assert (culprit["what"], culprit["value"], culprit["label"]) == ("model_version", str(versions[NEW]), NEW)
    assert "distance" in culprit["features"] and NEW in changed[0].summary
    assert min(i.first_seen for i in changed) == (START + pd.Timedelta(days=DEPLOY_DAY)).to_pydatetime()
    # before the deploy, neither: the old version's days are the baseline
    early = [i for i in found.incidents if i.kind in ("software_change", "latency_regression")
             and i.first_seen < (START + pd.Timedelta(days=DEPLOY_DAY)).to_pydatetime()]
    assert not early
