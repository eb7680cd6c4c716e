"""A runtime adversarial-input score for tabular models.

Three signals that each see a different trace an evasion attack leaves on a
row of a table, and that need nothing but the training data and the model:

``pca_distance``
    How far the row lies from the training data: Hotelling's T² in the
    principal subspace of the standardised, one-hot encoded rows plus the
    squared residual off that subspace (each scaled to 1 on the fit rows).
    Large perturbations leave the data's correlation structure.
``instability``
    How fragile the model's answer is to tiny changes of the numeric
    features. Probes of ``perturbation`` training standard deviations (one per
    numeric feature with a fixed random sign, or fixed random sign vectors
    when there are more than ``n_perturbations`` features) estimate the
    gradient of the answer's margin (its class probability minus the best
    other one), and ``perturbation * |gradient| / margin`` is then about
    ``perturbation`` over the row's distance to the decision boundary.
    Feature squeezing (rounding to a grid of ``squeeze`` standard deviations)
    is one more probe: its relative change of the margin counts when larger.
    Minimal attacks stop just across the boundary, closer to it than almost
    every genuine row. (For a regressor: the probes' change of the prediction
    in units of the training predictions' spread.)
``surrogate_disagreement``
    How far the model's output lies from that of a shallow decision tree
    distilled from the model on the training rows. A perturbation crafted
    against the model rarely fools a surrogate of another family the same way.

Each signal is turned into an empirical tail probability against its values on
held-out reference rows (the *null* half of the calibration rows; interpolated
between them), and the
score of a row is ``-log10`` of its smallest tail probability (with a linear
extension past the largest null value, so that rows beyond every reference
row still rank). The threshold is calibrated on the other half of the
calibration rows at the false-positive rate asked for, as every detector of
:mod:`loopwatch.detectors` is: so "flagged" means "rarer than ``fpr`` of clean
rows on at least the combination of signals".

The model is passed to ``fit`` and ``score_samples`` rather than kept, so a
stored detector never duplicates the model artifact; it must be the model the
detector was fitted with. Rows are data frames of the model's feature columns
(numeric as floats with NaN for missing, categoricals as strings).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.tree import DecisionTreeRegressor

from loopwatch.detectors.base import FloatArray, _check_rate
from loopwatch.errors import InvalidInput, echo, listed
from loopwatch.stats.rates import RateResult, rate_test

#: The signals, in the order of :meth:`AdversarialDetector.signal_scores`.
SIGNALS = ("pca_distance", "instability", "surrogate_disagreement")
#: Fewest calibration rows: half set the signals' nulls, half the threshold.
MIN_CALIBRATION_ROWS = 20
#: Added to a classifier's margin before dividing by it, so a tie gives a large, finite instability.
MARGIN_FLOOR = 1e-3


class AdversarialDetector(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no stubs
    """Score rows for signs of an evasion attack on ``model``; higher = more suspicious.

    Parameters
    ----------
    numeric, categorical:
        The model's numeric and categorical feature columns.
    perturbation:
        Size of the instability probes, in training standard deviations per numeric feature.
    n_perturbations:
        Most gradient probes per row: with more numeric features than this, as
        many random sign vectors (fixed at fit time, from ``random_state``).
    squeeze:
        Grid step of the squeezing probe, in training standard deviations.
    variance:
        Share of variance the principal subspace keeps.
    surrogate_depth:
        Depth of the distilled decision tree.
    expected_rate:
        False-positive rate the threshold is calibrated at in ``fit``.
    random_state:
        Seed of the probes and of the calibration split.

    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame(rng.normal(size=(1200, 2)), columns=["a", "b"])
    >>> model = LogisticRegression().fit(x, x["a"] + x["b"] > 0)
    >>> det = AdversarialDetector(numeric=["a", "b"], expected_rate=0.05, random_state=0)
    >>> det = det.fit(x[:800], x[800:], model=model)
    >>> det.predict(pd.DataFrame({"a": [1.5, 0.0], "b": [1.0, 0.0]}), model=model).tolist()
    [False, True]
    """

    name: ClassVar[str] = "adversarial"
    seed_parameter: ClassVar[str] = "random_state"

    def __init__(
        self,
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        perturbation: float = 0.05,
        n_perturbations: int = 8,
        squeeze: float = 0.1,
        variance: float = 0.9,
        surrogate_depth: int = 6,
        expected_rate: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.perturbation = perturbation
        self.n_perturbations = n_perturbations
        self.squeeze = squeeze
        self.variance = variance
        self.surrogate_depth = surrogate_depth
        self.expected_rate = expected_rate
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------

    def fit(self, x_fit: pd.DataFrame, x_calibration: pd.DataFrame, *, model: Any) -> Self:
        """Fit the encoder, subspace and surrogate on ``x_fit``; calibrate on ``x_calibration``.

        ``x_calibration`` must be rows neither the model nor the detector was
        fitted on (the model's holdout): a model is more confident, so more
        stable, on its own training rows.
        """
        _check_rate(self.expected_rate, "expected_rate")
        self._check_parameters()
        fit_rows = self._frame(x_fit, "x_fit", min_rows=10)
        calibration = self._frame(x_calibration, "x_calibration", min_rows=MIN_CALIBRATION_ROWS)
        rng = np.random.default_rng(self.random_state)
        self._fit_encoder(fit_rows)
        encoded = self._encode(fit_rows)
        self.pca_mean_, self.pca_components_ = _principal_subspace(encoded, self.variance)
        projected = (encoded - self.pca_mean_) @ self.pca_components_.T
        self.pca_variances_ = np.maximum(projected.var(axis=0), 1e-12)
        self.residual_scale_ = max(float(np.mean(self._residual_squares(encoded))), 1e-12)
        self.directions_ = _probe_directions(len(self.numeric_), self.n_perturbations, rng)
        outputs = _outputs(model, fit_rows)
        self.probabilistic_ = bool(hasattr(model, "predict_proba"))
        self.output_scale_ = 1.0 if self.probabilistic_ else max(float(outputs.std()), 1e-12)
        self.surrogate_ = DecisionTreeRegressor(
            max_depth=self.surrogate_depth, min_samples_leaf=20, random_state=self.random_state
        ).fit(encoded, outputs)
        order = rng.permutation(len(calibration))
        half = len(calibration) // 2
        signals = self.signal_scores(calibration.iloc[order[:half]], model=model, _nulls_ready=False)
        self.null_ = {name: np.sort(values) for name, values in signals.items()}
        return self.infer_threshold(calibration.iloc[order[half:]], self.expected_rate, model=model)

    def _check_parameters(self) -> None:
        for value, what in ((self.perturbation, "perturbation"), (self.squeeze, "squeeze")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise InvalidInput(f"{what} must be a share of a standard deviation in (0, 1], got {echo(value)}")
        if isinstance(self.n_perturbations, bool) or not isinstance(self.n_perturbations, int) or not (
            1 <= self.n_perturbations <= 64
        ):
            raise InvalidInput(f"n_perturbations must be an integer in [1, 64], got {echo(self.n_perturbations)}")
        if isinstance(self.variance, bool) or not isinstance(self.variance, (int, float)) or not 0 < self.variance <= 1:
            raise InvalidInput(f"variance must be a share in (0, 1], got {echo(self.variance)}")
        if not self.numeric and not self.categorical:
            raise InvalidInput("the detector needs at least one numeric or categorical feature")

    def _fit_encoder(self, frame: pd.DataFrame) -> None:
        self.numeric_ = [str(c) for c in self.numeric]
        self.categorical_ = [str(c) for c in self.categorical]
        medians, means, scales = [], [], []
        for name in self.numeric_:
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            values = values[~np.isnan(values)]
            medians.append(float(np.median(values)) if values.size else 0.0)
            means.append(float(values.mean()) if values.size else 0.0)
            std = float(values.std()) if values.size else 0.0
            scales.append(std if std > 0 else 1.0)
        self.medians_ = np.asarray(medians, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.scales_ = np.asarray(scales, dtype=np.float64)
        self.categories_ = [sorted(frame[name].dropna().astype(str).unique().tolist()) for name in self.categorical_]

    # -- scoring -------------------------------------------------------------------------

    def signal_scores(self, x: pd.DataFrame, *, model: Any, _nulls_ready: bool = True) -> dict[str, FloatArray]:
        """Each signal's raw value per row (higher = more suspicious), in :data:`SIGNALS` order."""
        probes = self._variants(self._frame(x, "x"), None)
        return self._signals(x, _outputs(model, probes), nulls_ready=_nulls_ready)

    def score_samples(self, x: pd.DataFrame, *, model: Any) -> FloatArray:
        """Adversarial score per row: ``-log10`` of the smallest signal tail probability."""
        return self.scores_from_outputs(x, _outputs(model, self.probe_frame(x)))

    def probe_frame(self, x: pd.DataFrame, *, head: pd.DataFrame | None = None) -> pd.DataFrame:
        """The rows ``x`` (first), then each probe of them, stacked: one model call serves all.

        With :meth:`scores_from_outputs`, a caller that calls the model anyway can score
        the probes in the same call (:mod:`loopwatch.detectors.adversarial_runtime` does);
        ``head`` puts other rows of the same columns before them (the model's own rows,
        when defences changed them), whose outputs the caller takes off again.
        """
        self._check_fitted(nulls_ready=False)
        rows = self._frame(x, "x")
        if head is not None and list(head.columns) != list(rows.columns):
            raise InvalidInput("head must have the columns of x, in the same order")
        return self._variants(rows, head)

    def scores_from_outputs(self, x: pd.DataFrame, outputs: Any) -> FloatArray:
        """The scores of ``x`` from the model's outputs on :meth:`probe_frame` of ``x``
        (class probabilities for a classifier, predictions for a regressor)."""
        signals = self._signals(x, np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1))
        scores: FloatArray = np.max([self._tail_score(name, signals[name]) for name in SIGNALS], axis=0)
        return scores

    def _check_fitted(self, *, nulls_ready: bool = True) -> None:
        if not hasattr(self, "surrogate_") or (nulls_ready and not hasattr(self, "null_")):
            raise InvalidInput(f"{type(self).__name__} is not fitted: call fit first")

    def _signals(self, x: pd.DataFrame, variants: FloatArray, *, nulls_ready: bool = True) -> dict[str, FloatArray]:
        self._check_fitted(nulls_ready=nulls_ready)
        rows = self._frame(x, "x")
        n = len(rows)
        copies = len(self.directions_) + 2
        if variants.shape[0] != n * copies:
            raise InvalidInput("the model returned a different number of outputs than rows")
        blocks = variants.reshape(copies, n, -1)
        original = blocks[0]
        with np.errstate(over="ignore", invalid="ignore"):  # extreme rows score infinite, not warn
            encoded = self._encode(rows)
            centred = encoded - self.pca_mean_
            t2 = np.sum((centred @ self.pca_components_.T) ** 2 / self.pca_variances_, axis=1)
            q = self._residual_squares(encoded) / self.residual_scale_
        # the fitted tree itself: the estimator's input checks cost more than the lookup
        # the tree reads float32: values beyond its range go to its largest finite value, where
        # the tree sends them anyway, instead of overflowing to infinity
        limit = np.finfo(np.float32).max
        surrogate = self.surrogate_.tree_.predict(
            np.ascontiguousarray(np.clip(encoded, -limit, limit), dtype=np.float32)
        )
        surrogate = surrogate.reshape(n, -1)
        return {
            "pca_distance": t2 / len(self.pca_variances_) + q,
            "instability": self._instability(blocks),
            "surrogate_disagreement": self._distance(surrogate, original),
        }

    def predict(self, x: pd.DataFrame, *, model: Any, fpr: float | None = None) -> np.ndarray:
        """True for rows above the threshold (at ``fpr`` when given, else the calibrated one)."""
        return self.score_samples(x, model=model) > self.threshold_for(fpr)

    # -- calibration ---------------------------------------------------------------------

    def infer_threshold(self, x: pd.DataFrame, fpr: float, *, model: Any) -> Self:
        """Set ``threshold_`` so that a share ``fpr`` of the clean rows ``x`` is flagged.

        The same rule as :meth:`loopwatch.detectors.base.OutlierDetector.infer_threshold`;
        the sorted scores are kept, so :meth:`threshold_for` serves any other rate.
        """
        _check_rate(fpr, "fpr")
        scores = self.score_samples(x, model=model)
        self.calibration_scores_ = np.sort(scores)
        self.threshold_, self.calibration_k_ = self._threshold(fpr)
        self.calibration_n_ = int(scores.size)
        self.calibration_fpr_ = float(fpr)
        return self

    def threshold_for(self, fpr: float | None = None) -> float:
        """The threshold flagging a share ``fpr`` of the calibration rows (``None``: ``threshold_``)."""
        if not hasattr(self, "calibration_scores_"):
            raise InvalidInput(f"{type(self).__name__} is not calibrated: call fit first")
        if fpr is None:
            return float(self.threshold_)
        _check_rate(fpr, "fpr")
        return self._threshold(fpr)[0]

    def window_test(self, scores: Sequence[float], *, fpr: float | None = None, alpha: float = 0.05) -> RateResult:
        """Is a window's share of flagged rows above the calibration rows' at ``fpr``?"""
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
            raise InvalidInput("scores must be a non-empty list of finite numbers")
        threshold = self.threshold_for(fpr)
        k_reference, n_reference = self.calibration_counts(fpr)
        return rate_test(
            int(np.count_nonzero(values > threshold)), int(values.size), k_reference, n_reference, alpha=alpha,
        )

    @property
    def stated_rate(self) -> float:
        """The false-positive rate ``fit`` calibrates ``threshold_`` at: ``expected_rate``."""
        return float(self.expected_rate)

    def calibration_counts(self, fpr: float | None = None) -> tuple[int, int]:
        """How many calibration rows lie above the threshold for ``fpr``, and how many there are:
        the reference share that a window's flagged share is tested against."""
        threshold = self.threshold_for(fpr)
        return int(np.count_nonzero(self.calibration_scores_ > threshold)), int(self.calibration_scores_.size)

    def _threshold(self, fpr: float) -> tuple[float, int]:
        scores = self.calibration_scores_
        n = scores.size
        k = min(math.floor(fpr * n + 1e-9), n - 1)  # the tolerance keeps 0.01 * 1000 at 10, not 9
        threshold = float(scores[n - 1 - k])
        return threshold, int(np.count_nonzero(scores > threshold))

    # -- pieces --------------------------------------------------------------------------

    def _tail_score(self, name: str, values: FloatArray) -> FloatArray:
        null = self.null_[name]
        n = null.size
        # the rank among the null values, interpolated between them, so that scores do not
        # tie in steps of one null row (which would make thresholds jump between rates)
        rank = np.interp(values, null, np.arange(n, dtype=np.float64))
        score = -np.log10((n - rank) / (n + 1.0))
        # past the largest null value every row ties on the tail: rank them by how far past
        spread = max(float(null[-1] - null[n // 2]), 1e-12)
        tail: FloatArray = score + np.maximum(values - null[-1], 0.0) / spread
        return tail

    def _instability(self, blocks: np.ndarray) -> FloatArray:
        """``perturbation`` over the estimated distance to the boundary (see the module doc)."""
        if self.probabilistic_:
            answer = blocks[0].argmax(axis=1)
            margins = np.stack([_margin(block, answer) for block in blocks])
            # a change of 0.05 means little at p = 0.9 and everything at p = 0.51
            base = np.abs(margins[0]) + MARGIN_FLOOR
        else:
            margins = blocks[..., 0] / self.output_scale_
            base = np.ones(margins.shape[1])
        changes = margins[1:-1] - margins[0]
        n_probes, n_features = self.directions_.shape
        # E[(u . g)^2] = |g|^2 / n_features for a random unit sign vector u (exact for the coordinates)
        gradient = np.sqrt(n_features / max(n_probes, 1) * np.sum(changes**2, axis=0))
        squeezed = np.abs(margins[-1] - margins[0])
        return np.asarray(np.maximum(gradient, squeezed) / base, dtype=np.float64)

    def _distance(self, a: FloatArray, b: FloatArray) -> FloatArray:
        distance: FloatArray
        if self.probabilistic_:
            distance = 0.5 * np.abs(a - b).sum(axis=1)  # total variation between class distributions
        else:
            distance = np.abs(a - b).max(axis=1) / self.output_scale_
        return distance

    def _variants(self, rows: pd.DataFrame, head: pd.DataFrame | None) -> pd.DataFrame:
        """``head`` (if any), the rows, then each probe of them, stacked."""
        copies = len(self.directions_) + 2
        values = rows[self.numeric_].to_numpy(dtype=np.float64, na_value=np.nan)
        steps = self.squeeze * self.scales_
        blocks = [values[None]]
        # an extreme value overflows to infinity here: the model then refuses it (a ValueError)
        with np.errstate(over="ignore", invalid="ignore"):
            blocks.append(values[None] + self.perturbation * self.scales_ * self.directions_[:, None, :])
            blocks.append(np.round(values / steps)[None] * steps)
        stacked = np.concatenate(blocks).reshape(copies * len(rows), len(self.numeric_))
        columns: dict[str, Any] = {}
        for j, name in enumerate(self.numeric_):
            own = stacked[:, j]
            columns[name] = own if head is None else np.concatenate([_floats(head[name]), own])
        for name in rows.columns:
            if name not in columns:
                own = np.tile(rows[name].to_numpy(dtype=object), copies)
                columns[name] = own if head is None else np.concatenate([head[name].to_numpy(dtype=object), own])
        return pd.DataFrame(columns, columns=list(rows.columns))

    def _encode(self, frame: pd.DataFrame) -> FloatArray:
        n_columns = len(self.numeric_) + sum(len(c) for c in self.categories_)
        out = np.zeros((len(frame), n_columns), dtype=np.float64)
        for j, name in enumerate(self.numeric_):
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            out[:, j] = (np.where(np.isnan(values), self.medians_[j], values) - self.means_[j]) / self.scales_[j]
        col = len(self.numeric_)
        for name, categories in zip(self.categorical_, self.categories_):
            labels = np.array([str(v) if v is not None and v == v else "" for v in frame[name]], dtype=object)
            for category in categories:
                out[:, col] = labels == category
                col += 1
        return out

    def _residual_squares(self, encoded: FloatArray) -> FloatArray:
        centred = encoded - self.pca_mean_
        residual = centred - (centred @ self.pca_components_.T) @ self.pca_components_
        return np.asarray(np.sum(residual**2, axis=1), dtype=np.float64)

    def _frame(self, x: Any, what: str, *, min_rows: int = 1) -> pd.DataFrame:
        if not isinstance(x, pd.DataFrame):
            raise InvalidInput(f"{what} must be a data frame of the model's features")
        needed = [str(c) for c in (*self.numeric, *self.categorical)]
        missing = [c for c in needed if c not in x.columns]
        if missing:
            raise InvalidInput(f"{what} lacks the feature columns {listed(missing)}")
        if len(x) < min_rows:
            raise InvalidInput(f"{what} needs at least {min_rows} rows, got {len(x)}")
        for name in self.numeric:
            try:
                values = x[name].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"{what} column {echo(name)} is not numeric") from exc
            if np.isinf(values).any():
                raise InvalidInput(f"{what} column {echo(name)} holds infinite values")
        return x


def _principal_subspace(x: FloatArray, variance: float) -> tuple[FloatArray, FloatArray]:
    """Mean and the fewest principal axes (as rows) explaining ``variance`` of the total.

    From the eigenvectors of the small covariance matrix rather than an SVD of every row:
    the same subspace, in a fraction of the time when rows far outnumber columns.
    """
    mean = x.mean(axis=0)
    centred = x - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    total = values.sum()
    if total <= 0:
        raise InvalidInput("the fit rows have no variance: every row is the same")
    k = int(np.searchsorted(np.cumsum(values) / total, variance - 1e-12)) + 1
    return mean, np.ascontiguousarray(vectors[:, : min(k, len(values))].T)


def _floats(column: pd.Series) -> FloatArray:
    return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _probe_directions(n_features: int, most: int, rng: np.random.Generator) -> FloatArray:
    """Unit probe directions: each feature alone with a random sign, or random sign vectors."""
    if n_features == 0:
        return np.zeros((0, 0))
    if n_features <= most:
        return np.diag(rng.choice([-1.0, 1.0], size=n_features))
    return rng.choice([-1.0, 1.0], size=(most, n_features)) / math.sqrt(n_features)


def _margin(probabilities: FloatArray, answer: np.ndarray) -> FloatArray:
    """The probability of ``answer`` minus the largest other class probability, per row."""
    rows = np.arange(len(answer))
    own: FloatArray = probabilities[rows, answer]
    if probabilities.shape[1] == 1:
        return own
    others = probabilities.copy()
    others[rows, answer] = -np.inf
    return np.asarray(own - others.max(axis=1), dtype=np.float64)


def _outputs(model: Any, frame: pd.DataFrame) -> FloatArray:
    """Class probabilities of a classifier, else the predictions as one column."""
    with np.errstate(over="ignore"):
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(frame), dtype=np.float64)
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(len(frame), -1)
