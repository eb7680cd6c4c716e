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

from loopwatch.loops.config import MonitoringConfig
from loopwatch.loops.diagnosis import diagnose_labels
from loopwatch.loops.evidence import LabelEvidence
from loopwatch.loops.report import Finding, Incident, Recommendation
from loopwatch.monitor.windows import WindowSpec
from loopwatch.stores.base import Store

#: Bootstrap resamples for a window's realized metric.
N_BOOT = 200


@dataclass
class LabelPart:
    findings: list[Finding] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    business: dict[str, Any] = field(default_factory=dict)


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
    z_crit = float(stats.norm.isf(config.drift_alpha))
    windows: list[dict[str, Any]] = []
    for (start, number), rows in frame.groupby([frame["__timestamp"].map(spec.start_of), "__version"], sort=True):
        context = contexts[int(number)]
        mine = labelled[(labelled["__timestamp"].map(spec.start_of) == start) & (labelled["__version"] == number)]
        estimated = context.estimate(rows)
        entry: dict[str, Any] = {"start": start.isoformat(), "model_version": int(number), "metric": context.metric,
                                 "predictions": int(len(rows)), "labels": int(len(mine)), "estimated": estimated,
                                 "realized": None, "inputs_drifted": start in drifted_windows}
        found = None
        for checkpoint in _checkpoints(mine, spec):
            seen = mine[mine["label_time"] < checkpoint]
            if len(seen) < config.min_labels:
                continue
            realized = _realized(context, seen)
            if realized is None:
                continue
            entry["realized"] = realized
            if estimated is None or start in drifted_windows or found is not None:
                continue
            gap = estimated["value"] - realized["value"]
            if not context.higher_is_better:
                gap = -gap
            se = np.hypot(_se(realized), _se(estimated))
            if gap > config.performance_tolerance and se > 0 and gap / se > z_crit:
                found = Finding(
                    kind="concept_drift",
                    window_start=start,
                    window_end=start + spec.length,
                    available_at=checkpoint,
                    severity=gap,
                    summary=(
                        f"realized {context.metric} {realized['value']:.3f} on predictions of {start:%Y-%m-%d} "
                        f"is below the label-free estimate {estimated['value']:.3f} (z = {gap / se:.1f}) while "
                        "the inputs held: the relation between inputs and outcome changed"
                    ),
                    evidence={"metric": context.metric, "realized": realized, "estimated": estimated,
                              "labels": int(len(seen)), "holdout": context.holdout, "z": round(gap / se, 2)},
                )
        if estimated is not None and entry["realized"] is not None:
            entry["estimation_error"] = round(estimated["value"] - entry["realized"]["value"], 4)
        windows.append(entry)
        if found is not None:
            part.findings.append(found)
    part.performance = {"windows": windows, **_overall(contexts, labelled, config)}
    stream = _stream_evidence(labelled, contexts, config, drifted_windows, spec)
    if stream is not None:
        part.labels["concept_stream"] = stream.to_dict()
        part.findings.extend(diagnose_labels(stream, tolerance=config.performance_tolerance))
    return part


def _checkpoints(rows: pd.DataFrame, spec: WindowSpec) -> list[datetime]:
    """The ends of the windows in which a window's labels arrived."""
    assert spec.length is not None
    if rows.empty:
        return []
    return sorted({spec.start_of(t) + spec.length for t in rows["label_time"]})


def _se(interval: dict[str, float]) -> float:
    return max(0.0, (interval["ci_high"] - interval["ci_low"]) / (2 * 1.959964))


def _realized(context: Any, rows: pd.DataFrame) -> dict[str, float] | None:
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
    except Exception:  # a label of the wrong kind makes a window unmeasurable, not the evaluation fail
        return None
    value = metrics.get(context.metric)
    if value is None or not np.isfinite(value.value):
        return None
    return {"value": float(value.value), "ci_low": float(value.ci_low), "ci_high": float(value.ci_high),
            "n": int(value.n)}


def _bookkeeping(frame: pd.DataFrame, labelled: pd.DataFrame, spec: WindowSpec) -> dict[str, Any]:
    """Coverage (share of predictions labelled) and label delay, overall and per window."""
    n = len(frame)
    out: dict[str, Any] = {"predictions": n, "labelled": int(len(labelled)),
                           "coverage": round(len(labelled) / n, 4) if n else None}
    if labelled.empty:
        return out
    delay = (labelled["label_time"] - labelled["__timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    out["delay_hours"] = {f"p{q}": round(float(np.percentile(delay, q)), 2) for q in (10, 50, 90)}
    out["delay_hours"]["max"] = round(float(delay.max()), 2)
    if spec.length is not None:
        by_window = frame.groupby(frame["__timestamp"].map(spec.start_of)).size()
        lab = labelled.groupby(labelled["__timestamp"].map(spec.start_of)).size()
        out["windows"] = [
            {"start": start.isoformat(), "predictions": int(total), "labelled": int(lab.get(start, 0)),
             "coverage": round(int(lab.get(start, 0)) / int(total), 4)}
            for start, total in by_window.items()
        ]
        # windows older than the usual label delay: their coverage is what labelling achieves
        horizon = frame["__timestamp"].max() - pd.Timedelta(hours=float(np.percentile(delay, 90)))
        mature = frame[frame["__timestamp"] < horizon]
        mature_labelled = labelled[labelled["__timestamp"] < horizon]
        out["coverage_mature"] = round(len(mature_labelled) / len(mature), 4) if len(mature) else None
    return out


def _overall(contexts: dict[int, Any], labelled: pd.DataFrame, config: MonitoringConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, context in contexts.items():
        rows = labelled[labelled["__version"] == number]
        if len(rows) < config.min_labels:
            continue
        realized = _realized(context, rows)
        if realized is None or context.holdout is None:
            continue
        gap = context.holdout - realized["value"] if context.higher_is_better else realized["value"] - context.holdout
        outside = not (realized["ci_low"] <= context.holdout <= realized["ci_high"])
        out.setdefault("versions", {})[str(number)] = {
            "metric": context.metric, "holdout": context.holdout, "realized": realized,
            "gap": round(gap, 4), "overfitting_gap": bool(outside and gap > config.performance_tolerance),
        }
    return out


def _stream_evidence(
    labelled: pd.DataFrame, contexts: dict[int, Any], config: MonitoringConfig,
    drifted_windows: set[datetime], spec: WindowSpec,
) -> LabelEvidence | None:
    """A river detector over the per-prediction loss, in label-arrival order."""
    try:
        from loopwatch.performance.concept import detect_concept_drift, per_prediction_loss
    except ImportError:
        return None
    context = contexts[max(contexts)]
    rows = labelled.sort_values("label_time", kind="stable")
    if len(rows) < config.min_labels or context.version.task != "classification":
        return None
    proba = context.probabilities(rows)
    try:
        losses = per_prediction_loss(rows["label"].to_numpy(), rows["prediction"].to_numpy(), proba,
                                     task="classification", classes=context.classes, kind="error")
        result = detect_concept_drift(losses, [t.isoformat() for t in rows["label_time"]],
                                      method=config.concept_detector)
    except Exception:  # the stream is evidence beside the window tests; without river it is left out
        return None
    if not result.drift_indices:
        return LabelEvidence(metric=context.metric, holdout=context.holdout, detector=config.concept_detector,
                             n_labels=len(rows), higher_is_better=context.higher_is_better)
    at = result.drift_indices[0]
    before, after = rows.iloc[:at], rows.iloc[at:]
    when = rows["__timestamp"].iloc[at]
    return LabelEvidence(
        metric=context.metric,
        holdout=context.holdout,
        concept_drift_at=rows["label_time"].iloc[at].to_pydatetime(),
        concept_drift_prediction_time=when.to_pydatetime(),
        detector=config.concept_detector,
        loss_before=float(np.mean(losses[:at])) if at else None,
        loss_after=float(np.mean(losses[at:])),
        realized_after=_realized(context, after) if len(after) >= config.min_labels else None,
        estimated_after=context.estimate(after),
        inputs_drifted_then=spec.start_of(when.to_pydatetime()) in drifted_windows if spec.length else False,
        n_labels=len(rows),
        higher_is_better=context.higher_is_better,
    ) if len(before) else None


def signals_of(
    store: Store, name: str, config: MonitoringConfig, part: LabelPart, incidents: list[Incident], *, until: datetime
) -> list[Recommendation]:
    """Recommendations that are not incidents: too few labels, an overfitting gap, a business metric
    that does not follow the model."""
    out: list[Recommendation] = []
    coverage = part.labels.get("coverage_mature", part.labels.get("coverage"))
    if coverage is not None and coverage < config.min_label_coverage:
        out.append(Recommendation(
            loop="data_collection", reason="low_label_coverage", incident_id=None,
            action=(f"Only {coverage:.1%} of predictions old enough to be labelled have a label: label the "
                    f"labelling queue's picks (budget {config.labelling_budget} a day, "
                    f"{config.labelling_random_share:.0%} at random so realized metrics stay unbiased)."),
            evidence={"coverage": coverage, "min_label_coverage": config.min_label_coverage},
        ))
    for number, entry in part.performance.get("versions", {}).items():
        if entry["overfitting_gap"]:
            out.append(Recommendation(
                loop="model_selection", reason="overfitting_gap", incident_id=None,
                action=(f"Version {number} performs below its holdout ({entry['metric']} {entry['holdout']:.3f} "
                        f"on holdout, {entry['realized']['value']:.3f} in production): revisit validation and "
                        "try a more regularised model or another estimator."),
                evidence=entry,
            ))
    business = _business(store, config, part, until=until)
    part.business = business
    if business.get("decoupled"):
        out.append(Recommendation(
            loop="business", reason="business_decoupled", incident_id=None,
            action=(f"The model performs as trained but {config.business_metric} fell: revisit the business "
                    "case and its opportunity cost before changing the model."),
            evidence=business,
        ))
    return out


def _business(store: Store, config: MonitoringConfig, part: LabelPart, *, until: datetime) -> dict[str, Any]:
    if config.business_metric is None:
        return {}
    observations = store.query_business_metrics(name=config.business_metric, until=until)
    total = [o for o in observations if o.segment is None]
    if len(total) < 8:
        return {"metric": config.business_metric, "observations": len(total)}
    series = pd.Series([o.value for o in total], index=pd.DatetimeIndex([o.timestamp for o in total]))
    daily = series.resample("1D").sum()
    perf = {}
    for entry in part.performance.get("windows", []):
        value = entry["realized"] or entry["estimated"]
        if value is not None:
            perf[pd.Timestamp(entry["start"]).normalize()] = value["value"]
    out: dict[str, Any] = {"metric": config.business_metric, "observations": len(total)}
    performance = pd.Series(perf).sort_index().groupby(level=0).mean() if perf else pd.Series(dtype=float)
    joined = pd.concat([performance.rename("performance"), daily.rename("business")], axis=1)
    try:
        from loopwatch.feedback.business import lagged_correlation

        lags = lagged_correlation(joined["performance"].to_numpy(), joined["business"].to_numpy(),
                                  max_lag=config.business_max_lag)
        out["lagged_correlation"] = [lag.to_dict() for lag in lags]
    except ImportError:
        pass
    half = len(daily) // 2
    early, late = daily.iloc[:half].to_numpy(), daily.iloc[half:].to_numpy()
    test = stats.ttest_ind(late, early, equal_var=False, alternative="less")
    perf_values = performance.to_numpy()
    held = perf_values.size < 4 or abs(np.mean(perf_values[len(perf_values) // 2:]) -
                                       np.mean(perf_values[: len(perf_values) // 2])) <= config.performance_tolerance
    out.update({"early_mean": float(np.mean(early)), "late_mean": float(np.mean(late)),
                "p_value": float(test.pvalue), "performance_held": bool(held),
                "decoupled": bool(held and test.pvalue < config.drift_alpha)})
    return out
