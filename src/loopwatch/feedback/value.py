"""What the model's predictions are worth: a value matrix for classifiers, a cost function for regressors.

A classifier's predictions are worth ``values[true class][predicted class]``
each (a caught churner +50, a missed one -200, a needless offer -10, ...); a
regressor's cost ``over`` per unit of over-prediction and ``under`` per unit
of under-prediction (or per squared unit). Totals come with an interval:

* :func:`classification_value` and :func:`regression_cost`: a percentile
  bootstrap over predictions (``n_boot`` resamples, ``seed``). For a
  classifier the resample of rows is drawn as a multinomial over the cells
  of the confusion matrix, which is the same distribution and costs
  ``O(n_boot * k^2)`` instead of ``O(n_boot * n)``.
* :func:`expected_classification_value`: before any label arrives, the value
  expected from the model's probabilities, ``sum_i sum_t p_it values[t][pred_i]``,
  with the normal interval of the realized total if the probabilities are
  calibrated (predictions independent; variance ``sum_i var_i``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from scipy import stats

from loopwatch.errors import InvalidInput, echo, listed
from loopwatch.features.schema import category_label
from loopwatch.performance.labels import check_classes, check_confidence, check_count, check_proba, check_values, encode_labels

MAX_BOOT_CELLS = 4_000_000  # bootstrap indices drawn at once for a regressor: bounded memory


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInput(f"{what} must be a number, got {echo(value)}")
    if not math.isfinite(float(value)):
        raise InvalidInput(f"{what} must be finite, got {echo(value)}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class ValueMatrix:
    """Value of one prediction per (true class, predicted class), keyed by the classes' labels.

    >>> matrix = ValueMatrix(values={"1": {"1": 50, "0": -200}, "0": {"1": -10, "0": 0}})
    >>> matrix.as_array([0, 1]).tolist()
    [[0.0, -10.0], [-200.0, 50.0]]
    """

    values: Mapping[str, Mapping[str, float]]

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping) or not self.values:
            raise InvalidInput("values must map each true class to a mapping of predicted class to value")
        for true, row in self.values.items():
            if not isinstance(row, Mapping):
                raise InvalidInput(f"values[{echo(true)}] must map predicted classes to values")
            for pred, value in row.items():
                _finite(value, f"values[{echo(true)}][{echo(pred)}]")

    def _rows(self) -> dict[str, dict[str, float]]:
        return {category_label(t): {category_label(p): float(v) for p, v in row.items()} for t, row in self.values.items()}

    def validate(self, classes: Sequence[Any]) -> None:
        """Every (true, predicted) pair of ``classes`` has a value, else InvalidInput naming the missing ones."""
        rows = self._rows()
        labels = [category_label(c) for c in check_classes(classes)]
        missing = [f"{t}->{p}" for t in labels for p in labels if p not in rows.get(t, {})]
        if missing:
            raise InvalidInput(f"the value matrix has no value for (true->predicted): {listed(missing)}",
                               detail={"missing": missing})

    def as_array(self, classes: Sequence[Any]) -> np.ndarray:
        """The k x k matrix, rows true class and columns predicted class, in the order of ``classes``."""
        self.validate(classes)
        rows, labels = self._rows(), [category_label(c) for c in classes]
        return np.array([[rows[t][p] for p in labels] for t in labels], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self._rows()}


@dataclass(frozen=True, kw_only=True)
class CostFunction:
    """A regressor's cost: ``over`` per unit of over-prediction, ``under`` per unit of under-prediction
    (per squared unit with ``kind="squared"``).

    >>> CostFunction(over=1.0, under=3.0).costs([10.0, 10.0], [12.0, 9.0]).tolist()
    [2.0, 3.0]
    """

    over: float
    under: float
    kind: Literal["absolute", "squared"] = "absolute"

    def __post_init__(self) -> None:
        for name in ("over", "under"):
            if _finite(getattr(self, name), name) < 0:
                raise InvalidInput(f"{name} is a cost per unit and must be >= 0")
        if self.kind not in ("absolute", "squared"):
            raise InvalidInput(f"kind must be 'absolute' or 'squared', not {echo(self.kind)}")

    def costs(self, y_true: Any, y_pred: Any) -> np.ndarray:
        """The cost of each prediction."""
        truth = check_values(y_true, name="y_true")
        error = check_values(y_pred, name="y_pred", n=len(truth)) - truth
        size = np.abs(error) if self.kind == "absolute" else error * error
        cost: np.ndarray = np.where(error > 0, self.over, self.under) * size
        return cost

    def to_dict(self) -> dict[str, Any]:
        return {"over": float(self.over), "under": float(self.under), "kind": self.kind}


@dataclass(frozen=True)
class BusinessValue:
    """A total (value, or cost for a regressor) with its interval, and per prediction."""

    kind: Literal["value", "expected_value", "cost"]
    n: int
    total: float
    ci_low: float
    ci_high: float
    confidence: float
    interval: Literal["bootstrap", "normal"]
    n_boot: int | None = None
    breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def per_prediction(self) -> float:
        return self.total / self.n

    @property
    def per_prediction_ci(self) -> tuple[float, float]:
        return self.ci_low / self.n, self.ci_high / self.n

    def to_dict(self) -> dict[str, Any]:
        low, high = self.per_prediction_ci
        return {
            "kind": self.kind, "n": self.n, "total": self.total, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "per_prediction": self.per_prediction, "per_prediction_ci_low": low, "per_prediction_ci_high": high,
            "confidence": self.confidence, "interval": self.interval, "n_boot": self.n_boot,
            "breakdown": dict(self.breakdown),
        }


def _percentiles(totals: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(totals, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _boot_options(confidence: float, n_boot: int, seed: Any) -> tuple[float, int, np.random.Generator]:
    confidence = check_confidence(confidence)
    n_boot = check_count(n_boot, name="n_boot", minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInput(f"seed must be an integer, got {echo(seed)}")
    return confidence, n_boot, np.random.default_rng(int(seed))


def classification_value(
    y_true: Any,
    y_pred: Any,
    matrix: ValueMatrix,
    *,
    classes: Sequence[Any],
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> BusinessValue:
    """The realized value of labelled predictions, with a bootstrap interval.

    ``breakdown`` holds each (true->predicted) cell's share of the total.

    >>> matrix = ValueMatrix(values={"1": {"1": 50, "0": -200}, "0": {"1": -10, "0": 0}})
    >>> v = classification_value([1, 1, 0, 0, 0], [1, 0, 1, 0, 0], matrix, classes=[0, 1])
    >>> v.total, v.per_prediction, v.breakdown["1->0"]
    (-160.0, -32.0, -200.0)
    """
    known = check_classes(classes)
    truth = encode_labels(y_true, known, name="y_true")
    pred = encode_labels(y_pred, known, name="y_pred")
    if len(truth) != len(pred):
        raise InvalidInput(f"y_pred has {len(pred)} values, y_true has {len(truth)}")
    k = len(known)
    counts = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    return classification_value_of_counts(counts, matrix, classes=known, confidence=confidence, n_boot=n_boot,
                                          seed=seed)


def classification_value_of_counts(
    counts: Any,
    matrix: ValueMatrix,
    *,
    classes: Sequence[Any],
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> BusinessValue:
    """:func:`classification_value` of a ``[true, predicted]`` count matrix over ``classes``
    (a window summary's confusion counts): the same value and, with the same seed, the same
    bootstrap, which resamples the counts.

    >>> matrix = ValueMatrix(values={"1": {"1": 50, "0": -200}, "0": {"1": -10, "0": 0}})
    >>> classification_value_of_counts([[2, 1], [1, 1]], matrix, classes=[0, 1]).total
    -160.0
    """
    confidence, n_boot, rng = _boot_options(confidence, n_boot, seed)
    known = check_classes(classes)
    values = matrix.as_array(known)
    k = len(known)
    cells = np.asarray(counts, dtype=np.int64)
    if cells.shape != (k, k) or (cells < 0).any():
        raise InvalidInput(f"counts must be a {k} x {k} matrix of non-negative counts")
    counts = cells.ravel()
    n = int(counts.sum())
    if n == 0:
        raise InvalidInput("there are no predictions to value")
    cell_values = values.ravel()
    total = float(counts @ cell_values)
    resampled = rng.multinomial(n, counts / n, size=n_boot) @ cell_values
    low, high = _percentiles(resampled, confidence)
    labels = [category_label(c) for c in known]
    breakdown = {f"{labels[i // k]}->{labels[i % k]}": float(counts[i] * cell_values[i])
                 for i in range(k * k) if counts[i]}
    return BusinessValue("value", n, total, low, high, confidence, "bootstrap", n_boot, breakdown)


def expected_classification_value(
    y_proba: Any,
    y_pred: Any,
    matrix: ValueMatrix,
    *,
    classes: Sequence[Any],
    confidence: float = 0.95,
) -> BusinessValue:
    """The value expected from (calibrated) probabilities, before any label arrives.

    The interval is where the realized total falls with probability
    ``confidence`` if the probabilities are calibrated (normal approximation).

    >>> matrix = ValueMatrix(values={"1": {"1": 50, "0": -200}, "0": {"1": -10, "0": 0}})
    >>> v = expected_classification_value([[0.9, 0.1], [0.2, 0.8]], [0, 1], matrix, classes=[0, 1])
    >>> round(v.total, 6)  # 0.1 * -200 + (0.2 * -10 + 0.8 * 50)
    18.0
    """
    confidence = check_confidence(confidence)
    known = check_classes(classes)
    values = matrix.as_array(known)
    pred = encode_labels(y_pred, known, name="y_pred")
    if len(pred) == 0:
        raise InvalidInput("there are no predictions to value")
    proba = check_proba(y_proba, n=len(pred), k=len(known))
    if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        raise InvalidInput("each row of y_proba must sum to 1")
    outcome = values[:, pred].T  # the value of each prediction under each possible true class
    mean = np.einsum("ij,ij->i", proba, outcome)
    variance = np.maximum(np.einsum("ij,ij->i", proba, outcome * outcome) - mean * mean, 0.0)
    total = float(mean.sum())
    half = float(stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(variance.sum()))
    return BusinessValue("expected_value", len(pred), total, total - half, total + half, confidence, "normal")


def regression_cost(
    y_true: Any,
    y_pred: Any,
    cost: CostFunction,
    *,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> BusinessValue:
    """The total cost of a regressor's errors, with a bootstrap interval.

    ``breakdown`` splits it into the cost of over- and of under-predictions.

    >>> c = regression_cost([10.0, 10.0, 10.0], [12.0, 9.0, 10.0], CostFunction(over=1.0, under=3.0))
    >>> c.total, c.breakdown
    (5.0, {'over': 2.0, 'under': 3.0})
    """
    confidence, n_boot, rng = _boot_options(confidence, n_boot, seed)
    if not isinstance(cost, CostFunction):
        raise InvalidInput("cost must be a CostFunction")
    each = cost.costs(y_true, y_pred)
    n = len(each)
    if n == 0:
        raise InvalidInput("there are no predictions to cost")
    over = np.asarray(y_pred, dtype=np.float64) > np.asarray(y_true, dtype=np.float64)
    per_chunk = max(1, MAX_BOOT_CELLS // n)
    totals = np.concatenate([
        each[rng.integers(0, n, size=(min(per_chunk, n_boot - start), n))].sum(axis=1)
        for start in range(0, n_boot, per_chunk)
    ])
    low, high = _percentiles(totals, confidence)
    breakdown = {"over": float(each[over].sum()), "under": float(each[~over].sum())}
    return BusinessValue("cost", n, float(each.sum()), low, high, confidence, "bootstrap", n_boot, breakdown)
