"""Realized performance: metrics of a window whose labels have arrived, with bootstrap intervals.

Classification: accuracy, precision, recall and F1 (of the ``positive`` class
for two classes, the macro average for more), and with probabilities ROC AUC
(binary, or the macro one-vs-rest average), log loss, the Brier score and the
expected calibration error. Regression: MAE, RMSE and MAPE. Values agree with
scikit-learn's (``tests/performance/test_realized.py``).

Intervals are seeded percentile bootstraps over the window's rows. They are
vectorised: a block of resamples is an index matrix, and each metric is one
kernel over the whole block (``kernels.py``), never a Python loop over
resamples.

A metric that is undefined on a window is NaN, never an exception: ROC AUC
when the window holds one class only, precision when nothing was predicted
positive, MAPE when every true value is zero. ``n`` says how many rows a
value rests on (for MAPE, the rows with a non-zero true value). An empty
window gives NaN for everything, with ``n == 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.performance import kernels
from loopwatch.performance.labels import (
    check_classes,
    check_confidence,
    check_count,
    check_proba,
    check_values,
    encode_labels,
    positive_index,
)

#: Bins of the expected calibration error: equal width on [0, 1].
ECE_BINS = 10
#: Metrics where a lower value is better; every other metric is better higher.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "mae", "rmse", "mape"})
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece")
REGRESSION_METRICS = ("mae", "rmse", "mape")


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricValue:
    """One metric of one window: its value, an interval at the stated confidence, and its row count.

    For a realized metric the interval is a bootstrap confidence interval; for
    an estimate it is where the realized value should fall (see estimation.py).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (False when the interval is undefined)."""
        return bool(self.ci_low <= value <= self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "n": self.n,
        }


Batch = Callable[[np.ndarray], dict[str, np.ndarray]]


def summarise(
    batch: Batch, *, n: int, n_boot: int, confidence: float, seed: int, counts: Mapping[str, int]
) -> dict[str, MetricValue]:
    """Point values (every row once) and bootstrap intervals of every metric ``batch`` computes."""
    point = batch(np.arange(n)[None, :])
    draws: dict[str, list[np.ndarray]] = {name: [] for name in point}
    rng = np.random.default_rng(seed)
    for index in kernels.resample_indices(n, n_boot, rng):
        for name, values in batch(index).items():
            draws[name].append(values)
    out = {}
    for name, value in point.items():
        samples = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        low, high = kernels.interval(samples, confidence)
        out[name] = MetricValue(name, float(value[0]), low, high, int(counts.get(name, n)))
    return out


def _empty(names: Sequence[str]) -> dict[str, MetricValue]:
    nan = float("nan")
    return {name: MetricValue(name, nan, nan, nan, 0) for name in names}


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    *,
    classes: Sequence[Any],
    positive: Any = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """Classification metrics of a window, with seeded bootstrap intervals.

    ``y_proba`` holds one column per class, in the order of ``classes``; without
    it only accuracy, precision, recall and F1 are computed. ``positive`` (two
    classes only) names the class whose precision, recall and F1 are reported,
    and whose probability the AUC, Brier score and ECE read; by default the
    second class. With more classes, precision, recall, F1 and AUC are macro
    averages, the Brier score sums over classes, and the ECE is of the top class.
    ``n_boot=0`` skips the bootstrap (intervals are NaN).
    """
    classes = check_classes(classes)
    k = len(classes)
    if positive is not None and k > 2:
        raise InvalidInput("positive applies to two classes; with more, precision, recall and F1 are macro")
    confidence = check_confidence(confidence)
    n_boot = check_count(n_boot, name="n_boot")
    truth = encode_labels(y_true, classes, name="y_true")
    predicted = encode_labels(y_pred, classes, name="y_pred")
    n = len(truth)
    if len(predicted) != n:
        raise InvalidInput(f"y_pred has {len(predicted)} labels, y_true {n}")
    proba = None if y_proba is None else check_proba(y_proba, n=n, k=k)
    names = CLASSIFICATION_METRICS if proba is not None else CLASSIFICATION_METRICS[:4]
    if n == 0:
        return _empty(names)
    pos = positive_index(classes, positive) if k == 2 else None
    batch = _classification_batch(truth, predicted, proba, k=k, pos=pos)
    return summarise(batch, n=n, n_boot=n_boot, confidence=confidence, seed=seed, counts={})


def _classification_batch(
    truth: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, *, k: int, pos: int | None
) -> Batch:
    n = len(truth)
    cells = truth * k + predicted
    if proba is None:
        return lambda index: kernels.confusion_metrics(
            kernels.grouped_counts(cells[index], k * k).reshape(-1, k, k), pos
        )
    eps = np.finfo(np.float64).eps
    rows = np.arange(n)
    loss = -np.log(np.clip(proba[rows, truth], eps, 1 - eps))
    onehot = np.eye(k)[truth]
    if pos is not None:
        brier = (proba[:, pos] - onehot[:, pos]) ** 2
        confidence, outcome = proba[:, pos], onehot[:, pos]
    else:
        brier = ((proba - onehot) ** 2).sum(axis=1)
        confidence, outcome = proba.max(axis=1), (proba.argmax(axis=1) == truth).astype(np.float64)
    # the binning of sklearn.calibration.calibration_curve(strategy="uniform"): right-closed bins
    bins = np.searchsorted(np.linspace(0, 1, ECE_BINS + 1)[1:-1], confidence)
    auc_classes = [pos] if pos is not None else list(range(k))
    ranked = []
    for c in auc_classes:
        order, starts = kernels.tie_groups(proba[:, c])
        ranked.append((order, starts, (truth[order] == c).astype(np.float64)))

    def batch(index: np.ndarray) -> dict[str, np.ndarray]:
        out = kernels.confusion_metrics(kernels.grouped_counts(cells[index], k * k).reshape(-1, k, k), pos)
        weights = kernels.counts_per_row(index, n)
        per_class = [
            kernels.auc_from_masses(weights[:, order] * is_c, weights[:, order] * (1 - is_c), starts)
            for order, starts, is_c in ranked
        ]
        out["roc_auc"] = np.mean(per_class, axis=0)  # NaN when any class's AUC is undefined
        out["log_loss"] = loss[index].mean(axis=1)
        out["brier"] = brier[index].mean(axis=1)
        binned = bins[index]
        gap = kernels.grouped_counts(binned, ECE_BINS, outcome[index]) - kernels.grouped_counts(
            binned, ECE_BINS, confidence[index]
        )
        out["ece"] = np.abs(gap).sum(axis=1) / n
        return out

    return batch


def regression_metrics(
    y_true: Any, y_pred: Any, *, confidence: float = 0.95, n_boot: int = 200, seed: int = 0
) -> dict[str, MetricValue]:
    """MAE, RMSE and MAPE of a window, with seeded bootstrap intervals.

    MAPE is a fraction (0.1 = 10%), over the rows whose true value is not zero;
    its ``n`` counts those rows, and it is NaN when there are none.
    """
    confidence = check_confidence(confidence)
    n_boot = check_count(n_boot, name="n_boot")
    truth = check_values(y_true, name="y_true")
    n = len(truth)
    predicted = check_values(y_pred, name="y_pred", n=n)
    if n == 0:
        return _empty(REGRESSION_METRICS)
    with np.errstate(over="ignore"):  # beyond float range a loss is inf, which is what it is
        error = predicted - truth
        absolute, squared = np.abs(error), error**2
        counted = truth != 0
        relative = np.zeros(n)
        np.divide(absolute, np.abs(truth), out=relative, where=counted)
    counted_f = counted.astype(np.float64)

    def batch(index: np.ndarray) -> dict[str, np.ndarray]:
        rows = counted_f[index].sum(axis=1)
        mape = np.full(len(index), np.nan)
        with np.errstate(over="ignore"):
            np.divide(relative[index].sum(axis=1), rows, out=mape, where=rows > 0)
            return {
                "mae": absolute[index].mean(axis=1),
                "rmse": np.sqrt(squared[index].mean(axis=1)),
                "mape": mape,
            }

    return summarise(
        batch, n=n, n_boot=n_boot, confidence=confidence, seed=seed, counts={"mape": int(counted.sum())}
    )


def overfitting_gap(
    realized: Mapping[str, MetricValue], holdout: Mapping[str, float]
) -> dict[str, dict[str, float | bool]]:
    """How production compares with the holdout, per metric present in both.

    ``gap`` is signed so that a positive gap means production is worse than
    the holdout (``holdout - realized`` for accuracy-like metrics, ``realized
    - holdout`` for losses); ``outside_ci`` says whether the holdout value lies
    outside the realized interval, i.e. whether the difference is more than
    the window's sampling noise.
    """
    out: dict[str, dict[str, float | bool]] = {}
    for name, metric in realized.items():
        if name not in holdout:
            continue
        reference = float(holdout[name])
        gap = metric.value - reference if name in LOWER_IS_BETTER else reference - metric.value
        out[name] = {
            "holdout": reference,
            "realized": metric.value,
            "gap": gap,
            "outside_ci": math.isfinite(reference) and math.isfinite(metric.ci_low) and not metric.contains(reference),
        }
    return out
