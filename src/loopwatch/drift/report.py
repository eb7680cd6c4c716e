"""The typed drift report and its stable JSON form (documented in docs/drift.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from loopwatch.errors import InvalidInput, echo
from loopwatch.stats.practical import PracticalThreshold


def _practical(significant: bool | None, practical: PracticalThreshold | None) -> dict[str, Any]:
    """The decision's two halves, beside each other: significant, and large enough to matter."""
    return {
        "significant": significant,
        "effect": None if practical is None else _num(practical.effect),
        "practical_threshold": None if practical is None else _num(practical.threshold),
        "practical": None if practical is None else practical.to_dict(),
    }


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


@dataclass(frozen=True)
class TestStatistic:
    """A hypothesis test: its statistic, raw p-value, and p-value adjusted across features."""

    statistic: float
    p_value: float
    p_value_adjusted: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "p_value_adjusted": _num(self.p_value_adjusted),
        }


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    drift: bool
    decided_by: str
    #: Tests (``ks``, ``chi2``) and distances (numbers) by name.
    statistics: dict[str, TestStatistic | float]
    #: Each distance's threshold, calibrated on the reference by bootstrap.
    thresholds: dict[str, float]
    #: Aggregates for plots: bin edges and counts, or category counts; never raw rows.
    distribution: dict[str, Any]
    n_reference: int
    n_current: int
    #: Whether the deciding test alone was significant (None for an empty column).
    significant: bool | None = None
    #: The effect and the threshold it must reach to matter; ``drift`` needs both.
    practical: PracticalThreshold | None = None
    #: Statistics read from a sketch (a window summary's): the most each can be off by
    #: (empty when every statistic is exact).
    error_bounds: dict[str, float] = field(default_factory=dict)

    @property
    def effect(self) -> float:
        """A size of the change comparable across features, for ranking."""
        value = self.statistics.get("wasserstein_normed" if self.kind == "numeric" else "js_distance")
        return float(value) if isinstance(value, (int, float)) else 0.0

    @property
    def practical_threshold(self) -> float | None:
        return None if self.practical is None else self.practical.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "drift": self.drift,
            "decided_by": self.decided_by,
            "statistics": {
                k: v.to_dict() if isinstance(v, TestStatistic) else _num(v)
                for k, v in self.statistics.items()
            },
            "thresholds": {k: _num(v) for k, v in self.thresholds.items()},
            **_practical(self.significant, self.practical),
            "distribution": self.distribution,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            **({"error_bounds": {k: _num(v) for k, v in self.error_bounds.items()}} if self.error_bounds else {}),
        }


@dataclass(frozen=True)
class MultivariateDrift:
    name: str
    drift: bool
    statistic: float
    p_value: float
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    significant: bool | None = None
    practical: PracticalThreshold | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "threshold": _num(self.threshold),
            **_practical(self.significant, self.practical),
            **self.extra,
        }


@dataclass(frozen=True)
class OutlierRate:
    name: str
    rate: float
    expected_rate: float
    p_value: float
    drift: bool
    n_flagged: int
    significant: bool | None = None
    practical: PracticalThreshold | None = None
    #: The rows scored: all of the window's, or a seeded sample of a larger one
    #: (``DriftConfig.outlier_max_rows``); ``None`` in reports made before it was kept.
    n_scored: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": _num(self.rate),
            "expected_rate": _num(self.expected_rate),
            "p_value": _num(self.p_value),
            "drift": self.drift,
            "n_flagged": self.n_flagged,
            "n_scored": self.n_scored,
            **_practical(self.significant, self.practical),
        }


@dataclass(frozen=True)
class DataQuality:
    """Facts about the current data that are not distributions: missing, unseen, out of range."""

    missing_columns: list[str]
    unknown_columns: list[str]
    missing_rate: dict[str, float]
    reference_missing_rate: dict[str, float]
    unseen_categories: dict[str, dict[str, int]]
    out_of_range_rate: dict[str, float]
    #: Rows with a null in a feature that is neither nullable in the schema nor declared
    #: nullable in the model's settings (accepted because the model fills it in); filled
    #: by the monitor, which knows the schema and the settings.
    unexpected_missing: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_columns": self.missing_columns,
            "unknown_columns": self.unknown_columns,
            "missing_rate": self.missing_rate,
            "reference_missing_rate": self.reference_missing_rate,
            "unseen_categories": self.unseen_categories,
            "out_of_range_rate": self.out_of_range_rate,
            "unexpected_missing": self.unexpected_missing,
        }


#: Why a test did not run on a window: fewer rows (or labels) than it needs, a column with no
#: value, or an input it refused. The other tests of the window still run.
#: ``no_row_sample``: read from a window summary without sampled rows (a model that logs no
#: input rows), so the tests that need rows cannot run.
SKIP_REASONS = ("too_few_rows", "too_few_labels", "no_values", "refused", "no_row_sample")


@dataclass(frozen=True)
class SkippedTest:
    """A test left out of a window, with the sizes that decided it.

    ``test`` names it as the alarms do (``multivariate:mmd``, ``feature:z``,
    ``previous``); ``n`` is what the window had (rows, labels or values) and
    ``minimum`` what the test declares it needs (None when no size would do).
    """

    test: str
    reason: str
    n: int
    minimum: int | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in SKIP_REASONS:
            raise InvalidInput(f"unknown skip reason {echo(self.reason)}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"test": self.test, "reason": self.reason, "n": self.n, "minimum": self.minimum}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class DriftReport:
    dataset_drift: bool
    n_reference: int
    n_current: int
    alpha: float
    features: dict[str, FeatureDrift]
    multivariate: dict[str, MultivariateDrift]
    outliers: dict[str, OutlierRate]
    data_quality: DataQuality
    #: Drift of the model's outputs, when the tables carry them.
    predictions: dict[str, FeatureDrift] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: Tests the current table was too small or too odd for (see :class:`SkippedTest`).
    skipped: list[SkippedTest] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        """Drifted features, largest change first."""
        drifted = [f for f in self.features.values() if f.drift]
        return [f.name for f in sorted(drifted, key=lambda f: -f.effect)]

    @property
    def prediction_drift(self) -> bool:
        return any(p.drift for p in self.predictions.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "alpha": self.alpha,
            "drifted_features": self.drifted_features,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "multivariate": {name: m.to_dict() for name, m in self.multivariate.items()},
            "outliers": {name: o.to_dict() for name, o in self.outliers.items()},
            "data_quality": self.data_quality.to_dict(),
            "predictions": {name: p.to_dict() for name, p in self.predictions.items()},
            "prediction_drift": self.prediction_drift,
            "config": self.config,
            "skipped": [t.to_dict() for t in self.skipped],
        }
