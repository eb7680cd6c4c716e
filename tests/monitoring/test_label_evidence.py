"""What the labels say, on a real SQLite log: coverage, delay, concept drift dated by label arrival.

Twelve simulated days of a churn model (400 predictions a day) are logged in
process. A random 60% of the predictions get a label two to three days later
(by entity id, from the source "crm"). The labels are drawn from the simulator's
true churn probability, except:

- days 2-3: the inputs drift (``watch_hours`` up by one standard deviation) and the
  labels are drawn from the flipped relationship (churn where the model says stay):
  a period whose inputs moved, so what its labels say is not a concept drift;
- day 7 on: the inputs hold and the labels are drawn from the flipped relationship,
  so the model's realized AUC falls far below its estimate: a concept drift.

A second model, "sparse", gets labels for 3% of its predictions only.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.report import LoopReport
from loopwatch.application.monitoring.label_evidence import LabelPart, label_findings, labelled_frame, signals_of
from loopwatch.application.monitoring.loops_runner import evaluate_loops, record_incidents
from loopwatch.application.prediction import PredictCall
from loopwatch.records.feedback import Label
from loopwatch.simulate import ChurnScenario, Timeline, default_timeline, rows_to_frame, stable_churn_probability
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 12
PER_DAY = 400
SHIFT_DAY, SHIFT_DAYS = 2, 2
CONCEPT_DAY = 7
LABELLED_SHARE = 0.6
SPARSE_SHARE = 0.03
DELAY = timedelta(days=2)


def day(index: int) -> datetime:
    return START + timedelta(days=index)


def flipped(index: int) -> bool:
    return SHIFT_DAY <= index < SHIFT_DAY + SHIFT_DAYS or index >= CONCEPT_DAY


def scenario(seed: int, *, shift: bool) -> ChurnScenario:
    incidents: tuple[Any, ...] = ()
    if shift:
        timeline = default_timeline(covariate_shift_day=SHIFT_DAY, covariate_shift_sd=1.0,
                                    data_incident_days=SHIFT_DAYS)
        incidents = tuple(i for i in timeline.incidents if i.kind == "covariate_shift")
    return ChurnScenario(seed=seed, days=DAYS, predictions_per_day=PER_DAY, timeline=Timeline(incidents=incidents))


def replay(ws: Workspace, name: str, world: ChurnScenario, *, share: float, flip: bool) -> None:
    rng = np.random.default_rng(world.seed)
    labels: list[Label] = []
    for today in world.days():
        futures = []
        for i, batch in enumerate(today.batches):
            call = PredictCall(model_name=name, rows=[dict(r) for r in batch.rows], request_id=f"{name}-{today.index}-{i}",
                               client_id=batch.client_id, client_version=batch.client_version,
                               request_type=batch.request_type, timestamps=list(batch.timestamps),
                               entity_ids=list(batch.entity_ids))
            futures.append(ws.writer.submit(ws.predictor.predict(call)))
            probability = stable_churn_probability(rows_to_frame(batch.rows))
            if flip and flipped(today.index):
                probability = 1.0 - probability
            churned = rng.random(len(probability)) < probability
            chosen = rng.random(len(probability)) < share
            for at, entity, outcome, keep in zip(batch.timestamps, batch.entity_ids, churned, chosen):
                if keep:
                    arrives = at + DELAY + timedelta(hours=float(rng.random() * 24.0))
                    labels.append(Label(model_name=name, label=int(outcome), label_time=arrives,
                                        entity_id=entity, client_id="crm"))
        for future in futures:
            future.result()
    outcomes = ws.store.write_labels(labels)
    assert {o.status for o in outcomes} == {"stored"}


class Log:
    def __init__(self, home: Path) -> None:
        self.database = home / "labels.db"

    def workspace(self, database: Path | None = None) -> Workspace:
        path = database or self.database
        return Workspace(Settings.from_env({}, home=path.parent, database=str(path)))


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    found = Log(tmp_path_factory.mktemp("label-evidence"))
    world = scenario(4, shift=True)
    with found.workspace() as ws:
        training = world.training_data(n=3000)
        ws.train("churn", training, target="churned", seed=0)
        ws.train("sparse", training, target="churned", seed=0)
        replay(ws, "churn", world, share=LABELLED_SHARE, flip=True)
        replay(ws, "sparse", scenario(5, shift=False), share=SPARSE_SHARE, flip=False)
    return found


@pytest.fixture(scope="module")
def report(log: Log) -> LoopReport:
    with log.workspace() as ws:
        return evaluate_loops(ws.store, ws.registry, "churn", until=day(DAYS))


@pytest.fixture(scope="module")
def sparse(log: Log) -> LoopReport:
    with log.workspace() as ws:
        return evaluate_loops(ws.store, ws.registry, "sparse", until=day(DAYS))


@pytest.fixture
def copy(log: Log, tmp_path: Path) -> Iterator[Workspace]:
    target = tmp_path / "copy.db"
    with sqlite3.connect(log.database) as source, sqlite3.connect(target) as dest:
        source.backup(dest)
    with log.workspace(target) as ws:
        yield ws


def stored_labels(ws: Workspace, name: str, until: datetime) -> pd.DataFrame:
    return pd.DataFrame([
        {"request_id": s.request_id, "row_index": s.row_index, "label_time": s.label_time,
         "prediction_time": s.prediction_time}
        for s in ws.store.iter_labels(name, until=until)
    ])


def label_times_of(ws: Workspace, name: str, index: int) -> pd.Series:
    """When the labels of the predictions made on day ``index`` arrived."""
    labels = stored_labels(ws, name, until=day(DAYS + 10))
    mine = labels[(labels["prediction_time"] >= day(index)) & (labels["prediction_time"] < day(index + 1))]
    return mine["label_time"]


def frame_of(ws: Workspace, name: str) -> pd.DataFrame:
    from loopwatch.application.monitoring.windows import events_frame

    events = list(ws.store.iter_events(EventQuery(model_name=name, limit=10_000)))
    frame = events_frame(events, ws.registry.resolve(name).schema.classes)
    return frame.sort_values("__timestamp", kind="stable").reset_index(drop=True)


def concept_drifts(report: LoopReport) -> list[Any]:
    return [i for i in report.incidents if i.kind == "concept_drift"]


# --- concept drift, dated by the labels ------------------------------------------------------------


def test_a_changed_concept_is_a_concept_drift_dated_by_label_arrival(log: Log, report: LoopReport) -> None:
    (incident,) = concept_drifts(report)
    assert incident.first_seen == day(CONCEPT_DAY)  # the predictions it concerns
    assert incident.loop == "model_selection"
    with log.workspace() as ws:
        arrived = label_times_of(ws, "churn", CONCEPT_DAY)
    # known only once labels of those predictions had arrived, and before the evaluation
    assert arrived.min() <= incident.detected_at <= report.evaluated_at
    assert incident.detected_at >= incident.first_seen + DELAY
    # the stream of losses in arrival order dates it the same way
    stream = report.labels.concept_stream
    assert stream is not None
    assert pd.Timestamp(stream["concept_drift_prediction_time"]) == day(CONCEPT_DAY)
    assert pd.Timestamp(stream["concept_drift_at"]) >= arrived.min()
    assert stream["loss_after"] > stream["loss_before"] + 0.2
    assert not stream["inputs_drifted_then"]


def test_the_realized_metric_departs_from_the_estimate_only_where_the_labels_flipped(report: LoopReport) -> None:
    measured = {pd.Timestamp(w.start): w for w in report.performance.windows if w.realized is not None}
    for start, window in measured.items():
        index = (start - pd.Timestamp(START)).days
        gap = window.estimated.value - window.realized.value
        assert (gap > 0.3) is flipped(index), (index, gap)
    # windows whose labels have not arrived by the evaluation are not measured
    assert max(measured) < pd.Timestamp(day(DAYS - 2))


def test_a_concept_drift_is_not_known_before_its_labels_arrive(log: Log) -> None:
    with log.workspace() as ws:
        first_label = label_times_of(ws, "churn", CONCEPT_DAY).min()
        before = evaluate_loops(ws.store, ws.registry, "churn", until=first_label.to_pydatetime())
    assert concept_drifts(before) == []
    assert max(w.start for w in before.windows) >= day(CONCEPT_DAY)  # its predictions were in


def test_labels_of_a_period_whose_inputs_drifted_do_not_give_a_concept_drift(report: LoopReport) -> None:
    (shift,) = [i for i in report.incidents if i.kind == "covariate_shift"]
    assert shift.first_seen == day(SHIFT_DAY) and shift.loop == "eda"
    drifted = [w for w in report.performance.windows if w.inputs_drifted]
    assert [pd.Timestamp(w.start) for w in drifted] == [pd.Timestamp(day(SHIFT_DAY + i)) for i in range(SHIFT_DAYS)]
    # their labels did say the model was wrong...
    assert all(w.realized.value < 0.4 for w in drifted)
    # ...but the inputs moved then, so no concept drift concerns those predictions
    assert [i.first_seen for i in concept_drifts(report)] == [day(CONCEPT_DAY)]


def test_label_findings_leave_out_windows_whose_inputs_drifted(log: Log) -> None:
    from loopwatch.application.monitoring.window_checks import PerformanceContext
    from loopwatch.application.monitoring.windows import WindowSpec

    config = MonitoringConfig()
    with log.workspace() as ws:
        frame = frame_of(ws, "churn")
        version = ws.registry.resolve("churn")
        contexts = {version.version: PerformanceContext.build(ws.registry, "churn", version, config)}
        spec = WindowSpec.parse("1d")
        every = {day(i) for i in range(DAYS)}
        quiet = label_findings(ws.store, "churn", frame, contexts, config, spec=spec, until=day(DAYS),
                               drifted_windows=every)
        found = label_findings(ws.store, "churn", frame, contexts, config, spec=spec, until=day(DAYS),
                               drifted_windows=set())
    assert quiet.findings == []
    assert quiet.labels.concept_stream is None  # no predictions left whose inputs held
    # told nothing drifted, the flipped labels of the shifted days are a concept drift of their own
    starts = sorted({f.window_start for f in found.findings})
    assert starts[0] == day(SHIFT_DAY) and day(CONCEPT_DAY) in starts
    assert all(f.kind == "concept_drift" and f.available_at >= f.window_start + DELAY for f in found.findings)


def test_a_concept_drift_stays_open_while_its_labels_lag(copy: Workspace, report: LoopReport) -> None:
    # the last windows have no labels yet: that the concept drift is not seen there says nothing
    record_incidents(copy.store, report, now=day(DAYS))
    status = {r.kind: r.status for r in copy.store.list_incidents("churn")}
    assert status == {"concept_drift": "open", "covariate_shift": "resolved"}


# --- coverage and delay -------------------------------------------------------------------------------


def expected_bookkeeping(ws: Workspace, name: str, until: datetime) -> dict[str, Any]:
    """The labels' bookkeeping computed with pandas, straight from the store."""
    events = pd.DataFrame([{"request_id": e.request_id, "row_index": e.row_index, "ts": e.timestamp}
                           for e in ws.store.iter_events(EventQuery(model_name=name, until=until, limit=10_000))
                           if e.request_type != "shadow"])
    labels = stored_labels(ws, name, until=until).merge(events, on=["request_id", "row_index"])
    hours = (labels["label_time"] - labels["prediction_time"]).dt.total_seconds() / 3600.0
    p90 = hours.quantile(0.9)
    horizon = events["ts"].max() - pd.Timedelta(hours=p90)
    per_day = events.groupby(events["ts"].dt.floor("D")).size()
    labelled_per_day = labels.groupby(labels["ts"].dt.floor("D")).size()
    return {
        "predictions": len(events),
        "labelled": len(labels),
        "coverage": round(len(labels) / len(events), 4),
        "delay_hours": {"p10": round(hours.quantile(0.1), 2), "p50": round(hours.quantile(0.5), 2),
                        "p90": round(p90, 2), "max": round(hours.max(), 2)},
        "windows": [{"start": start.isoformat(), "predictions": int(n), "labelled": int(labelled_per_day.get(start, 0)),
                     "coverage": round(int(labelled_per_day.get(start, 0)) / int(n), 4)}
                    for start, n in per_day.items()],
        "coverage_mature": round((labels["ts"] < horizon).sum() / (events["ts"] < horizon).sum(), 4),
    }


@pytest.mark.parametrize("name", ["churn", "sparse"])
def test_the_label_bookkeeping_matches_pandas(log: Log, report: LoopReport, sparse: LoopReport, name: str) -> None:
    found = report if name == "churn" else sparse
    with log.workspace() as ws:
        expected = expected_bookkeeping(ws, name, day(DAYS))
    labels = {k: v for k, v in found.labels.to_dict().items() if k != "concept_stream"}
    assert labels == expected
    # the last days' labels have not arrived: what labelling achieves is read on older predictions
    assert labels["coverage_mature"] > labels["coverage"]
    share = LABELLED_SHARE if name == "churn" else SPARSE_SHARE
    assert labels["coverage_mature"] == pytest.approx(share, abs=0.02)
    assert 48.0 <= labels["delay_hours"]["p10"] < labels["delay_hours"]["p90"] <= labels["delay_hours"]["max"] <= 72.0


def test_low_label_coverage_calls_for_data_collection(log: Log, report: LoopReport, sparse: LoopReport) -> None:
    (signal,) = [r for r in sparse.recommendations if r.reason == "low_label_coverage"]
    assert signal.loop == "data_collection" and signal.incident_id is None
    assert signal.evidence == {"coverage": sparse.labels.coverage_mature, "min_label_coverage": 0.05}
    # 60% of predictions labelled is plenty
    assert not [r for r in report.recommendations if r.reason == "low_label_coverage"]
    # and the threshold is the configuration's
    part = LabelPart(labels=report.labels, performance=report.performance)
    with log.workspace() as ws:
        strict = signals_of(ws.store, "churn", MonitoringConfig(min_label_coverage=0.9), part, report.incidents,
                            until=day(DAYS))
    assert strict[0].reason == "low_label_coverage" and strict[0].evidence["coverage"] == report.labels.coverage_mature


# --- labelled_frame -------------------------------------------------------------------------------


def test_each_label_lands_on_the_prediction_of_its_entity(log: Log) -> None:
    with log.workspace() as ws:
        frame = frame_of(ws, "churn")
        entities = {(e.request_id, e.row_index): e.entity_id
                    for e in ws.store.iter_events(EventQuery(model_name="churn", limit=10_000))}
        until = day(8)
        joined = labelled_frame(ws.store, "churn", frame, until=until)
        expected = stored_labels(ws, "churn", until=until)
    assert len(joined) == len(expected) > 0
    assert (joined["label_time"] < until).all() and (joined["label_source"] == "crm").all()
    assert (joined["label_time"] >= joined["__timestamp"] + DELAY).all()
    keys = set(zip(joined["__request_id"], joined["__row_index"]))
    assert keys == set(zip(expected["request_id"], expected["row_index"]))
    assert all(entities[k] is not None for k in keys)


def test_labelled_frame_without_labels_is_empty(log: Log) -> None:
    with log.workspace() as ws:
        joined = labelled_frame(ws.store, "churn", frame_of(ws, "churn"), until=day(1))
    assert joined.empty and list(joined.columns)[-3:] == ["label", "label_time", "label_source"]


# --- the business metric beside the model ---------------------------------------------------------


@pytest.mark.parametrize("fall", [0.0, 300.0])
def test_a_business_metric_that_falls_while_the_model_holds_calls_for_the_business_loop(
    copy: Workspace, sparse: LoopReport, fall: float
) -> None:
    from loopwatch.records.feedback import BusinessObservation

    rng = np.random.default_rng(3)
    revenue = [1000.0 - (fall if i >= DAYS // 2 else 0.0) + rng.normal(0, 20) for i in range(DAYS)]
    copy.store.write_business_metrics([BusinessObservation(name="revenue", timestamp=day(i) + timedelta(hours=12),
                                                           value=v) for i, v in enumerate(revenue)])
    # the sparse model's performance holds over the period (its labels saw no concept drift)
    part = LabelPart(labels=sparse.labels, performance=sparse.performance)
    config = MonitoringConfig(business_metric="revenue")
    signals = signals_of(copy.store, "sparse", config, part, [], until=day(DAYS))
    business = part.business
    assert business is not None and business.observations == DAYS
    half = DAYS // 2
    assert business.early_mean == pytest.approx(np.mean(revenue[:half]))
    assert business.late_mean == pytest.approx(np.mean(revenue[half:]))
    decoupled = [s for s in signals if s.reason == "business_decoupled"]
    if fall:
        (signal,) = decoupled
        assert signal.loop == "business" and signal.evidence == business.to_dict()
        assert business.decoupled and business.p_value is not None and business.p_value < config.drift_alpha
    else:
        assert decoupled == [] and not business.decoupled
