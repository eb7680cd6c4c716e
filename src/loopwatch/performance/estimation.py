"""Performance without labels: what a window's metrics should be, before its labels arrive.

:class:`ConfidenceBasedEstimator` (CBPE, classifiers). On the model's holdout
outputs and labels it fits one calibrator per class (for two classes, one for
the positive class on each side of the served label): isotonic, sigmoid
(Platt) or none, by default isotonic or sigmoid, whichever estimates the
holdout's own accuracy and AUC best, cross-fitted
(:mod:`~loopwatch.performance.calibration`).
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
calibration_resamples`` of the holdout. So is what the holdout shows the
calibration cannot know (two classes, :mod:`~loopwatch.performance.segments`):
where the calibrator misses the holdout on either side of the served label, and,
given the holdout's and the window's inputs, how far each segment of the
inputs is from its calibration, which matters as much as the window leans on
that segment.

Regressors: :class:`DirectLossEstimator` (DLE), in
:mod:`loopwatch.performance.loss_estimation` and re-exported here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.performance import kernels
from loopwatch.performance.calibration import CALIBRATIONS, FOLDS, TILTS, fit_calibrator, fit_sided, normal_scores
from loopwatch.performance.labels import (
    check_classes,
    check_confidence,
    check_count,
    check_proba,
    encode_labels,
    positive_index,
)
from loopwatch.performance.inputs import InputEncoder
from loopwatch.performance.loss_estimation import DirectLossEstimator, _matrix
from loopwatch.performance.realized import MetricValue, classification_metrics
from loopwatch.performance.segments import SegmentCalibration, fit_segments

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
    >>> cbpe.calibration_  # "auto" fits a calibrator even to calibrated scores, for its error bars
    'sigmoid'
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
        self, y_proba_reference: Any, y_true_reference: Any, *, y_pred_reference: Any = None,
        X_reference: Any = None,
    ) -> ConfidenceBasedEstimator:
        """Fit on the model's holdout probabilities and the holdout's true labels (and served
        labels, as in :meth:`estimate`, for ``reference_metrics_``).

        ``X_reference``, the holdout's inputs (a table or a numeric matrix), lets a two-class
        estimator measure its calibration segment by segment (:mod:`~loopwatch.performance.segments`);
        :meth:`estimate` then widens the interval of a window whose mix of inputs leans on
        segments where calibration was uncertain, when it is given the window's inputs too.
        """
        classes, pos = self._check_params()
        truth = encode_labels(y_true_reference, classes, name="y_true_reference")
        proba = check_proba(y_proba_reference, n=len(truth), k=len(classes), name="y_proba_reference")
        if len(truth) < 2:
            raise InvalidInput("the reference needs at least two labelled rows")
        columns = [pos] if pos is not None else list(range(len(classes)))
        self.classes_, self.positive_index_, self.columns_ = classes, pos, columns
        served = self._served(proba, y_pred_reference)
        folds = np.random.default_rng(self.seed).permutation(len(truth)) % FOLDS
        self.calibration_scores_: dict[str, float] = {}
        method = self.calibration
        cross_fitted: dict[str, np.ndarray] = {}
        if method == "auto":
            # judged on what is estimated: the error of the estimated accuracy and AUC on held-out
            # folds tilted toward either end of the scores, with calibrators that never saw the fold
            per_fold = {}
            for candidate in ("none", "sigmoid", "isotonic"):
                cross_fitted[candidate] = self._cross_fitted(candidate, proba, truth, served, folds)
                per_fold[candidate], self.calibration_scores_[candidate] = self._tilted_error(
                    cross_fitted[candidate], proba, truth, served, folds
                )
            method = _choose(per_fold)
        self.calibration_ = method
        self.calibrators_ = _fit_calibrators(method, proba, truth, served, classes, columns)
        # the calibrators' own sampling error: the same fit on bootstrap resamples of the reference
        rng = np.random.default_rng(self.seed)
        resamples = self.calibration_resamples if method != "none" else 0
        self.resampled_calibrators_ = [
            _fit_calibrators(method, proba[rows], truth[rows], served[rows], classes, columns)
            for rows in (rng.integers(0, len(truth), size=len(truth)) for _ in range(resamples))
        ]
        self.encoder_: InputEncoder | None = None
        self.segments_: SegmentCalibration | None = None
        self.score_segments_: SegmentCalibration | None = None
        if pos is not None:
            calibrated = cross_fitted.get(method)
            if calibrated is None:
                calibrated = self._cross_fitted(method, proba, truth, served, folds)
            outcome, served_positive = (truth == pos).astype(np.float64), (served == pos).astype(np.int64)
            if method != "none":  # "none" trusts the probabilities as they are, as it has no bootstrap
                # the calibrator's own fit on each side of the threshold: where its shape cannot follow
                # the holdout (a sigmoid on a forest's scores), every window inherits the misfit.
                # (Region by region of the scores, the misfit's pattern, drawn up or down, moved the
                # simulated AUC 2.3 times as far as the estimates ever missed.)
                self.score_segments_ = fit_segments(
                    np.zeros((len(truth), 1)), outcome, calibrated[:, pos], served_positive, proba[:, pos],
                    centred=False,
                )
            if X_reference is not None:
                self.encoder_ = InputEncoder.fit(X_reference) if isinstance(X_reference, pd.DataFrame) else None
                matrix = _matrix(X_reference, len(truth), encoder=self.encoder_, name="X_reference")
                self.segments_ = fit_segments(matrix, outcome, calibrated[:, pos], served_positive, proba[:, pos])
        labels = np.asarray(classes, dtype=object)
        self.reference_metrics_ = classification_metrics(
            labels[truth], labels[served], proba, classes=classes,
            positive=None if pos is None else classes[pos], n_boot=0,
        )
        self.n_reference_ = len(truth)
        return self

    def _cross_fitted(
        self, method: str, proba: np.ndarray, truth: np.ndarray, served: np.ndarray, folds: np.ndarray
    ) -> np.ndarray:
        """Every reference row's calibrated probabilities, from calibrators fitted without its fold."""
        if method == "none":
            return proba
        out = proba.copy()
        for fold in range(FOLDS):
            held = folds == fold
            if held.all() or not held.any():
                continue
            calibrators = _fit_calibrators(
                method, proba[~held], truth[~held], served[~held], self.classes_, self.columns_
            )
            out[held] = self._calibrate(calibrators, proba[held], served[held])
        return out

    def _tilted_error(
        self, calibrated: np.ndarray, proba: np.ndarray, truth: np.ndarray, served: np.ndarray, folds: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Per held-out fold, the mean squared error of the estimated accuracy and ROC AUC against
        their realized values, on the fold as it is and reweighted by each of ``TILTS`` toward low
        or high scores; and its root over all folds (the score ``auto`` reports).

        A tilt's squared errors count in proportion to its effective number of rows: a strong tilt
        rests on a few rows of one end of the scores, whose realized AUC is mostly label noise
        (scored evenly, the two strongest tilts decided between calibrators whose estimates on
        whole windows differed the other way, 2013 flights, a random forest)."""
        pos = self.positive_index_
        score = proba[:, pos] if pos is not None else proba.max(axis=1)
        weights = np.exp(np.outer(TILTS, normal_scores(score)))  # (tilts, n)
        right = (truth == served).astype(np.float64)
        confidence = calibrated[np.arange(len(truth)), served]
        total, weighted = np.zeros(FOLDS), np.zeros(FOLDS)
        for fold in range(FOLDS):
            held = np.flatnonzero(folds == fold)
            if len(held) < 2:
                continue
            w = weights[:, held]
            effective = w.sum(axis=1) ** 2 / (w**2).sum(axis=1)
            accuracy = (w @ confidence[held] - w @ right[held]) / w.sum(axis=1)
            aucs = []
            for c in self.columns_:
                order, starts = kernels.tie_groups(proba[held, c])
                wo, q, y = w[:, order], calibrated[held[order], c], (truth[held[order]] == c).astype(np.float64)
                estimated = _soft_auc(wo * q, wo * (1 - q), starts)
                aucs.append(estimated - kernels.auc_from_masses(wo * y, wo * (1 - y), starts))
            for errors in (accuracy, np.mean(aucs, axis=0)):
                defined = np.isfinite(errors)
                total[fold] += float(np.sum(effective[defined] * errors[defined] ** 2))
                weighted[fold] += float(np.sum(effective[defined]))
        per_fold = np.divide(total, weighted, out=np.full(FOLDS, np.nan), where=weighted > 0)
        score = math.sqrt(total.sum() / weighted.sum()) if weighted.sum() > 0 else float("inf")
        return per_fold, score

    def _fitted(self) -> None:
        if not hasattr(self, "calibrators_"):
            raise InvalidInput("this ConfidenceBasedEstimator is not fitted yet: call fit() first")

    def predict_indices(self, proba: np.ndarray) -> np.ndarray:
        """The predicted class of each row, as an index into ``classes``."""
        pos = self.positive_index_
        if pos is not None and self.threshold is not None:
            served: np.ndarray = np.where(proba[:, pos] >= self.threshold, pos, 1 - pos)
            return served
        most_probable: np.ndarray = proba.argmax(axis=1)
        return most_probable

    def _served(self, proba: np.ndarray, y_pred: Any) -> np.ndarray:
        if y_pred is None:
            return self.predict_indices(proba)
        served = encode_labels(y_pred, self.classes_, name="y_pred")
        if len(served) != len(proba):
            raise InvalidInput(f"y_pred has {len(served)} labels, y_proba {len(proba)} rows")
        return served

    def calibrate(self, y_proba: Any, *, y_pred: Any = None) -> np.ndarray:
        """Calibrated probabilities, one column per class, rows summing to one (``y_pred`` as in
        :meth:`estimate`: two classes are calibrated on each side of the served label apart)."""
        self._fitted()
        proba = check_proba(y_proba, n=len(y_proba), k=len(self.classes_))
        return self._calibrate(self.calibrators_, proba, self._served(proba, y_pred))

    def _calibrate(self, calibrators: dict[Any, Any], proba: np.ndarray, served: np.ndarray) -> np.ndarray:
        pos = self.positive_index_
        if pos is not None:
            positive = calibrators[self.classes_[pos]].predict(proba[:, pos], served == pos)
            out = np.empty_like(proba)
            out[:, pos], out[:, 1 - pos] = positive, 1 - positive
            return out
        out = np.column_stack([calibrators[c].predict(proba[:, i]) for i, c in enumerate(self.classes_)])
        total = out.sum(axis=1, keepdims=True)
        # a row every calibrator sends to zero keeps the model's own probabilities
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def estimate(
        self, y_proba: Any, *, y_pred: Any = None, X: Any = None, confidence: float = 0.95
    ) -> dict[str, MetricValue]:
        """Expected metrics of a window, each with the interval its realized value should fall in.

        ``y_pred``: the labels that were served, when they are known and need not be the most
        probable class (a client-side threshold, rounded probabilities); by default derived
        from ``y_proba`` as the estimator's ``threshold`` says. ``X``: the window's inputs, as
        the holdout's were given to :meth:`fit` (ignored when they were not).
        """
        self._fitted()
        confidence = check_confidence(confidence)
        proba = check_proba(y_proba, n=len(y_proba), k=len(self.classes_))
        n, k, pos = len(proba), len(self.classes_), self.positive_index_
        if n == 0:
            nan = float("nan")
            return {name: MetricValue(name, nan, nan, nan, 0) for name in ESTIMATED_CLASSIFICATION}
        predicted = self._served(proba, y_pred)
        calibrated = self._calibrate(self.calibrators_, proba, predicted)
        expected_cm = calibrated.T @ np.eye(k)[predicted]  # [true, predicted]
        point = kernels.confusion_metrics(expected_cm[None], pos)
        ranked = [(c, *kernels.tie_groups(proba[:, c])) for c in ([pos] if pos is not None else range(k))]
        point["roc_auc"] = np.array([
            np.mean([_soft_auc(calibrated[order, c][None], 1 - calibrated[order, c][None], starts)[0]
                     for c, order, starts in ranked])
        ])
        variants = [self._calibrate(c, proba, predicted) for c in self.resampled_calibrators_] or [calibrated]
        segments = []
        if pos is not None:
            served_positive = (predicted == pos).astype(np.int64)
            if self.score_segments_ is not None and self.score_segments_.columns:
                cells = self.score_segments_.cells(np.zeros((n, 1)), served_positive)
                segments.append((self.score_segments_, cells, self.score_segments_.groups(proba[:, pos], served_positive)))
            if self.segments_ is not None and X is not None and self.segments_.columns:
                matrix = _matrix(X, n, encoder=self.encoder_, name="X")
                if matrix.shape[1] != self.segments_.n_features:
                    raise InvalidInput(f"X has {matrix.shape[1]} columns; the estimator was fitted on "
                                       f"{self.segments_.n_features}")
                cells = self.segments_.cells(matrix, served_positive)
                segments.append((self.segments_, cells, self.segments_.groups(proba[:, pos], served_positive)))
        draws = self._simulate(np.stack(variants), predicted, ranked, segments)
        out = {}
        for name in ESTIMATED_CLASSIFICATION:
            low, high = kernels.interval(draws[name], confidence)
            out[name] = MetricValue(name, float(point[name][0]), low, high, n)
        return out

    def _simulate(
        self, variants: np.ndarray, predicted: np.ndarray, ranked: list[Any],
        segments: list[tuple[SegmentCalibration, list[np.ndarray], np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Realized metrics of ``n_sim`` label vectors, draw ``j`` from the probabilities of
        calibrator variant ``j mod len(variants)`` (``variants``: ``(R, n, k)``), moved by
        random segment offsets (each calibration by segment with the window's rows' cells and groups)."""
        n, k, pos = variants.shape[1], len(self.classes_), self.positive_index_
        rng = np.random.default_rng(self.seed)
        offsets_rng = np.random.default_rng([self.seed, 1])
        cumulative = np.cumsum(variants, axis=2)[:, :, :-1]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ESTIMATED_CLASSIFICATION}
        done = 0
        for size in kernels.blocks(n * k, self.n_sim):
            which = (done + np.arange(size)) % len(variants)
            done += size
            u = rng.random((size, n))
            if pos is not None:
                positive = variants[which, :, pos]
                if segments:
                    served_positive = (predicted == pos).astype(np.int64)
                    moved = sum(s.offsets(cells, groups, served_positive, size, offsets_rng)
                                for s, cells, groups in segments)
                    positive = np.clip(positive + moved, 0, 1)
                truth = np.where(u < positive, pos, 1 - pos)
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


def _choose(per_fold: dict[str, np.ndarray]) -> str:
    """Sigmoid, unless isotonic's held-out error is lower by more than one standard error of the
    paired fold differences (the one-standard-error rule: the simpler fit, unless the flexible one
    is better beyond the comparison's own noise).

    ``none`` is scored, for the record, and never chosen: a holdout can fail to reject the scores
    as calibrated, never prove them so, and trusted as they are they carry no calibration error
    into the interval (2013 flights: ``none`` scored best by 0.0008, and the realized AUC of
    chunks of 5,000 rows fell outside its interval 9 times in 10). On calibrated synthetic scores
    the scores of isotonic and sigmoid differ by a few percent either way, noise that a plain
    minimum followed into isotonic, whose end blocks then missed windows that moved into a tail.
    """
    gain = per_fold["sigmoid"] - per_fold["isotonic"]
    gain = gain[np.isfinite(gain)]
    if len(gain) < 2:
        return "sigmoid"
    return "isotonic" if gain.mean() > gain.std(ddof=1) / math.sqrt(len(gain)) else "sigmoid"


def _fit_calibrators(
    method: str, proba: np.ndarray, truth: np.ndarray, served: np.ndarray, classes: tuple[Any, ...],
    columns: list[int],
) -> dict[Any, Any]:
    """One calibrator per class in ``columns``, keyed by class; for two classes (one column), one
    keyed by the positive class, fitted on each side of the served label (:func:`fit_sided`)."""
    if len(columns) == 1:
        c = columns[0]
        return {classes[c]: fit_sided(method, proba[:, c], (truth == c).astype(np.float64), served == c)}
    return {classes[c]: fit_calibrator(method, proba[:, c], (truth == c).astype(np.float64)) for c in columns}


def _soft_auc(positive: np.ndarray, negative: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Expected Mann-Whitney AUC over distinct pairs, per batch member, from rows' positive and
    negative masses in score order (a row's probability of each class, times its weight): a
    row is never paired with itself."""
    total_positive, total_negative = positive.sum(axis=1), negative.sum(axis=1)
    self_pairs = (positive * negative).sum(axis=1)
    auc = kernels.auc_from_masses(positive, negative, starts)
    pairs = total_positive * total_negative - self_pairs
    out = np.full(len(positive), np.nan)
    good = np.isfinite(auc) & (pairs > 0)
    out[good] = (auc * total_positive * total_negative - 0.5 * self_pairs)[good] / pairs[good]
    return out


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
