"""Realized metrics with intervals from a window's label sums alone, no rows.

:class:`~loopwatch.summaries.labels.LabelSums` gives a window's realized point values; a
bootstrap needs the rows, so the intervals here are analytic, from the same counts and sums:

* **accuracy**, and a two-class **precision** and **recall**: Wilson score intervals of the
  proportion (correct over labelled; true positives over predicted, over actual positives).
  Unlike the Wald interval they stay inside [0, 1] and keep a width at 0 or 1.
* **F1**, and the macro **precision**, **recall** and **F1** of more classes: the delta method
  over the multinomial confusion counts (``var = sum_ij (df/dn_ij)^2 n_ij``, exact to first
  order for any ratio of counts), a normal interval clipped to [0, 1].
* **ROC AUC**: DeLong's (1988) variance on the binned scores (:func:`delong_variance`: from
  each row's placement among the other class, as on rows with the bins' scores), widened by
  :class:`~loopwatch.summaries.labels.ScoredLabels`' stated ``roc_auc_bound`` (the binned AUC
  is within it of the rows'): the binning's error is taken as uniform on ``[-bound, bound]``,
  whose variance ``bound^2 / 3`` adds to the sampling variance. Adding the whole bound to each
  side instead would take the worst case (every pair of rows in one bin ordered against the
  labels) as certain: on flights, where the scores crowd a few bins, the bound on the old 100
  bins (0.015) was five to a hundred times the binned AUC's actual distance from the rows',
  and adding it whole made the concept test's z scores a quarter lower than the row path's.
  On the 1,000 bins of :data:`~loopwatch.summaries.labels.RANK_SCORE_BINS` the bound is a
  tenth of that, and the interval is DeLong's on the rows to within 1% (breast cancer). With more
  classes, the mean of the one-vs-rest errors: an upper bound on the macro average's, however
  they correlate.
* **MAE**: a normal interval from the exact sums of absolute and squared errors (their sample
  variance is exact, ``|e|^2 = e^2``).
* **RMSE**: the interval of the mean squared error, taken to its square root. Its standard
  error needs the fourth moment of the errors, which the sums do not keep: it takes the larger
  of two guesses, errors normal with the sums' mean and variance (``var(e^2) = 2 s^4 + 4 m^2 s^2``),
  and errors whose tails are those of the generalised normal with the same ``MAE / RMSE`` ratio
  (:func:`kurtosis_of_ratio`). Tails heavier than that family's at the same ratio still make it
  too narrow: on flight arrival delays (kurtosis 27, guessed 13) it is 0.7 of the bootstrap's
  width (``tests/summaries/test_label_intervals.py``).
* **Brier score**: a conservative interval, the largest variance a mean of terms in ``[0, M]``
  can have (``b (M - b)``; ``M`` is 1 for a two-class Brier score, 2 for the multi-class sum).
* **log loss**, **ECE** and **MAPE**: the point value only (their intervals need per-row terms
  the sums do not keep): the interval is NaN.

Each interval is at ``confidence`` (95% by default), as the bootstrap's.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.performance.realized import MetricValue
from loopwatch.summaries.labels import LabelSums, ScoredLabels

CONFUSION_METRICS = ("accuracy", "precision", "recall", "f1")
SCORED_METRICS = ("roc_auc", "log_loss", "brier", "ece")
REGRESSION_METRICS = ("mae", "rmse", "mape")


def realized_interval(
    sums: LabelSums, metric: str, *, n_classes: int = 0, confidence: float = 0.95
) -> MetricValue | None:
    """``metric`` of the labelled rows ``sums`` adds up, with its analytic interval (see the module).

    ``n_classes``: the model's classes (the confusion's largest index may not reach them all).
    A two-class confusion reads the second class as positive, as
    :func:`~loopwatch.performance.realized.classification_metrics` does by default. The value
    is NaN where the rows' would be (no rows, one class for the AUC, nothing predicted positive
    for the precision). ``None``: the sums do not hold the metric (an AUC without probabilities,
    a regression metric of a classifier).
    """
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1, got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    if sums.task == "regression":
        if metric not in REGRESSION_METRICS:
            return None
        return _regression(sums, metric, z)
    if metric in SCORED_METRICS and sums.scored is None or metric not in CONFUSION_METRICS + SCORED_METRICS:
        return None
    cm = confusion_matrix(sums, n_classes=n_classes)
    positive = 1 if len(cm) == 2 else None
    value = sums.metrics(n_classes=len(cm), positive=positive)[metric]
    if sums.n == 0 or not math.isfinite(value):
        return MetricValue(metric, value, math.nan, math.nan, sums.n)
    if metric in CONFUSION_METRICS:
        low, high = _confusion_interval(cm, metric, positive, value, z)
    else:
        assert sums.scored is not None
        low, high = _scored_interval(sums.scored, metric, value, z)
    return MetricValue(metric, value, low, high, sums.n)


def confusion_matrix(sums: LabelSums, *, n_classes: int = 0) -> np.ndarray:
    """The ``[true, served]`` counts as a ``k x k`` matrix (``k``: at least ``n_classes``)."""
    k = max([n_classes, 2, *(max(cell) + 1 for cell in sums.confusion)])
    cm = np.zeros((k, k))
    for (t, p), count in sums.confusion.items():
        cm[t, p] = count
    return cm


def wilson(successes: float, trials: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion (NaN without trials)."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _confusion_interval(cm: np.ndarray, metric: str, positive: int | None, value: float,
                        z: float) -> tuple[float, float]:
    tp = np.diagonal(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    if metric == "accuracy":
        return wilson(float(tp.sum()), float(cm.sum()), z)
    if positive is not None and metric == "precision":
        return wilson(float(tp[positive]), float(predicted[positive]), z)
    if positive is not None and metric == "recall":
        return wilson(float(tp[positive]), float(actual[positive]), z)
    # delta method: each class's ratio moves with its own cells; a macro average weighs each
    # defined class (as kernels.confusion_metrics averages them) by one over their number
    k = len(cm)
    if metric == "precision":
        denominator, along = predicted, 0  # a class's column: the rows served that class
    elif metric == "recall":
        denominator, along = actual, 1  # a class's row: the rows truly of that class
    else:
        denominator, along = predicted + actual, -1
    scope = np.zeros(k, dtype=bool)
    if positive is not None:
        scope[positive] = denominator[positive] > 0
    else:
        scope = denominator > 0
    weight = np.where(scope, 1.0 / max(int(scope.sum()), 1), 0.0)
    safe = np.where(scope, denominator, 1.0)
    if along >= 0:
        # ratio tp_c / d_c: d/dn_cc = (d_c - tp_c) / d_c^2, d/dn of another cell of its line = -tp_c / d_c^2
        off = -weight * tp / safe**2
        grad = off[None, :] * np.ones((k, 1)) if along == 0 else off[:, None] * np.ones((1, k))
        np.fill_diagonal(grad, weight * (denominator - tp) / safe**2)
    else:
        # F1_c = 2 tp_c / (2 tp_c + fp_c + fn_c): a cell off the diagonal is a false negative of its
        # row's class and a false positive of its column's
        off = -2 * weight * tp / safe**2
        grad = off[:, None] + off[None, :]
        np.fill_diagonal(grad, 2 * weight * (denominator - 2 * tp) / safe**2)
    se = math.sqrt(float((grad**2 * cm).sum()))
    return max(0.0, value - z * se), min(1.0, value + z * se)


def _scored_interval(scored: ScoredLabels, metric: str, value: float, z: float) -> tuple[float, float]:
    if metric == "roc_auc":
        errors = []
        for c in scored.ranked():
            bins = sorted(set(scored.positives.get(c, {})) | set(scored.negatives.get(c, {})))
            pos = np.array([scored.positives.get(c, {}).get(b, 0) for b in bins], dtype=np.float64)
            neg = np.array([scored.negatives.get(c, {}).get(b, 0) for b in bins], dtype=np.float64)
            errors.append(math.sqrt(delong_variance(pos, neg)))
        # the binned AUC is within ``bound`` of the rows': that error, taken as uniform on
        # [-bound, bound] (how the rows of a bin are ordered is not known), adds bound^2 / 3
        bound = scored.metrics()["roc_auc_bound"]
        half = z * math.sqrt(float(np.mean(errors)) ** 2 + bound * bound / 3)
        return max(0.0, value - half), min(1.0, value + half)
    if metric == "brier":
        top = 1.0 if scored.positive is not None else 2.0
        se = math.sqrt(max(value * (top - value), 0.0) / scored.n)
        return max(0.0, value - z * se), min(top, value + z * se)
    return math.nan, math.nan  # log loss, ECE: their spread needs per-row terms


def delong_variance(positives: np.ndarray, negatives: np.ndarray) -> float:
    """DeLong, DeLong and Clarke-Pearson's (1988) variance of the AUC of rows binned by score:
    ``positives[b]`` and ``negatives[b]`` rows in the ``b``-th bin in score order, two rows of
    a bin counted as a tie (half), as the binned AUC counts them. From each row's placement
    among the other class (the structural components), exactly as on the rows with those
    scores: unlike Hanley and McNeil's, it assumes no shape of the score distributions.

    >>> round(delong_variance(np.array([0.0, 1.0, 3.0]), np.array([3.0, 1.0, 0.0])), 6)
    0.001953
    """
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos < 2 or n_neg < 2:
        return 0.25  # the largest an AUC's variance can be: nothing to estimate it from
    # a positive's share of negatives below it, a negative's share of positives above it
    v10 = (np.cumsum(neg) - neg + 0.5 * neg) / n_neg
    v01 = (pos[::-1].cumsum()[::-1] - pos + 0.5 * pos) / n_pos
    auc = float((pos * v10).sum() / n_pos)
    s10 = float((pos * (v10 - auc) ** 2).sum() / (n_pos - 1))
    s01 = float((neg * (v01 - auc) ** 2).sum() / (n_neg - 1))
    return float(s10 / n_pos + s01 / n_neg)


def _regression(sums: LabelSums, metric: str, z: float) -> MetricValue:
    values = sums.metrics()
    value, n = values[metric], sums.n
    if metric == "mape":
        return MetricValue(metric, value, math.nan, math.nan, sums.n_relative)
    if n < 2:
        return MetricValue(metric, value, math.nan, math.nan, n)
    squared = float(sums.errors["squared"].as_fraction()) / n
    if metric == "mae":
        spread = max(squared - value * value, 0.0) * n / (n - 1)  # the sample variance of |e|
        se = math.sqrt(spread / n)
        return MetricValue(metric, value, max(0.0, value - z * se), value + z * se, n)
    mean = float(sums.errors["error"].as_fraction()) / n
    variance = max(squared - mean * mean, 0.0) * n / (n - 1)
    absolute = float(sums.errors["absolute"].as_fraction()) / n
    # var(e^2): of normal errors with the sums' mean and variance, or of errors with the tails
    # their MAE / RMSE ratio implies, whichever is larger (heavy tails lower the ratio)
    spread = max(2 * variance**2 + 4 * mean * mean * variance,
                 (kurtosis_of_ratio(absolute / math.sqrt(squared)) - 1) * squared**2 if squared > 0 else 0.0)
    se = math.sqrt(spread / n)  # of the mean squared error
    return MetricValue(metric, value, math.sqrt(max(squared - z * se, 0.0)), math.sqrt(squared + z * se), n)


def _shape_ratio(beta: float) -> float:
    # E|x| / sqrt(E x^2) of a generalised normal of shape beta (2: normal, 1: Laplace)
    return math.exp(math.lgamma(2 / beta) - (math.lgamma(1 / beta) + math.lgamma(3 / beta)) / 2)


def kurtosis_of_ratio(ratio: float) -> float:
    """``E x^4 / (E x^2)^2`` of the generalised normal (centred at zero) whose ``E|x| / sqrt(E x^2)``
    is ``ratio``: 3 at the normal's 0.798, 6 at the Laplace's 0.707, more below. The ratio rises
    with the shape, so the shape is found by bisection (on its log, between 0.1 and 50)."""
    low, high = math.log(0.1), math.log(50.0)
    if not ratio < _shape_ratio(math.exp(high)):
        return _kurtosis(math.exp(high))
    if not ratio > _shape_ratio(math.exp(low)):
        return _kurtosis(math.exp(low))
    for _ in range(60):
        middle = (low + high) / 2
        if _shape_ratio(math.exp(middle)) < ratio:
            low = middle
        else:
            high = middle
    return _kurtosis(math.exp((low + high) / 2))


def _kurtosis(beta: float) -> float:
    return math.exp(math.lgamma(5 / beta) + math.lgamma(1 / beta) - 2 * math.lgamma(3 / beta))
