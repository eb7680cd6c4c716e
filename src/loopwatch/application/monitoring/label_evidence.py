"""What the labels say, as of a moment: coverage, realized against estimated performance,
concept drift, and the signals that call for a loop without being an incident.

Every conclusion drawn from labels is dated by the arrival of the labels that
carried it: a prediction window's realized performance is only known once its
labels are in, so a concept drift on day 30 with labels 14 days late is found
on day 44 or later, never on day 30.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from loopwatch.errors import LoopwatchError
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.diagnosis import diagnose_labels
from loopwatch.loops.evidence import LabelEvidence
from loopwatch.loops.performance_evidence import (
    BusinessEvidence, CoverageWindow, DepartureTest, LabelCoverage, MetricInterval, PerformanceEvidence, PerformanceWindow,
    VersionPerformance,
)
from loopwatch.loops.report import Finding, Incident, Recommendation
from loopwatch.application.monitoring.concept_baseline import ConceptBaseline
from loopwatch.application.monitoring.pooled_concept import pooled_findings
from loopwatch.application.monitoring.outcomes import segment_performance, target_drift_of, window_value
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.stores.base import Store

#: Bootstrap resamples for a window's realized metric.
N_BOOT = 200
#: Share of the drift alpha each label checkpoint of a window gets (labels of a window arrive
#: over a few days, and it is tested each time).
CONCEPT_ALPHA_SHARE = 0.25
#: Earlier stable windows needed before a window is judged against their usual gap.
BASELINE_WINDOWS = 5
#: The basis a test names when it was judged against earlier windows.
BASELINE_BASIS = "earlier stable windows"


@dataclass
class LabelPart:
    findings: list[Finding] = field(default_factory=list)
    performance: PerformanceEvidence = field(default_factory=PerformanceEvidence)
    labels: LabelCoverage = field(default_factory=lambda: LabelCoverage(predictions=0, labelled=0))
    business: BusinessEvidence | None = None


def labelled_frame(store: Store, name: str, frame: pd.DataFrame, *, until: datetime) -> pd.DataFrame:
    """The window's predictions that have a label by ``until``, with the label's facts."""
    rows = [
        (s.request_id, s.row_index, s.label, s.label_time, s.client_id)
        for s in store.iter_labels(name, until=until, by="label_time")
    ]
    labels = pd.DataFrame(rows, columns=["__request_id", "__row_index", "label", "label_time", "label_source"])
    if labels.empty:
        return labels
    return frame.merge(labels, on=["__request_id", "__row_index"], how="inner")


def label_findings(
    store: Store,
    name: str,
    frame: pd.DataFrame,
    contexts: dict[int, Any],
    config: MonitoringConfig,
    *,
    spec: WindowSpec,
    until: datetime,
    drifted_windows: set[datetime],
) -> LabelPart:
    part = LabelPart()
    labelled = labelled_frame(store, name, frame, until=until)
    part.labels = _bookkeeping(frame, labelled, spec)
    if labelled.empty or spec.length is None:
        return part
    # each window is tested at every checkpoint its labels reach: a share of the alpha each
    z_crit = float(stats.norm.isf(config.drift_alpha * CONCEPT_ALPHA_SHARE))
    windows: list[PerformanceWindow] = []
    # per version, the usual gap of windows without a drift (see concept_baseline)
    baselines: dict[int, ConceptBaseline[datetime]] = {}
    # per version, the windows judged without a finding of their own, for the pooled test
    judged: dict[int, list[tuple[Any, ...]]] = {}
    found_at: dict[int, datetime] = {}  # per version, when its first window finding was available
    # per version, the first window of its concept drift: from there on the relation between
    # inputs and outcome is another, and production performance no longer says how well the
    # version generalises (an overfitting gap would be the drift seen a second time)
    concept_since: dict[int, datetime] = {}
    frame_starts = spec.starts_of(frame["__timestamp"])
    label_starts = spec.starts_of(labelled["__timestamp"])
    labelled_by = {key: rows for key, rows in labelled.groupby([label_starts, labelled["__version"]], sort=False)}
    for (start, number), rows in frame.groupby([frame_starts, frame["__version"]], sort=True):
        start = start.to_pydatetime()
        context = contexts[int(number)]
        mine = labelled_by.get((pd.Timestamp(start), number), labelled.iloc[:0])
        estimated, no_estimate = context.estimate_or_why(rows)
        entry = PerformanceWindow(start=start, model_version=int(number), metric=context.metric,
                                  predictions=int(len(rows)), labels=int(len(mine)), estimated=estimated,
                                  inputs_drifted=start in drifted_windows, estimated_missing=no_estimate)
        found = None
        departure = None
        tests: list[tuple[datetime, MetricInterval, DepartureTest, int]] = []
        testable = estimated is not None and start not in drifted_windows
        for checkpoint in _checkpoints(mine, spec):
            seen = mine[mine["label_time"] < checkpoint]
            if len(seen) < config.min_labels:
                continue
            realized = _realized(context, seen)
            if realized is None:
                continue
            entry.realized = realized
            if not testable or found is not None or estimated is None:
                continue
            departure = realized.value - estimated.value
            departure = -departure if context.higher_is_better else departure
            baseline = baselines.setdefault(int(number), ConceptBaseline())
            test = _departure_test(departure, realized, estimated, baseline.known(checkpoint))
            entry.departure = test
            tests.append((checkpoint, realized, test, len(seen)))
            if test.excess > config.performance_tolerance and test.z > z_crit:
                found = _concept_finding(context, start, spec, checkpoint, realized, estimated, test, len(seen))
        if tests and departure is not None:
            # the usual gap between realized and estimated, against which later windows are
            # judged: a window enters it once it is known not to be part of a drift
            last = tests[-1][2]
            baselines[int(number)].record(at=_checkpoints(mine, spec)[-1], departure=departure,
                                          drifted=found is not None, baselined=last.basis == BASELINE_BASIS)
        if entry.realized is None:  # a null metric says why: too few labels, one class, ...
            entry.realized_missing = _unrealized(context, mine, config.min_labels)
        entry.value = window_value(context, rows, mine, config)
        entry.target_drift = target_drift_of(context, mine, config)
        windows.append(entry)
        if found is not None:
            part.findings.append(found)
            found_at[int(number)] = min(found_at.get(int(number), found.available_at), found.available_at)
            concept_since[int(number)] = min(concept_since.get(int(number), start), start)
        elif tests:
            judged.setdefault(int(number), []).append((start, estimated, tests))
    for number, (finding, since) in pooled_findings(contexts, judged, found_at, spec, config,
                                                    make=_concept_finding).items():
        part.findings.append(finding)
        concept_since[number] = min(concept_since.get(number, since), since)
    concept_windows = {f.window_start for f in part.findings}
    stable = labelled[~label_starts.isin([pd.Timestamp(t) for t in drifted_windows | concept_windows])]
    for number, since in concept_since.items():
        stable = stable[~((stable["__version"] == number) & (spec.starts_of(stable["__timestamp"]) >= pd.Timestamp(since)))]
    part.performance = PerformanceEvidence(windows=windows, versions=_overall(contexts, stable, config))
    counts = labelled["__version"].value_counts()
    busiest = contexts[int(counts.idxmax())]
    segments = segment_performance(
        busiest, labelled[labelled["__version"] == busiest.version.version],
        config.segment_feature or busiest.default_segment, _realized,
    )
    part.performance.segments = segments
    stream = _stream_evidence(labelled, contexts, config, drifted_windows, spec)
    if stream is not None:
        # the stream corroborates; it does not name incidents on its own: in label-arrival order
        # one detection mixes predictions of many days (and a burst of bad labels from one source
        # looks the same), while the window tests say which predictions departed
        part.labels.concept_stream = {
            **stream.to_dict(),
            "confirms_concept_drift": bool(diagnose_labels(stream, tolerance=config.performance_tolerance)),
        }
    return part


def _departure_test(
    departure: float, realized: MetricInterval, estimated: MetricInterval, known: list[float],
) -> DepartureTest:
    """How much worse than estimated a window did, beyond the usual gap.

    The estimate carries a bias of its own (its calibration saw one holdout), so a window is
    judged against the departures of earlier windows without a drift known by the test's
    moment (``known``, see :mod:`loopwatch.application.monitoring.concept_baseline`); until there are enough
    of them, against the estimate and its interval alone.
    """
    if len(known) >= BASELINE_WINDOWS:
        usual = float(np.mean(known))
        se = float(np.hypot(realized.standard_error, np.std(known, ddof=1) / np.sqrt(len(known))))
        basis = BASELINE_BASIS
    else:
        usual = 0.0
        se = float(np.hypot(realized.standard_error, estimated.standard_error))
        basis = "the estimate's interval"
    excess = departure - usual
    return DepartureTest(departure=round(departure, 4), usual=round(usual, 4), excess=round(excess, 4),
                         z=round(excess / se, 2) if se > 0 else 0.0, baseline_windows=len(known), basis=basis)


def _concept_finding(
    context: Any, start: datetime, spec: WindowSpec, checkpoint: datetime,
    realized: MetricInterval, estimated: MetricInterval, test: DepartureTest, labels: int,
) -> Finding:
    assert spec.length is not None
    return Finding(
        kind="concept_drift",
        window_start=start,
        window_end=start + spec.length,
        available_at=checkpoint,
        severity=test.excess,
        summary=(
            f"realized {context.metric} {realized.value:.3f} on predictions of {start:%Y-%m-%d} falls "
            f"{test.excess:.3f} further below the label-free estimate {estimated.value:.3f} than usual "
            f"(z = {test.z:.1f}) while the inputs held: the relation between inputs and outcome changed"
        ),
        evidence={"metric": context.metric, "realized": realized.to_dict(), "estimated": estimated.to_dict(),
                  "labels": labels, "holdout": context.holdout, **test.to_dict()},
    )


def _checkpoints(rows: pd.DataFrame, spec: WindowSpec) -> list[datetime]:
    """The ends of the windows in which a window's labels arrived."""
    assert spec.length is not None
    if rows.empty:
        return []
    return sorted({t.to_pydatetime() + spec.length for t in spec.starts_of(rows["label_time"]).unique()})


_UNMEASURABLE = (LoopwatchError, ValueError, TypeError, LookupError, ArithmeticError)  # odd labels; not faults


def _realized(context: Any, rows: pd.DataFrame) -> MetricInterval | None:
    from loopwatch.performance import classification_metrics, regression_metrics

    try:
        if context.version.task == "classification":
            metrics = classification_metrics(
                rows["label"].to_numpy(), rows["prediction"].to_numpy(), context.probabilities(rows),
                classes=context.classes, n_boot=N_BOOT, seed=0,
            )
        else:
            metrics = regression_metrics(rows["label"].to_numpy(dtype=np.float64),
                                         rows["prediction"].to_numpy(dtype=np.float64), n_boot=N_BOOT, seed=0)
    except _UNMEASURABLE:  # labels of the wrong kind: the window says why (_unrealized)
        return None
    value = metrics.get(context.metric)
    if value is None or not np.isfinite(value.value):
        return None
    return MetricInterval(value=float(value.value), ci_low=float(value.ci_low), ci_high=float(value.ci_high),
                          n=int(value.n))


def _unrealized(context: Any, rows: pd.DataFrame, min_labels: int) -> Any:
    from loopwatch.performance.unmeasured import unrealized

    labels = rows["label"].tolist() if "label" in rows.columns else []
    return unrealized(metric=context.metric, labels=labels, min_labels=min_labels,
                      classification=context.version.task == "classification")


def _bookkeeping(frame: pd.DataFrame, labelled: pd.DataFrame, spec: WindowSpec) -> LabelCoverage:
    """Coverage (share of predictions labelled) and label delay, overall and per window."""
    out = LabelCoverage(predictions=len(frame), labelled=int(len(labelled)))
    if labelled.empty:
        return out
    delay = (labelled["label_time"] - labelled["__timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    out.delay_hours = {f"p{q}": round(float(np.percentile(delay, q)), 2) for q in (10, 50, 90)}
    out.delay_hours["max"] = round(float(delay.max()), 2)
    if spec.length is not None:
        by_window = frame.groupby(spec.starts_of(frame["__timestamp"])).size()
        lab = labelled.groupby(spec.starts_of(labelled["__timestamp"])).size()
        out.windows = [
            CoverageWindow(start=start.to_pydatetime(), predictions=int(total), labelled=int(lab.get(start, 0)))
            for start, total in by_window.items()
        ]
        # windows older than the usual label delay: their coverage is what labelling achieves
        horizon = frame["__timestamp"].max() - pd.Timedelta(hours=float(np.percentile(delay, 90)))
        mature = frame[frame["__timestamp"] < horizon]
        mature_labelled = labelled[labelled["__timestamp"] < horizon]
        out.coverage_mature = round(len(mature_labelled) / len(mature), 4) if len(mature) else None
    return out


def _overall(contexts: dict[int, Any], labelled: pd.DataFrame, config: MonitoringConfig) -> dict[int, VersionPerformance]:
    """Realized performance of each version on its stable windows (no input drift, no concept
    drift) against its holdout: an overfitting gap is a difference beyond both samples' noise."""
    out: dict[int, VersionPerformance] = {}
    for number, context in contexts.items():
        rows = labelled[labelled["__version"] == number]
        realized = _realized(context, rows) if len(rows) >= config.min_labels else None
        if realized is None:
            out[number] = VersionPerformance(metric=context.metric, realized=None,
                                             realized_missing=_unrealized(context, rows, config.min_labels))
            continue
        found = against_holdout(context, realized, config)
        if found is not None:
            out[number] = found
    return out


def against_holdout(context: Any, realized: MetricInterval, config: MonitoringConfig, *,
                    testable: bool = True) -> VersionPerformance | None:
    """Realized performance against the holdout's (``None`` without a holdout interval); the gap
    is tested unless ``testable`` is false (a realized value without an interval)."""
    holdout = context.holdout_interval()
    if holdout is None:
        return None
    z_crit = float(stats.norm.isf(config.drift_alpha))
    gap = holdout.value - realized.value
    if not context.higher_is_better:
        gap = -gap
    se = float(np.hypot(realized.standard_error, holdout.standard_error))
    tested = se > 0 and testable
    return VersionPerformance(
        metric=context.metric, holdout=holdout, realized=realized, gap=round(gap, 4),
        z=round(gap / se, 2) if tested else None,
        overfitting_gap=bool(tested and gap > config.performance_tolerance and gap / se > z_crit),
    )


def _stream_evidence(
    labelled: pd.DataFrame, contexts: dict[int, Any], config: MonitoringConfig,
    drifted_windows: set[datetime], spec: WindowSpec,
) -> LabelEvidence | None:
    """A river detector over the per-prediction loss, in label-arrival order.

    Predictions made in windows whose inputs drifted are left out of the stream: a loss
    that rose there is explained by the inputs (that window has its own incident), and
    since labels arrive out of prediction order, their rise would otherwise be dated on
    neighbouring predictions whose inputs held. Every detection is weighed in turn (a
    fall of the loss, or one the estimate explains, must not hide a later rise); the
    first that is a concept drift is the evidence, else the first detection.
    """
    try:
        from loopwatch.performance.concept import concept_params, detect_concept_drift, per_prediction_loss
    except ImportError:
        return None
    context = contexts[max(contexts)]
    rows = labelled.sort_values("label_time", kind="stable")
    if spec.length is not None and drifted_windows:
        rows = rows[~rows["__timestamp"].map(spec.start_of).isin(drifted_windows)]
    if len(rows) < config.min_labels or context.version.task != "classification":
        return None
    proba = context.probabilities(rows)
    try:
        losses = per_prediction_loss(rows["label"].to_numpy(), rows["prediction"].to_numpy(), proba,
                                     task="classification", classes=context.classes, kind="error")
        result = detect_concept_drift(losses, [t.isoformat() for t in rows["label_time"]],
                                      detector=concept_params(config.concept_detector))
    except _UNMEASURABLE + (ImportError,):  # evidence beside the window tests; without river, left out
        return None
    losses = np.asarray(losses, dtype=np.float64)
    cuts = [0, *result.drift_indices, len(rows)]
    first: LabelEvidence | None = None
    for k in range(1, len(cuts) - 1):
        lo, at, hi = cuts[k - 1], cuts[k], cuts[k + 1]
        if at <= lo or hi <= at:
            continue
        evidence = _detection(rows, losses, context, config, spec, drifted_windows, lo=lo, at=at, hi=hi)
        if diagnose_labels(evidence, tolerance=config.performance_tolerance):
            return evidence
        first = first or evidence
    return first or LabelEvidence(metric=context.metric, holdout=context.holdout, detector=config.concept_detector,
                                  n_labels=len(rows), higher_is_better=context.higher_is_better)


#: Least labels of a window, among those arrived between two detections, to date a change by it.
MIN_WINDOW_LABELS = 20


def _detection(
    rows: pd.DataFrame, losses: np.ndarray, context: Any, config: MonitoringConfig, spec: WindowSpec,
    drifted_windows: set[datetime], *, lo: int, at: int, hi: int,
) -> LabelEvidence:
    """The evidence of the detection at ``at``: the labels since the previous detection against
    those up to the next one."""
    before, after = float(np.mean(losses[lo:at])), float(np.mean(losses[at:hi]))
    when = rows["__timestamp"].iloc[at].to_pydatetime()
    if spec.length is not None:
        # the detection's own prediction may predate the change (labels arrive out of order):
        # the change is dated to the first window whose loss is nearer the new level than the old
        segment = pd.DataFrame({"window": rows["__timestamp"].iloc[lo:hi].map(spec.start_of).to_numpy(),
                                "loss": losses[lo:hi]})
        grouped = segment.groupby("window")["loss"].agg(["mean", "size"]).sort_index()
        grouped = grouped[grouped["size"] >= MIN_WINDOW_LABELS]
        middle = (before + after) / 2
        moved = grouped[grouped["mean"] > middle] if after > before else grouped[grouped["mean"] < middle]
        if len(moved):
            when = pd.Timestamp(moved.index[0]).to_pydatetime()
    part = rows.iloc[at:hi]
    return LabelEvidence(
        metric=context.metric,
        holdout=context.holdout,
        concept_drift_at=rows["label_time"].iloc[at].to_pydatetime(),
        concept_drift_prediction_time=when,
        detector=config.concept_detector,
        loss_before=before,
        loss_after=after,
        realized_after=_realized(context, part) if len(part) >= config.min_labels else None,
        estimated_after=context.estimate(part),
        inputs_drifted_then=spec.start_of(when) in drifted_windows if spec.length else False,
        n_labels=len(rows),
        higher_is_better=context.higher_is_better,
    )


def signals_of(
    store: Store, name: str, config: MonitoringConfig, part: LabelPart, incidents: list[Incident], *, until: datetime
) -> list[Recommendation]:
    """Recommendations that are not incidents: too few labels, an overfitting gap, a business metric
    that does not follow the model."""
    out: list[Recommendation] = []
    coverage = part.labels.judged_coverage
    if coverage is not None and coverage < config.min_label_coverage:
        out.append(Recommendation(
            loop="data_collection", reason="low_label_coverage", incident_id=None,
            action=(f"Only {coverage:.1%} of predictions old enough to be labelled have a label: label the "
                    f"labelling queue's picks (budget {config.labelling_budget} a day, "
                    f"{config.labelling_random_share:.0%} at random so realized metrics stay unbiased)."),
            evidence={"coverage": coverage, "min_label_coverage": config.min_label_coverage},
        ))
    for number, entry in part.performance.versions.items():
        if entry.overfitting_gap and entry.holdout is not None and entry.realized is not None:
            out.append(Recommendation(
                loop="model_selection", reason="overfitting_gap", incident_id=None,
                action=(f"Version {number} performs below its holdout ({entry.metric} {entry.holdout.value:.3f} "
                        f"on holdout, {entry.realized.value:.3f} in production): revisit validation and "
                        "try a more regularised model or another estimator."),
                evidence=entry.to_dict(),
            ))
    performance_fell = any(
        i.kind == "concept_drift" or i.evidence.get("estimate_dropped") for i in incidents
    )
    business = _business(store, config, part, until=until, performance_fell=performance_fell)
    part.business = business
    if business is None:
        return out
    if business.relation_changed and business.relation is not None:
        out.append(Recommendation(
            loop="eda", reason="business_relation_changed", incident_id=None,
            action=(f"The relation between the model's performance and "
                    f"{config.business_metric} changed: explore what else moves the business metric."),
            evidence=business.relation.to_dict(),
        ))
    if business.decoupled:
        out.append(Recommendation(
            loop="business", reason="business_decoupled", incident_id=None,
            action=(f"The model performs as trained but {config.business_metric} fell: revisit the business "
                    "case and its opportunity cost before changing the model."),
            evidence=business.to_dict(),
        ))
    return out


def _business(
    store: Store, config: MonitoringConfig, part: LabelPart, *, until: datetime, performance_fell: bool
) -> BusinessEvidence | None:
    if config.business_metric is None:
        return None
    observations = store.query_business_metrics(name=config.business_metric, until=until)
    total = [o for o in observations if o.segment is None]
    out = BusinessEvidence(metric=config.business_metric, observations=len(total))
    if len(total) < 8:
        return out
    series = pd.Series([o.value for o in total], index=pd.DatetimeIndex([o.timestamp for o in total]))
    daily = series.resample("1D").sum()
    perf = {}
    for entry in part.performance.windows:
        if entry.realized is not None:
            perf[pd.Timestamp(entry.start).normalize()] = entry.realized.value
    performance = pd.Series(perf).sort_index().groupby(level=0).mean() if perf else pd.Series(dtype=float)
    joined = pd.concat([performance.rename("performance"), daily.rename("business")], axis=1)
    try:
        from loopwatch.feedback.business import lagged_correlation

        lags = lagged_correlation(joined["performance"].to_numpy(), joined["business"].to_numpy(),
                                  max_lag=config.business_max_lag)
        out.lagged_correlation = list(lags)
        usable = joined.dropna()
        if len(usable) >= 16:
            from loopwatch.feedback.business import relation_changed

            change = relation_changed(usable["performance"].to_numpy(), usable["business"].to_numpy(),
                                      split_index=len(usable) // 2, alpha=config.drift_alpha)
            out.relation = change
            out.relation_changed = bool(change.changed)
    except ImportError:
        pass
    half = len(daily) // 2
    early, late = daily.iloc[:half].to_numpy(), daily.iloc[half:].to_numpy()
    test = stats.ttest_ind(late, early, equal_var=False, alternative="less")
    perf_values = performance.to_numpy()
    held = not performance_fell and (
        perf_values.size < 4
        or abs(np.mean(perf_values[len(perf_values) // 2:]) - np.mean(perf_values[: len(perf_values) // 2]))
        <= config.performance_tolerance
    )
    out.early_mean, out.late_mean = float(np.mean(early)), float(np.mean(late))
    out.p_value, out.performance_held = float(test.pvalue), bool(held)
    out.decoupled = bool(held and test.pvalue < config.drift_alpha)
    return out
