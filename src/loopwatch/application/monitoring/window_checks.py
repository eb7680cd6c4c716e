"""Evidence of one window beyond drift: software first seen, the segment mix, latency, and the
label-free estimate of performance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from loopwatch.drift.report import DriftReport
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.evidence import SoftwareChange
from loopwatch.loops.performance_evidence import MetricInterval
from loopwatch.application.monitoring.runner import QUALITY_SHARE
from loopwatch.records import ModelVersion
from loopwatch.registry import Registry

if TYPE_CHECKING:
    from loopwatch.performance.unmeasured import Unmeasured

#: Per-feature significance for attributing a drift to the events of new software.
SOFTWARE_ALPHA = 1e-4
#: Least share of a window's events for new software to count (a single request is not a deploy).
SOFTWARE_MIN_SHARE = 0.02
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss", "brier", "ece"})
#: Least predictions of a window for a label-free estimate: the estimate's interval comes from
#: a bootstrap over the window's rows, which means little on fewer.
MIN_ESTIMATE_ROWS = 50


@dataclass
class PerformanceContext:
    """What the performance checks of one model version need, built once per evaluation."""

    version: ModelVersion
    metric: str
    holdout: float | None
    higher_is_better: bool
    default_segment: str | None
    estimator: Any | None
    reference: Any | None = None

    @classmethod
    def build(cls, registry: Registry, name: str, version: ModelVersion, config: MonitoringConfig) -> PerformanceContext:
        classes = list(version.schema.classes)
        if config.metric is not None:
            metric = config.metric
        elif version.task == "classification":
            metric = "roc_auc" if len(classes) == 2 else "accuracy"
        else:
            metric = "mae"
        holdout = version.metrics.get(metric)
        categorical = version.schema.categorical
        reference, estimator = _estimator(registry, name, version)
        return cls(
            version=version,
            metric=metric,
            holdout=float(holdout) if isinstance(holdout, (int, float)) else None,
            higher_is_better=metric not in LOWER_IS_BETTER,
            default_segment=categorical[0] if categorical else None,
            estimator=estimator,
            reference=reference,
        )

    @property
    def classes(self) -> list[Any]:
        return list(self.version.schema.classes)

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray | None:
        columns = [f"probability_{c}" for c in self.classes]
        if not self.classes or any(c not in rows.columns for c in columns):
            return None
        proba = rows[columns].to_numpy(dtype=np.float64)
        return None if np.isnan(proba).any() else proba

    def estimate(self, rows: pd.DataFrame) -> MetricInterval | None:
        """The label-free estimate of the metric on ``rows``, with its interval."""
        return self.estimate_or_why(rows)[0]

    def estimate_or_why(self, rows: pd.DataFrame) -> tuple[MetricInterval | None, Unmeasured | None]:
        """:meth:`estimate`, or why there is none (too few rows, no estimator, no probabilities)."""
        from loopwatch.performance.unmeasured import Unmeasured

        def none(reason: str, minimum: int | None = None) -> tuple[None, Unmeasured]:
            return None, Unmeasured(metric=self.metric, reason=reason, counted="rows", n=len(rows), minimum=minimum)

        if self.estimator is None:
            return none("no_estimator")
        if len(rows) < MIN_ESTIMATE_ROWS:
            return none("too_few_rows", MIN_ESTIMATE_ROWS)
        try:
            if self.version.task == "classification":
                proba = self.probabilities(rows)
                if proba is None:
                    return none("no_probabilities")
                # with the window's inputs, which widen the interval where its mix of segments
                # leans on calibration the holdout could not pin down
                values = self.estimator.estimate(proba, X=rows[self.version.schema.names])
            else:
                features = self.version.schema.names
                values = self.estimator.estimate(rows[features], rows["prediction"].to_numpy(dtype=np.float64))
        except Exception:  # an estimate is evidence, not a requirement: a window without one still counts
            return none("undefined")
        found = values.get(self.metric)
        if found is None or not np.isfinite(found.value):
            return none("undefined")
        return MetricInterval(value=float(found.value), ci_low=float(found.ci_low), ci_high=float(found.ci_high)), None

    def holdout_interval(self) -> MetricInterval | None:
        """The holdout's metric with a bootstrap interval: the holdout is a sample too."""
        if self.reference is None:
            return None
        from loopwatch.performance import classification_metrics, regression_metrics

        ref = self.reference
        if self.version.task == "classification":
            found = classification_metrics(ref.y_true, ref.y_pred, ref.y_proba, classes=self.classes,
                                           n_boot=200, seed=0).get(self.metric)
        else:
            found = regression_metrics(ref.y_true, ref.y_pred, n_boot=200, seed=0).get(self.metric)
        if found is None or not np.isfinite(found.value):
            return None
        return MetricInterval(value=float(found.value), ci_low=float(found.ci_low), ci_high=float(found.ci_high))


def _estimator(registry: Registry, name: str, version: ModelVersion) -> tuple[Any | None, Any | None]:
    """The version's holdout (from its reference profile) and an estimator fitted on it."""
    from loopwatch.performance import fit_estimator, performance_reference_of

    reference = performance_reference_of(registry.profile(name, version.version))
    if reference is None:
        return None, None
    return reference, fit_estimator(reference, task=version.task, classes=list(version.schema.classes), seed=0)


def latency_of(rows: pd.DataFrame, percentile: float) -> float | None:
    """The runtime percentile of the window's requests (one value per request, not per row)."""
    if "__request_runtime_ms" not in rows.columns or rows.empty:
        return None
    per_request = rows.drop_duplicates("__request_id")["__request_runtime_ms"].to_numpy(dtype=np.float64)
    per_request = per_request[np.isfinite(per_request)]  # ingested events without a latency
    return float(np.percentile(per_request, percentile)) if per_request.size else None


def new_segments_of(report: DriftReport, segment: str | None, n_rows: int) -> dict[str, float]:
    """Categories of the segment feature never seen in training, with their share of the window."""
    if segment is None or n_rows == 0:
        return {}
    counts = report.data_quality.unseen_categories.get(segment, {})
    return {str(k): v / n_rows for k, v in counts.items() if v / n_rows >= QUALITY_SHARE}


def software_of(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """What software served each row: the client's version (per client), the model version."""
    client = rows["__client_id"].fillna("-").astype(str)
    version = rows["__client_version"].fillna("-").astype(str) if "__client_version" in rows else None
    out = {"model_version": rows["__version"].astype(str)}
    if version is not None:
        out["client_version"] = client + " " + version
    return out


#: How many windows after its first appearance new software stays a suspect for drift.
SOFTWARE_RECENT_WINDOWS = 7


def software_changes_of(
    rows: pd.DataFrame, previous: pd.DataFrame | None, seen: dict[str, dict[str, int]] | None, *, index: int
) -> tuple[list[SoftwareChange], dict[str, dict[str, int]]]:
    """Software that served this window and none of the first, first seen no more than
    ``SOFTWARE_RECENT_WINDOWS`` windows ago, with the features whose values differ in its events.

    ``seen`` maps what (client version, model version) to each value's first window index;
    the first window is the baseline, so nothing in it is new.
    """
    current = software_of(rows)
    if seen is None:
        return [], {what: {value: -1 for value in values.unique()} for what, values in current.items()}
    changes: list[SoftwareChange] = []
    updated = {what: dict(values) for what, values in seen.items()}
    features = [c for c in rows.columns if not c.startswith("__") and c != "prediction"
                and not c.startswith("probability_")]
    for what, values in current.items():
        for value in sorted(values.unique()):
            first = updated.setdefault(what, {}).get(value)
            if first is not None and (first < 0 or index - first > SOFTWARE_RECENT_WINDOWS):
                continue
            mask = (values == value).to_numpy()
            share = float(mask.mean())
            if share < SOFTWARE_MIN_SHARE:
                continue  # a single request is not a deploy; look again when it grows
            if first is None:
                updated[what][value] = index
            baseline = rows[~mask] if share < 0.95 else previous
            differing = [] if baseline is None else _differing(rows[mask], baseline, features)
            changes.append(SoftwareChange(what=what, value=value, share=share, features=differing,
                                          windows_since_first=index - updated[what][value],
                                          **_client_of(rows[mask], what)))
    return changes, updated


def _client_of(rows: pd.DataFrame, what: str) -> dict[str, str | None]:
    """The client and client version of a client version's rows, each as it was logged
    (``None`` when missing), not as the placeholder-joined key that groups them."""
    if what != "client_version" or rows.empty:
        return {}
    first = rows.iloc[0]
    client, version = first.get("__client_id"), first.get("__client_version")
    return {"client": None if pd.isna(client) else str(client),
            "client_version": None if version is None or pd.isna(version) else str(version)}


def _differing(new: pd.DataFrame, old: pd.DataFrame, features: list[str]) -> list[str]:
    out = []
    for name in features:
        a, b = new[name].dropna(), old[name].dropna()
        if len(a) < 20 or len(b) < 20:
            continue
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            p = stats.ks_2samp(a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)).pvalue
        else:
            table = pd.crosstab(
                np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a.astype(str), b.astype(str)]
            )
            if table.shape[1] < 2:
                continue
            p = stats.chi2_contingency(table.to_numpy()).pvalue
        if p < SOFTWARE_ALPHA:
            out.append(name)
    return out
