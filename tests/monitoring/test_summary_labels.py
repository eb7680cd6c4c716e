"""The label part read from window summaries, against the row path on the same predictions and labels.

New York's 2013 flights (``tests/realdata.py``), shuffled over 18 days of 1,200 predictions
(so every day is a draw from one population), scored by a logistic regression fitted on
other flights; its label-free estimate is the CBPE fitted on a holdout of 4,000 more.
70% of the predictions get their true label (late or not) one to three days later; the
evaluation runs at the end of the 18th day, so the last days are partly labelled. In the
drifting world, a random 30% of the labels of the predictions from day 9 on are flipped
(the relation between the inputs and the outcome changed while the inputs held).

With 600 predictions a day the two paths part on when a drift is first found: the row path
tests a window at each label checkpoint, and there found the first drifting window on its
early labels (z 3.3 and 3.5 at 40% and 50% flipped), which all its labels carried less far
(z 3.15 and 3.23, below the critical 3.29); from the summaries the drift was found three
windows later.

Each world runs through :func:`label_findings` (the rows and a store of labels) and through
:func:`label_findings_from_summaries` (one :class:`LabelSums` per day, built from the same
rows as the summariser builds it). A regression world (flight arrival delays, MAE) checks
the realized values and the holdout comparison of a regressor.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopwatch.application.monitoring.label_evidence import LabelPart, label_findings
from loopwatch.application.monitoring.summary_labels import (
    NOT_MEASURED, LabelledWindow, evidence_available_at, label_findings_from_summaries,
)
from loopwatch.application.monitoring.window_checks import PerformanceContext
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.errors import InvalidInput
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.performance import classifier_reference, fit_estimator, regressor_reference
from loopwatch.stores.base import to_micros
from loopwatch.summaries.labels import LabelSums
from tests.realdata import flight_delays, flights, random_days

UTC = timezone.utc
START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS, PER_DAY, DRIFT_DAY = 18, 1200, 9
#: Shares of the labels flipped from DRIFT_DAY on: none, and a drift.
STEADY, DRIFTING = 0.0, 0.3
UNTIL = START + timedelta(days=DAYS)
SPEC = WindowSpec.parse("1d")
#: A day whose inputs are said to have drifted: no concept test there, in either path.
INPUT_DRIFT = {START + timedelta(days=3)}
FEATURES = ["sched_hour", "distance", "weekday", "origin", "carrier"]
LATEST_DELAY = timedelta(days=3)


def day(index: int) -> datetime:
    return START + timedelta(days=index)


class LabelStore:
    """What :func:`label_findings` reads of a store: the labels received by a moment."""

    def __init__(self, labels: pd.DataFrame) -> None:
        self.labels = labels.sort_values("label_time", kind="stable")

    def iter_labels(self, name: str, *, until: datetime, by: str) -> Iterator[SimpleNamespace]:
        known = self.labels[self.labels["label_time"] < pd.Timestamp(until)]
        for request, row, label, at in zip(known["__request_id"], known["__row_index"], known["label"],
                                           known["label_time"]):
            yield SimpleNamespace(request_id=request, row_index=row, label=label, label_time=at.to_pydatetime(),
                                  client_id="crm")


def context_of(*, task: str, metric: str, estimator: Any, reference: Any) -> PerformanceContext:
    classes = (0, 1) if task == "classification" else ()
    schema = SimpleNamespace(classes=classes, names=FEATURES, categorical=[])
    version = SimpleNamespace(task=task, version=1, schema=schema, metrics={})
    return PerformanceContext(version=version, metric=metric,  # type: ignore[arg-type]
                              holdout=reference.holdout_metrics[metric], higher_is_better=metric != "mae",
                              default_segment=None, estimator=estimator, reference=reference)


def log_of(data: pd.DataFrame, predictions: np.ndarray, truth: np.ndarray, *, seed: int,
           flip: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prediction log's frame as the loop engine reads it, and the labels received by UNTIL."""
    rng = np.random.default_rng(seed)
    frame = data[FEATURES].copy()
    frame["__timestamp"] = data["time"].to_numpy()
    frame["__version"] = 1
    frame["__request_id"] = [f"r{i}" for i in range(len(data))]
    frame["__row_index"] = 0
    if predictions.ndim == 2:  # a classifier's probabilities
        frame["prediction"] = predictions.argmax(axis=1)
        frame["probability_0"], frame["probability_1"] = predictions[:, 0], predictions[:, 1]
    else:
        frame["prediction"] = predictions
    index = ((frame["__timestamp"] - pd.Timestamp(START)) // pd.Timedelta(days=1)).to_numpy()
    label = truth.copy()
    flipped = (index >= DRIFT_DAY) & (rng.random(len(label)) < flip)
    label[flipped] = 1 - label[flipped]
    chosen = rng.random(len(label)) < 0.7
    # delays of one to three days, to the microsecond (the summaries keep whole seconds)
    delay = pd.to_timedelta((rng.uniform(1, 3, len(label)) * 86_400e6).astype(np.int64), unit="us")
    labels = pd.DataFrame({"__request_id": frame["__request_id"], "__row_index": 0, "label": label,
                           "label_time": frame["__timestamp"] + delay})[chosen]
    return frame, labels[labels["label_time"] < pd.Timestamp(UNTIL)]


def summaries_of(frame: pd.DataFrame, labels: pd.DataFrame, context: PerformanceContext, *,
                 split: bool = False) -> list[LabelledWindow]:
    """One summary per day, its label part built from the day's labelled rows as the summariser
    does (``split``: with its split by the day each label arrived on, as the summariser keeps it)."""
    joined = frame.merge(labels, on=["__request_id", "__row_index"])
    label_starts = SPEC.starts_of(joined["__timestamp"])

    def sums_of(mine: pd.DataFrame) -> LabelSums:
        delays = (mine["label_time"] - mine["__timestamp"]).dt.total_seconds().tolist()
        if context.version.task == "classification":
            return LabelSums.from_pairs(task="classification", predicted=mine["prediction"].tolist(),
                                        truth=mine["label"].tolist(), delay_seconds=delays, classes=[0, 1],
                                        proba=mine[["probability_0", "probability_1"]].to_numpy())
        return LabelSums.from_pairs(task="regression", predicted=mine["prediction"].tolist(),
                                    truth=mine["label"].tolist(), delay_seconds=delays)

    out = []
    for start, rows in frame.groupby(SPEC.starts_of(frame["__timestamp"]), sort=True):
        mine = joined[label_starts == start]
        sums = None
        if len(mine):
            sums = sums_of(mine)
            if split:
                arrived = mine["label_time"].dt.floor("D")
                sums = sums.with_arrivals({to_micros(day.to_pydatetime()): sums_of(part)
                                           for day, part in mine.groupby(arrived)})
        estimated, why = context.estimate_or_why(rows)
        begin = start.to_pydatetime()
        out.append(LabelledWindow(start=begin, end=begin + timedelta(days=1), version=1, predictions=len(rows),
                                  labels=sums, estimated=estimated, estimated_missing=why))
    return out


@lru_cache(maxsize=1)
def classifier() -> tuple[Any, PerformanceContext, pd.DataFrame]:
    data = flights().sample(n=8000 + DAYS * PER_DAY, random_state=0).reset_index(drop=True)
    train, holdout = data.iloc[:4000], data.iloc[4000:8000]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train[FEATURES], train["late"])
    reference = classifier_reference(holdout["late"].to_numpy(), model.predict_proba(holdout[FEATURES]),
                                     classes=[0, 1], X=holdout[FEATURES].reset_index(drop=True))
    context = context_of(task="classification", metric="roc_auc", reference=reference,
                         estimator=fit_estimator(reference, task="classification", classes=[0, 1], seed=0))
    return model, context, data.iloc[8000:]


@lru_cache(maxsize=None)
def world(flip: float, split: bool = False) -> tuple[LabelPart, LabelPart, list[LabelledWindow]]:
    """The label part of one world by the row path and by the summaries path."""
    model, context, production = classifier()
    data = random_days(production, days=DAYS, start=START.isoformat(), seed=1)
    frame, labels = log_of(data, model.predict_proba(data[FEATURES]), data["late"].to_numpy(), seed=1, flip=flip)
    config = MonitoringConfig()
    rows = label_findings(LabelStore(labels), "flights", frame, {1: context}, config,  # type: ignore[arg-type]
                          spec=SPEC, until=UNTIL, drifted_windows=INPUT_DRIFT)
    windows = summaries_of(frame, labels, context, split=split)
    # the summaries come in any order
    summed = label_findings_from_summaries(windows[::-1], {1: context}, config, spec=SPEC,
                                           drifted_windows=INPUT_DRIFT)
    return rows, summed, windows


def bound_of(window: LabelledWindow) -> float:
    assert window.labels is not None
    return window.labels.metrics(n_classes=2)["roc_auc_bound"]


@pytest.mark.parametrize("flip", [STEADY, DRIFTING])
def test_each_window_reads_as_on_the_rows(flip: float) -> None:
    rows, summed, windows = world(flip)
    assert len(rows.performance.windows) == len(summed.performance.windows) == DAYS
    measured = 0
    for row, mine, window in zip(rows.performance.windows, summed.performance.windows, windows):
        assert (mine.start, mine.predictions, mine.labels, mine.inputs_drifted) == \
               (row.start, row.predictions, row.labels, row.inputs_drifted)
        assert mine.estimated == row.estimated  # the caller's estimate, the same call
        if row.realized is None:
            assert mine.realized is None and mine.realized_missing == row.realized_missing
            continue
        measured += 1
        assert mine.realized is not None and mine.realized.n == row.realized.n
        assert abs(mine.realized.value - row.realized.value) <= bound_of(window)
        # Hanley-McNeil widened by the bins' bound, against 200 bootstrap resamples
        assert 0.85 <= mine.realized.standard_error / row.realized.standard_error <= 1.5
        assert (mine.departure is None) == (row.departure is None)
        if row.start in {f.window_start for f in rows.findings}:
            continue  # the row path stops testing a window found drifting, maybe on its early labels
        if mine.departure is not None and row.departure is not None:
            assert mine.departure.basis == row.departure.basis
            assert abs(mine.departure.departure - row.departure.departure) <= bound_of(window) + 1e-4
    # the last day's labels have not begun to arrive (the one before has a fifth of them)
    assert measured == DAYS - 1
    last = summed.performance.windows[-1]
    assert last.labels == 0 and last.realized_missing is not None
    assert last.realized_missing.to_dict()["reason"] == "too_few_labels"
    assert summed.performance.windows[3].departure is None  # its inputs drifted


def test_a_seeded_concept_drift_is_found_by_both_and_dated_no_earlier() -> None:
    rows, summed, windows = world(DRIFTING)
    found = {f.window_start: f for f in rows.findings}
    mine = {f.window_start: f for f in summed.findings}
    assert found and mine and {f.kind for f in summed.findings} == {"concept_drift"}
    assert min(found) == min(mine) == day(DRIFT_DAY)
    first = mine[min(mine)]
    # not before the row path, which saw each label arrive; within a window of the last label's arrival
    assert first.available_at >= found[min(found)].available_at
    assert first.window_end + timedelta(days=1) <= first.available_at <= first.window_end + LATEST_DELAY + SPEC.length
    window = next(w for w in windows if w.start == first.window_start)
    assert first.available_at == evidence_available_at(window, SPEC)
    assert first.evidence["realized"]["value"] < first.evidence["estimated"]["value"] - 0.1


@pytest.mark.parametrize("flip", [STEADY, DRIFTING])
def test_with_labels_split_by_arrival_day_the_findings_are_the_rows_dated_alike(flip: float) -> None:
    """With the split the summariser keeps, each window is tested at each checkpoint its labels
    reached, as on the rows: the drift is found in the same first window, on the same day (later
    windows can differ at the bar: their intervals are analytic, the rows' bootstrapped)."""
    rows, summed, _ = world(flip, split=True)
    assert bool(summed.findings) == bool(rows.findings) == (flip == DRIFTING)
    if rows.findings:
        first = min(summed.findings, key=lambda f: f.window_start)
        expected = min(rows.findings, key=lambda f: f.window_start)
        assert (first.window_start, first.available_at) == (expected.window_start, expected.available_at)
        # never later than when the window's last label was in (the date without the split)
        (unsplit,) = [f for f in world(flip)[1].findings if f.window_start == first.window_start]
        assert first.available_at <= unsplit.available_at
    for row, mine in zip(rows.performance.windows, summed.performance.windows):
        assert (mine.departure is None) == (row.departure is None), row.start


def test_a_world_without_drift_gives_no_finding_in_either() -> None:
    rows, summed, _ = world(STEADY)
    assert rows.findings == [] and summed.findings == []


@pytest.mark.parametrize("flip", [STEADY, DRIFTING])
def test_coverage_is_the_rows_and_the_delay_within_its_bins(flip: float) -> None:
    rows, summed, _ = world(flip)
    row, mine = rows.labels, summed.labels
    assert (mine.predictions, mine.labelled, mine.coverage) == (row.predictions, row.labelled, row.coverage)
    assert mine.windows == row.windows
    assert row.delay_hours is not None and mine.delay_hours is not None
    assert mine.delay_hours["max"] == pytest.approx(row.delay_hours["max"], abs=0.01)
    for q in ("p10", "p50", "p90"):
        assert mine.delay_hours[q] == pytest.approx(row.delay_hours[q], rel=mine.delay_relative_error, abs=0.01)
    # whole windows against the rows' cut: here the rows take the first hours of the first window
    # still being labelled (55% labelled), the summaries leave it out (counting it: 0.694)
    assert mine.coverage_mature == pytest.approx(row.coverage_mature, abs=0.002)
    assert mine.coverage_mature > mine.coverage  # the last days' labels are still arriving
    assert mine.to_dict()["delay_relative_error"] == 0.0443 and "delay_relative_error" not in row.to_dict()


@pytest.mark.parametrize("flip", [STEADY, DRIFTING])
def test_each_version_against_its_holdout_on_its_stable_windows(flip: float) -> None:
    rows, summed, windows = world(flip)
    row, mine = rows.performance.versions[1], summed.performance.versions[1]
    assert row.realized is not None and mine.realized is not None and mine.holdout == row.holdout
    # the same windows left out (the input drift, the concept drift from its first window on)
    assert mine.realized.n == row.realized.n
    assert abs(mine.realized.value - row.realized.value) <= 0.015  # the merged bins' bound: 0.014
    assert mine.gap == pytest.approx(row.gap, abs=0.015) and not mine.overfitting_gap and not row.overfitting_gap


def test_what_needs_rows_is_left_out_and_said() -> None:
    rows, summed, _ = world(DRIFTING)
    assert summed.performance.segments == {} == rows.performance.segments  # no segment feature: none either way
    assert summed.labels.concept_stream is None and rows.labels.concept_stream is not None
    assert summed.performance.to_dict()["not_measured"] == NOT_MEASURED
    assert "not_measured" not in rows.performance.to_dict()


def test_a_classifiers_target_drift_and_value_are_the_rows() -> None:
    """Both read only the confusion counts: the chi-square test of the labels, and the realized
    value with the same bootstrap (it resamples the counts)."""
    model, context, production = classifier()
    data = random_days(production, days=DAYS, start=START.isoformat(), seed=1)
    frame, labels = log_of(data, model.predict_proba(data[FEATURES]), data["late"].to_numpy(), seed=1, flip=DRIFTING)
    config = MonitoringConfig(value_matrix={"1": {"1": 40, "0": -250}, "0": {"1": -15, "0": 0}})
    rows = label_findings(LabelStore(labels), "flights", frame, {1: context}, config,  # type: ignore[arg-type]
                          spec=SPEC, until=UNTIL, drifted_windows=INPUT_DRIFT)
    summed = label_findings_from_summaries(summaries_of(frame, labels, context), {1: context}, config, spec=SPEC,
                                           drifted_windows=INPUT_DRIFT)
    tested = valued = 0
    for row, mine in zip(rows.performance.windows, summed.performance.windows):
        assert mine.target_drift == row.target_drift, row.start
        assert mine.value.get("realized") == row.value.get("realized"), row.start
        assert "expected" in row.value and "expected" not in mine.value  # it needs each row's probabilities
        tested += row.target_drift is not None
        valued += "realized" in row.value
    # every window with labels (all but the last day) was tested and valued
    assert tested == valued == DAYS - 1
    drifted = [w.target_drift["drifted"] for w in summed.performance.windows if w.target_drift]
    # flipping 30% of the labels moves the class shares: every window from the drift's day on
    assert drifted == [False] * DRIFT_DAY + [True] * (DAYS - 1 - DRIFT_DAY)


def test_a_regressor_reads_as_on_the_rows() -> None:
    data = flight_delays().sample(n=4000 + DAYS * 300, random_state=2).reset_index(drop=True)
    train, holdout, production = data.iloc[:2000], data.iloc[2000:4000], data.iloc[4000:]
    model = LinearRegression().fit(train[FEATURES], train["arr_delay"])
    reference = regressor_reference(holdout["arr_delay"].to_numpy(), model.predict(holdout[FEATURES]))
    context = context_of(task="regression", metric="mae", estimator=None, reference=reference)
    production = random_days(production, days=DAYS, start=START.isoformat(), seed=3)
    frame, labels = log_of(production, model.predict(production[FEATURES]), production["arr_delay"].to_numpy(),
                           seed=3, flip=0.0)
    config = MonitoringConfig(min_labels=100)
    rows = label_findings(LabelStore(labels), "delays", frame, {1: context}, config,  # type: ignore[arg-type]
                          spec=SPEC, until=UNTIL, drifted_windows=set())
    summed = label_findings_from_summaries(summaries_of(frame, labels, context), {1: context}, config, spec=SPEC,
                                           drifted_windows=set())
    for row, mine in zip(rows.performance.windows, summed.performance.windows):
        assert mine.estimated_missing == row.estimated_missing and mine.departure is None
        if row.realized is None:
            assert mine.realized_missing == row.realized_missing
            continue
        assert mine.realized is not None
        assert mine.realized.value == pytest.approx(row.realized.value, rel=1e-12)
        assert 0.6 <= mine.realized.standard_error / row.realized.standard_error <= 1.5
    row_v, mine_v = rows.performance.versions[1], summed.performance.versions[1]
    assert mine_v.realized is not None and row_v.realized is not None
    assert mine_v.realized.value == pytest.approx(row_v.realized.value, rel=1e-12)
    assert (mine_v.gap, mine_v.holdout) == (row_v.gap, row_v.holdout)
    assert mine_v.z == pytest.approx(row_v.z, rel=0.25)


def test_count_windows_have_no_summaries() -> None:
    with pytest.raises(InvalidInput):
        label_findings_from_summaries([], {}, MonitoringConfig(), spec=WindowSpec.parse("count:100"),
                                      drifted_windows=set())


def test_nothing_labelled_yet() -> None:
    _, context, _ = classifier()
    window = LabelledWindow(start=day(0), end=day(1), version=1, predictions=500, labels=None,
                            estimated=None, estimated_missing=None)
    part = label_findings_from_summaries([window], {1: context}, MonitoringConfig(), spec=SPEC,
                                         drifted_windows=set())
    assert part.findings == [] and part.labels.to_dict() == {"predictions": 500, "labelled": 0, "coverage": 0.0}
    (entry,) = part.performance.windows
    assert entry.realized is None and entry.realized_missing is not None
    assert entry.realized_missing.to_dict()["reason"] == "too_few_labels"
    assert part.performance.versions[1].realized is None
