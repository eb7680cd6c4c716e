"""The evidence of one monitoring window, as plain data the diagnosis reasons over.

The monitor gathers it (drift, segments, software, latency, label-free
estimates); the diagnosis only reads it, so it can be tested on hand-made
evidence without a store or a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from loopwatch.loops.performance_evidence import MetricInterval, Serialisable
from loopwatch.records.jsonutil import utc_iso


@dataclass(frozen=True, kw_only=True)
class SoftwareChange:
    """Software that served the window but not the baseline, first seen recently."""

    #: ``client_version``, ``model_version``, ``fingerprint`` or ``schema``.
    what: str
    value: str
    #: Share of the window's events that came from it.
    share: float
    #: Drifted features whose values differ between these events and the rest of the
    #: window (so the change, not the world, moved them).
    features: list[str] = field(default_factory=list)
    #: Windows since it was first seen (0: it appeared in this window).
    windows_since_first: int = 0
    #: For a client version: the client and the version it sent (``None`` when it sent none),
    #: which ``value`` holds joined as the key the monitor tracks.
    client: str | None = None
    client_version: str | None = None
    #: For a model version: the label it was sent with by a model served elsewhere
    #: (``None`` for a version loopwatch trained or registered).
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"what": self.what, "value": self.value, "share": round(self.share, 4), "features": self.features,
               "windows_since_first": self.windows_since_first}
        if self.what == "client_version":
            out |= {"client": self.client, "client_version": self.client_version}
        if self.what == "model_version":
            out["label"] = self.label
        return out


def _quoted(value: Any) -> str:
    # quoted (and escaped) so that a value with spaces, dashes or nothing at all reads as one name
    return json.dumps(str(value), ensure_ascii=False)


def describe_software(change: Mapping[str, Any]) -> str:
    """A software change (``SoftwareChange.to_dict()``) in words, for summaries and actions:
    ``client "batch-job", which sends no client version``, ``model v4``, ``model v5 ("fraud-2026-02")``.

    Built from the fields one by one, never from the tracked key, so a missing value reads as
    missing instead of as a placeholder glued to a name.
    """
    what, value = str(change.get("what") or "software"), change.get("value")
    if what == "client_version":
        client, version = change.get("client"), change.get("client_version")
        if client is None and version is None:  # recorded before the client was kept apart, or built by hand
            return f"client version {_quoted(value)}" if value not in (None, "", "- -") else \
                "a client without an id or a client version"
        who = f"client {_quoted(client)}" if client not in (None, "") else "a client without an id"
        return f"{who} at version {_quoted(version)}" if version not in (None, "") else \
            f"{who}, which sends no client version"
    if value in (None, ""):
        return f"an unnamed {what.replace('_', ' ')}"
    if what == "model_version":
        label = change.get("label")
        return f"model v{value} ({_quoted(label)})" if label not in (None, "") else f"model v{value}"
    return f"{what.replace('_', ' ')} {_quoted(value)}"


@dataclass(frozen=True, kw_only=True)
class WindowEvidence:
    start: datetime
    end: datetime
    n_events: int
    model_versions: list[int]
    #: Drifted input features and their effect size (distance between distributions).
    drifted_features: dict[str, float] = field(default_factory=dict)
    #: Each feature's share of the model's sensitivity (sums to 1 over the features).
    importance: dict[str, float] = field(default_factory=dict)
    multivariate_drift: bool = False
    prediction_drift: bool = False
    quality_alarms: list[str] = field(default_factory=list)
    #: The watched segment feature, whether its mix moved, and categories never seen in training.
    segment_feature: str | None = None
    segment_drift: bool = False
    new_segments: dict[str, float] = field(default_factory=dict)
    software_changes: list[SoftwareChange] = field(default_factory=list)
    #: Runtime percentile of the window's requests (ms), and the budget it is held to.
    latency_ms: float | None = None
    latency_budget_ms: float | None = None
    latency_percentile: float = 95.0
    #: Whether the window before was over the budget too.
    latency_over_budget_before: bool = False
    #: Label-free estimate of the model's metric on the window, with its interval, and the
    #: holdout value it is compared with.
    metric: str | None = None
    estimated: MetricInterval | None = None
    holdout: float | None = None
    higher_is_better: bool = True
    #: The share of predictions the evasion score flagged, the calibration rows' share at the
    #: same threshold, and the one-sided test of the one against the other (``not_applicable``
    #: and its reason for a monitor-only version).
    evasion: dict[str, Any] | None = None
    #: Why ``estimated`` is null (too few rows, no estimator, ...), with the sizes.
    estimated_missing: Serialisable | None = None
    #: The drift tests the window was too small or too odd for, with reasons and sizes.
    skipped: list[Serialisable] = field(default_factory=list)

    @property
    def input_drift(self) -> bool:
        return bool(
            self.drifted_features
            or self.multivariate_drift
            or self.segment_drift
            or self.new_segments
            or self.quality_alarms
        )

    def weighted_drift(self) -> dict[str, float]:
        """Drifted features ranked by effect times importance: drift on a feature the model
        barely uses weighs less."""
        if not self.importance:
            return dict(sorted(self.drifted_features.items(), key=lambda kv: -kv[1]))
        weights = {f: e * self.importance.get(f, 0.0) for f, e in self.drifted_features.items()}
        return dict(sorted(weights.items(), key=lambda kv: -kv[1]))

    def estimate_dropped(self, tolerance: float) -> bool:
        """The label-free estimate fell below the holdout by more than ``tolerance``, with
        the holdout outside its interval."""
        if self.estimated is None or self.holdout is None:
            return False
        value, low, high = self.estimated.value, self.estimated.ci_low, self.estimated.ci_high
        if self.higher_is_better:
            return self.holdout - value > tolerance and self.holdout > high
        return value - self.holdout > tolerance and self.holdout < low

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "n_events": self.n_events,
            "model_versions": self.model_versions,
            "drifted_features": {k: round(v, 4) for k, v in self.drifted_features.items()},
            "weighted_drift": {k: round(v, 4) for k, v in self.weighted_drift().items()},
            "multivariate_drift": self.multivariate_drift,
            "prediction_drift": self.prediction_drift,
            "quality_alarms": self.quality_alarms,
            "segment_feature": self.segment_feature,
            "segment_drift": self.segment_drift,
            "new_segments": {k: round(v, 4) for k, v in self.new_segments.items()},
            "software_changes": [s.to_dict() for s in self.software_changes],
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "latency_budget_ms": self.latency_budget_ms,
            "latency_percentile": self.latency_percentile,
            "latency_over_budget_before": self.latency_over_budget_before,
            "metric": self.metric,
            "estimated": None if self.estimated is None else self.estimated.to_dict(),
            "estimated_missing": None if self.estimated_missing is None else self.estimated_missing.to_dict(),
            "holdout": self.holdout,
            "evasion": self.evasion,
            "skipped": [s.to_dict() for s in self.skipped],
        }


@dataclass(frozen=True, kw_only=True)
class LabelEvidence:
    """What the labels say, in the order they arrived."""

    metric: str
    holdout: float | None
    #: When a concept-drift detector on the loss stream fired (label-arrival time), and for
    #: predictions made when.
    concept_drift_at: datetime | None = None
    concept_drift_prediction_time: datetime | None = None
    detector: str = "adwin"
    #: Loss rate of labelled predictions before and after the detection.
    loss_before: float | None = None
    loss_after: float | None = None
    #: Realized and estimated metric on the labelled predictions after the detection.
    realized_after: MetricInterval | None = None
    estimated_after: MetricInterval | None = None
    #: Whether the inputs drifted when those predictions were made.
    inputs_drifted_then: bool = False
    coverage: float | None = None
    n_labels: int = 0
    #: Direction of ``metric`` (``False`` for log loss, Brier score, MAE...).
    higher_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "holdout": self.holdout,
            "concept_drift_at": None if self.concept_drift_at is None else utc_iso(self.concept_drift_at),
            "concept_drift_prediction_time": None
            if self.concept_drift_prediction_time is None
            else utc_iso(self.concept_drift_prediction_time),
            "detector": self.detector,
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
            "realized_after": None if self.realized_after is None else self.realized_after.to_dict(),
            "estimated_after": None if self.estimated_after is None else self.estimated_after.to_dict(),
            "inputs_drifted_then": self.inputs_drifted_then,
            "coverage": self.coverage,
            "n_labels": self.n_labels,
            "higher_is_better": self.higher_is_better,
        }
