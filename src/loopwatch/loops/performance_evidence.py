"""What labels say about performance, typed from measurement to the edge.

The monitoring run measures these; the loop engine, the incident book-keeping and the
business check read their fields; they become dicts only in ``to_dict``, when a report
is serialised. Each ``to_dict`` keeps the JSON contract of the ``loops`` report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: z of a two-sided 95% interval: an interval's width over 2z is its standard error.
Z95 = 1.959964


class Serialisable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class MetricInterval:
    """A metric's value with its 95% interval; ``n`` is the rows behind it, when counted.

    >>> MetricInterval(value=0.8, ci_low=0.7, ci_high=0.9).standard_error
    0.0510...
    """

    value: float
    ci_low: float
    ci_high: float
    n: int | None = None

    @property
    def standard_error(self) -> float:
        return max(0.0, (self.ci_high - self.ci_low) / (2 * Z95))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}
        if self.n is not None:
            out["n"] = self.n
        return out


@dataclass(frozen=True, kw_only=True)
class DepartureTest:
    """How much worse than estimated a window did, beyond the usual gap, and on what basis."""

    departure: float
    usual: float
    excess: float
    z: float
    baseline_windows: int
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"departure": self.departure, "usual": self.usual, "excess": self.excess, "z": self.z,
                "baseline_windows": self.baseline_windows, "basis": self.basis}


@dataclass(kw_only=True)
class PerformanceWindow:
    """One prediction window of one version: estimated and realized performance."""

    start: datetime
    model_version: int
    metric: str
    predictions: int
    labels: int
    estimated: MetricInterval | None
    inputs_drifted: bool
    realized: MetricInterval | None = None
    #: Why ``estimated`` is null (too few rows, no estimator, ...), with the sizes.
    estimated_missing: Serialisable | None = None
    departure: DepartureTest | None = None
    #: Why ``realized`` is null (too few labels, one class, ...), with the sizes.
    realized_missing: Serialisable | None = None
    #: The business value of the window's predictions (expected and realized), when configured.
    value: dict[str, Any] = field(default_factory=dict)
    target_drift: dict[str, Any] | None = None

    @property
    def estimation_error(self) -> float | None:
        if self.estimated is None or self.realized is None:
            return None
        return round(self.estimated.value - self.realized.value, 4)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start.isoformat(), "model_version": self.model_version, "metric": self.metric,
            "predictions": self.predictions, "labels": self.labels,
            "estimated": None if self.estimated is None else self.estimated.to_dict(),
            "realized": None if self.realized is None else self.realized.to_dict(),
            "inputs_drifted": self.inputs_drifted,
        }
        if self.estimated_missing is not None:
            out["estimated_missing"] = self.estimated_missing.to_dict()
        if self.departure is not None:
            out["departure"] = self.departure.to_dict()
        if self.realized_missing is not None:
            out["realized_missing"] = self.realized_missing.to_dict()
        if self.estimation_error is not None:
            out["estimation_error"] = self.estimation_error
        if self.value:
            out["value"] = self.value
        out["target_drift"] = self.target_drift
        return out


@dataclass(frozen=True, kw_only=True)
class VersionPerformance:
    """A version's realized performance on its stable windows against its holdout."""

    metric: str
    realized: MetricInterval | None
    holdout: MetricInterval | None = None
    gap: float | None = None
    z: float | None = None
    overfitting_gap: bool = False
    realized_missing: Serialisable | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.realized is None:
            return {"metric": self.metric, "realized": None, "overfitting_gap": self.overfitting_gap,
                    "realized_missing": None if self.realized_missing is None else self.realized_missing.to_dict()}
        return {"metric": self.metric, "holdout": None if self.holdout is None else self.holdout.to_dict(),
                "realized": self.realized.to_dict(), "gap": self.gap, "z": self.z,
                "overfitting_gap": self.overfitting_gap}


@dataclass(kw_only=True)
class PerformanceEvidence:
    """Realized against estimated performance: per window, per version, per segment."""

    windows: list[PerformanceWindow] = field(default_factory=list)
    versions: dict[int, VersionPerformance] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    #: Parts of the evidence not measured, each with why (read from window summaries, the
    #: label part has no rows for segments, target drift, business value or the loss stream).
    not_measured: dict[str, str] = field(default_factory=dict)

    def realized_ends(self, length: Any) -> list[datetime]:
        """The ends of the windows whose realized performance is known."""
        return [w.start + length for w in self.windows if w.realized is not None]

    def to_dict(self) -> dict[str, Any]:
        if not (self.windows or self.versions or self.segments):
            return {}  # no labels measured yet
        out: dict[str, Any] = {"windows": [w.to_dict() for w in self.windows]}
        if self.versions:
            out["versions"] = {str(number): v.to_dict() for number, v in self.versions.items()}
        if self.segments:
            out["segments"] = self.segments
        if self.not_measured:
            out["not_measured"] = self.not_measured
        return out


@dataclass(frozen=True, kw_only=True)
class CoverageWindow:
    start: datetime
    predictions: int
    labelled: int

    @property
    def coverage(self) -> float:
        return round(self.labelled / self.predictions, 4)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "predictions": self.predictions, "labelled": self.labelled,
                "coverage": self.coverage}


@dataclass(kw_only=True)
class LabelCoverage:
    """Coverage (share of predictions labelled) and label delay, overall and per window."""

    predictions: int
    labelled: int
    #: Percentiles (p10, p50, p90) and the maximum of the label delay, in hours.
    delay_hours: dict[str, float] | None = None
    #: How far, relatively, a percentile of ``delay_hours`` may be from the exact one, when
    #: read from binned delays (window summaries); ``None``: read from the rows, exact.
    delay_relative_error: float | None = None
    #: Per window; ``None`` for count-based windows.
    windows: list[CoverageWindow] | None = None
    #: Coverage of the windows older than the usual label delay: what labelling achieves.
    coverage_mature: float | None = None
    #: The river detector's corroborating evidence over the loss stream, when it ran.
    concept_stream: dict[str, Any] | None = None

    @property
    def coverage(self) -> float | None:
        return round(self.labelled / self.predictions, 4) if self.predictions else None

    @property
    def judged_coverage(self) -> float | None:
        """The coverage a low-coverage signal is judged on: of mature windows when known."""
        return self.coverage_mature if self.windows is not None else self.coverage

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"predictions": self.predictions, "labelled": self.labelled,
                               "coverage": self.coverage}
        if self.delay_hours is None:
            return out
        out["delay_hours"] = self.delay_hours
        if self.delay_relative_error is not None:
            out["delay_relative_error"] = self.delay_relative_error
        if self.windows is not None:
            out["windows"] = [w.to_dict() for w in self.windows]
            out["coverage_mature"] = self.coverage_mature
        if self.concept_stream is not None:
            out["concept_stream"] = self.concept_stream
        return out


@dataclass(kw_only=True)
class BusinessEvidence:
    """Whether the business metric follows the model: lagged correlation, a change of their
    relation, and a fall of the metric while performance held."""

    metric: str
    observations: int
    #: Correlation of daily performance with the metric at each lag (``None``: too few days).
    lagged_correlation: list[Serialisable] | None = None
    #: The test of a change in the relation between the halves of the period.
    relation: Serialisable | None = None
    relation_changed: bool = False
    early_mean: float | None = None
    late_mean: float | None = None
    #: One-sided test that the metric's later half is lower than its earlier half.
    p_value: float | None = None
    performance_held: bool | None = None
    decoupled: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "observations": self.observations}
        if self.lagged_correlation is not None:
            out["lagged_correlation"] = [lag.to_dict() for lag in self.lagged_correlation]
        if self.relation is not None:
            out["relation"] = self.relation.to_dict()
            out["relation_changed"] = self.relation_changed
        if self.p_value is not None:
            out |= {"early_mean": self.early_mean, "late_mean": self.late_mean, "p_value": self.p_value,
                    "performance_held": self.performance_held, "decoupled": self.decoupled}
        return out
