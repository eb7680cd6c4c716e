"""Performance without labels: what a window's metrics should be, before its labels arrive.

:class:`ConfidenceBasedEstimator` (CBPE, classifiers). On the model's holdout
outputs and labels it fits one calibrator per class (for two classes, one for
the positive class): isotonic, sigmoid (Platt) or none, by default whichever
has the lowest cross-fitted log loss on the holdout (:mod:`~loopwatch.performance.calibration`).
On a window it calibrates the model's probabilities; row ``i`` then has true class ``c`` with probability
``q[i, c]``, and the window's expected confusion matrix is
``E[cm][c, p] = sum of q[i, c] over the rows predicted p``. Accuracy is its
trace over its total (exactly the expected accuracy); precision, recall and F1
are the same ratios of expected counts. ROC AUC is the Mann-Whitney statistic
over the model's own scores with the calibrated probabilities as soft labels:
every pair of distinct rows counts ``q_i (1 - q_j)``. Because it reads only
the model's outputs, the estimate follows a shift in the input mix
(covariate shift) but cannot see a change in how labels relate to the inputs
(concept drift): that is what comparing it with realized metrics, once labels
come, reveals (:func:`departures`).

The interval of an estimate is not a confidence interval of the estimate: it
is where the *realized* value should fall if the model is as calibrated as on
the holdout. It is computed, not assumed: ``n_sim`` label vectors are drawn
from the calibrated probabilities (seeded), the realized metrics of each draw
are computed with the same kernels as realized metrics, and the interval is
their central quantile range. For accuracy this is the Poisson-binomial
sampling distribution of ``sum of Bernoulli(q_i) / n``; for the other metrics
it is the same idea without a closed form. It adapts to the window: its size,
and how confident the model is on the rows it holds. The calibrators' own
error (they are fitted on a finite holdout) is in it too: draw ``j`` takes
its probabilities from calibrators refitted on bootstrap resample ``j mod
calibration_resamples`` of the holdout.

Regressors: :class:`DirectLossEstimator` (DLE), in
:mod:`loopwatch.performance.loss_estimation` and re-exported here.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from loopwatch.errors import InvalidInput, echo
from loopwatch.performance import kernels
from loopwatch.performance.calibration import CALIBRATIONS, choose_calibration, fit_calibrator
from loopwatch.performance.labels import (
    check_classes,
    check_confidence,
    check_count,
    check_proba,
    encode_labels,
    positive_index,
)
from loopwatch.performance.loss_estimation import DirectLossEstimator
from loopwatch.performance.realized import MetricValue, classification_metrics

__all__ = ["ConfidenceBasedEstimator", "DirectLossEstimator", "departures", "estimation_error"]

#: Metrics a CBPE estimates.
ESTIMATED_CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")


class ConfidenceBasedEstimator:
    """Estimate a classifier's accuracy, precision, recall, F1 and ROC AUC from its probabilities.

    ``classes`` in the order of the probability columns; ``positive`` (two
    classes) as in :func:`~loopwatch.performance.realized.classification_metrics`.
    The predicted class is the most probable one, as loopwatch serves it, or
    with ``threshold`` (two classes) the positive class whenever its
    probability reaches the threshold. ``calibration="none"`` trusts the
    model's probabilities as they are.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=4000)
    >>> y = (rng.uniform(size=4000) < p).astype(int)
    >>> cbpe = ConfidenceBasedEstimator(classes=[0, 1]).fit(np.c_[1 - p, p], y)
    >>> cbpe.calibration_  # the scores are calibrated already: cross-fitting keeps them as they are
    'none'
    >>> round(cbpe.reference_metrics_["accuracy"].value, 2)
    0.74
    >>> window = rng.beta(5, 1, size=1000)  # the inputs moved to where the model is sure
    >>> accuracy = cbpe.estimate(np.c_[1 - window, window])["accuracy"]
    >>> round(accuracy.value, 2), round(accuracy.ci_low, 2), round(accuracy.ci_high, 2)
    (0.85, 0.82, 0.87)
    """

    def __init__(
        self,
        *,
        classes: Sequence[Any],
        positive: Any = None,
        calibration: str = "auto",
        threshold: float | None = None,
        n_sim: int = 300,
        calibration_resamples: int = 20,
        seed: int = 0,
    ) -> None:
        self.classes = classes
        self.positive = positive
        self.calibration = calibration
        self.threshold = threshold
        self.n_sim = n_sim
        self.calibration_resamples = calibration_resamples
        self.seed = seed

    def _check_params(self) -> tuple[tuple[Any, ...], int | None]:
        classes = check_classes(self.classes)
        if self.calibration not in CALIBRATIONS:
            raise InvalidInput(f"calibration must be one of {CALIBRATIONS}, got {echo(self.calibration)}")
        if len(classes) > 2 and (self.positive is not None or self.threshold is not None):
            raise InvalidInput("positive and threshold apply to two classes only")
        if self.threshold is not None and not 0 < float(self.threshold) < 1:
            raise InvalidInput(f"threshold must be between 0 and 1, got {echo(self.threshold)}")
        check_count(self.n_sim, name="n_sim", minimum=1)
        check_count(self.calibration_resamples, name="calibration_resamples")
        pos = positive_index(classes, self.positive) if len(classes) == 2 else None
        return classes, pos

    def fit(
        self, y_proba_reference: Any, y_true_reference: Any, *, y_pred_reference: Any = None
    ) -> ConfidenceBasedEstimator:
        """Fit on the model's holdout probabilities and the holdout's true labels (and served
        labels, as in :meth:`estimate`, for ``reference_metrics_``)."""
        classes, pos = self._check_params()
        truth = encode_labels(y_true_reference, classes, name="y_true_reference")
        proba = check_proba(y_proba_reference, n=len(truth), k=len(classes), name="y_proba_reference")
        if len(truth) < 2:
            raise InvalidInput("the reference needs at least two labelled rows")
        columns = [pos] if pos is not None else list(range(len(classes)))
        self.classes_, self.positive_index_ = classes, pos
        self.calibration_scores_: dict[str, float] = {}
        method = self.calibration
        if method == "auto":
            self.calibration_scores_ = choose_calibration(proba, truth, columns, seed=self.seed)
            method = min(self.calibration_scores_, key=self.calibration_scores_.__getitem__)
        self.calibration_ = method
        self.calibrators_ = _fit_calibrators(method, proba, truth, classes, columns)
        # the calibrators' own sampling error: the same fit on bootstrap resamples of the reference
        rng = np.random.default_rng(self.seed)
        resamples = self.calibration_resamples if method != "none" else 0
        self.resampled_calibrators_ = [
            _fit_calibrators(method, proba[rows], truth[rows], classes, columns)
            for rows in (rng.integers(0, len(truth), size=len(truth)) for _ in range(resamples))
        ]
        labels = np.asarray(classes, dtype=object)
        self.reference_metrics_ = classification_metrics(
            labels[truth], labels[self._served(proba, y_pred_reference)], proba, classes=classes,
            positive=None if pos is None else classes[pos], n_boot=0,
        )
        self.n_reference_ = len(truth)
        return self

    def _fitted(self) -> None:
        if not hasattr(self, "calibrators_"):
            raise InvalidInput("this ConfidenceBasedEstimator is not fitted yet: call fit() first")

    def predict_indices(self, proba: np.ndarray) -> np.ndarray:
        """The predicted class of each row, as an index into ``classes``."""
        pos = self.positive_index_
        if pos is not None and self.threshold is not None:
            return np.where(proba[:, pos] >= self.threshold, pos, 1 - pos)
        return proba.argmax(axis=1)

    def _served(self, proba: np.ndarray, y_pred: Any) -> np.ndarray:
        if y_pred is None:
            return self.predict_indices(proba)
        served = encode_labels(y_pred, self.classes_, name="y_pred")
        if len(served) != len(proba):
            raise InvalidInput(f"y_pred has {len(served)} labels, y_proba {len(proba)} rows")
        return served

    def calibrate(self, y_proba: Any) -> np.ndarray:
        """Calibrated probabilities, one column per class, rows summing to one."""
        self._fitted()
        return self._calibrate(self.calibrators_, check_proba(y_proba, n=len(y_proba), k=len(self.classes_)))

    def _calibrate(self, calibrators: dict[Any, Any], proba: np.ndarray) -> np.ndarray:
        pos = self.positive_index_
        if pos is not None:
            positive = calibrators[self.classes_[pos]].predict(proba[:, pos])
            out = np.empty_like(proba)
            out[:, pos], out[:, 1 - pos] = positive, 1 - positive
            return out
        out = np.column_stack([calibrators[c].predict(proba[:, i]) for i, c in enumerate(self.classes_)])
        total = out.sum(axis=1, keepdims=True)
        # a row every calibrator sends to zero keeps the model's own probabilities
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def estimate(self, y_proba: Any, *, y_pred: Any = None, confidence: float = 0.95) -> dict[str, MetricValue]:
        """Expected metrics of a window, each with the interval its realized value should fall in.

        ``y_pred``: the labels that were served, when they are known and need not be the most
        probable class (a client-side threshold, rounded probabilities); by default derived
        from ``y_proba`` as the estimator's ``threshold`` says.
        """
        self._fitted()
        confidence = check_confidence(confidence)
        proba = check_proba(y_proba, n=len(y_proba), k=len(self.classes_))
        n, k, pos = len(proba), len(self.classes_), self.positive_index_
        if n == 0:
            nan = float("nan")
            return {name: MetricValue(name, nan, nan, nan, 0) for name in ESTIMATED_CLASSIFICATION}
        calibrated = self.calibrate(proba)
        predicted = self._served(proba, y_pred)
        expected_cm = calibrated.T @ np.eye(k)[predicted]  # [true, predicted]
        point = kernels.confusion_metrics(expected_cm[None], pos)
        ranked = [(c, *kernels.tie_groups(proba[:, c])) for c in ([pos] if pos is not None else range(k))]
        point["roc_auc"] = np.array([np.mean([_soft_auc(calibrated[order, c], starts) for c, order, starts in ranked])])
        variants = [self._calibrate(c, proba) for c in self.resampled_calibrators_] or [calibrated]
        draws = self._simulate(np.stack(variants), predicted, ranked)
        out = {}
        for name in ESTIMATED_CLASSIFICATION:
            low, high = kernels.interval(draws[name], confidence)
            out[name] = MetricValue(name, float(point[name][0]), low, high, n)
        return out

    def _simulate(self, variants: np.ndarray, predicted: np.ndarray, ranked: list) -> dict[str, np.ndarray]:
        """Realized metrics of ``n_sim`` label vectors, draw ``j`` from the probabilities of
        calibrator variant ``j mod len(variants)`` (``variants``: ``(R, n, k)``)."""
        n, k, pos = variants.shape[1], len(self.classes_), self.positive_index_
        rng = np.random.default_rng(self.seed)
        cumulative = np.cumsum(variants, axis=2)[:, :, :-1]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ESTIMATED_CLASSIFICATION}
        done = 0
        for size in kernels.blocks(n * k, self.n_sim):
            which = (done + np.arange(size)) % len(variants)
            done += size
            u = rng.random((size, n))
            if pos is not None:
                truth = np.where(u < variants[which, :, pos], pos, 1 - pos)
            else:
                truth = (u[:, :, None] >= cumulative[which]).sum(axis=2)
            metrics = kernels.confusion_metrics(
                kernels.grouped_counts(truth * k + predicted, k * k).reshape(-1, k, k), pos
            )
            aucs = []
            for c, order, starts in ranked:
                is_c = (truth[:, order] == c).astype(np.float64)
                aucs.append(kernels.auc_from_masses(is_c, 1 - is_c, starts))
            metrics["roc_auc"] = np.mean(aucs, axis=0)
            for name in ESTIMATED_CLASSIFICATION:
                parts[name].append(metrics[name])
        return {name: np.concatenate(values) for name, values in parts.items()}


def _fit_calibrators(
    method: str, proba: np.ndarray, truth: np.ndarray, classes: tuple[Any, ...], columns: list[int]
) -> dict[Any, Any]:
    return {classes[c]: fit_calibrator(method, proba[:, c], (truth == c).astype(np.float64)) for c in columns}


def _soft_auc(soft: np.ndarray, starts: np.ndarray) -> float:
    """Expected Mann-Whitney AUC over distinct pairs, rows in score order, ``soft`` = P(positive)."""
    positive, negative = soft.sum(), (1 - soft).sum()
    self_pairs = float((soft * (1 - soft)).sum())
    auc = kernels.auc_from_masses(soft[None], (1 - soft)[None], starts)[0]
    pairs = positive * negative - self_pairs
    if not np.isfinite(auc) or pairs <= 0:
        return float("nan")
    return float((auc * positive * negative - 0.5 * self_pairs) / pairs)


def estimation_error(
    estimated: Mapping[str, MetricValue], realized: Mapping[str, MetricValue]
) -> dict[str, float]:
    """Per metric in both, the estimate minus the realized value (positive = the estimate was too high)."""
    return {name: estimated[name].value - realized[name].value for name in estimated if name in realized}


def departures(estimated: Mapping[str, MetricValue], realized: Mapping[str, MetricValue]) -> dict[str, bool]:
    """Per metric in both, whether the realized value fell outside the estimate's interval.

    Without concept drift each metric departs in about ``1 - confidence`` of
    windows; a departure says the model's confidence no longer matches how
    labels relate to inputs.
    """
    out = {}
    for name in estimated:
        if name in realized and np.isfinite(realized[name].value) and np.isfinite(estimated[name].ci_low):
            out[name] = not estimated[name].contains(realized[name].value)
    return out
