"""Direct loss estimation (DLE): a regressor's MAE and RMSE on a window, before its labels arrive.

On the model's holdout, gradient-boosted trees learn the loss a row can be
expected to have from the row's inputs and the model's prediction: the
absolute error ``a(x) = E[|e| | x]`` and the squared error
``s(x) = E[e^2 | x]`` (``e`` = prediction - truth). They are cross-fitted:
each is the average of two models fitted on complementary halves of the
holdout (the cost of one model on all of it), so every holdout row also has
loss predictions from a model that never saw it. On a window, the estimated
MAE is the mean of ``a`` and the estimated RMSE the expected square root of
the window's mean squared error, whose mean is the mean of ``s``. Like CBPE
it follows covariate shift, here into regions where the model errs more
(heteroscedastic noise, sparse training data), and cannot see concept drift.

The squared error is the heavy-tailed one (one flight 1,000 minutes late
weighs as much as ten thousand on time), and three things keep its estimate
unbiased on average:

* its trees fit the Poisson deviance (a log link), so every prediction is
  positive and none is clipped at zero, at half the usual step;
* their mean is recalibrated on held-out rows: ``sum(e^2) / sum(s_oof)``
  over the holdout, each row's ``s_oof`` from the half that did not see it,
  scales both halves' models (a ratio, which can move the estimate down as
  well as up);
* the square root is concave, so ``sqrt(mean s)`` runs above the mean of the
  realized RMSE on small windows; the estimate is ``E[sqrt(M)]`` with the
  window's MSE ``M`` taken as gamma distributed with its mean and variance.

There is no floor tying ``s`` to ``a^2``: it held every row's squared error
at least at the square of its absolute error, noise in either model only
ever pushed it up, and on arrival delays (errors with a kurtosis of about
30) it bound on a quarter of the rows and put the RMSE about 10% high.

The interval is where the realized value should fall; it is normal around
the estimate. Given the inputs, rows err independently, so the realized MAE
has variance ``sum(Var(|e| | x)) / n^2`` and the realized mean squared error
``sum(Var(e^2 | x)) / n^2``; the RMSE's is the square root of the gamma
quantiles of the MSE (right-skewed, as heavy tails make it). The
conditional variances are proportional to the models' predictions, as for
any location-scale family of errors:

* ``Var(|e| | x) = (shape - 1) a(x)^2``, ``shape = E[e^2] / E[a(x)^2]``
  (pi/2 for normal errors);
* ``Var(e^2 | x) = (kurtosis - 1) s(x)^2``, ``kurtosis = E[e^4] / E[s(x)^2]``
  (3 for normal errors).

Both ratios are measured on the holdout, their denominators as
``E[a_oof(x) |e|]`` and ``E[s_oof(x) e^2]`` with out-of-fold predictions,
which are independent of the row's own error. (In-sample predictions follow
the noise, and squared out-of-fold ones add the models' noise: both made
normal errors look lighter-tailed, a kurtosis of 2 instead of 3, and the
RMSE interval too narrow.)

The estimate has an error of its own, from the holdout the loss models
learned on and from their fit. Two measures of its variance are taken, and
the larger is added:

* to first order, the holdout's sampling error: the same per-row variance
  divided by ``n_reference``;
* the two halves' models are independent estimates, so the variance of their
  average is ``E[(half_1 - half_2)^2] / 4``, measured on the window itself. It
  grows where the window leaves the holdout's support, where the first
  measure is too small (with it, a 1-sd covariate shift kept 98% of windows
  inside the MAE interval, against 93% without).

Trees are constant beyond the holdout's range, so a window far outside it
gets the loss of the holdout's edge, and the halves agree on it: the interval
does not cover extrapolation. (In the tests' world, a shift that puts 7% of a
window's rows where the holdout has 0.6% of its own leaves the RMSE estimate
4% short; the floor above used to hide that by pushing every row up.)
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput
from loopwatch.performance.inputs import InputEncoder
from loopwatch.performance.labels import check_confidence, check_count, check_values
from loopwatch.performance.realized import MetricValue, regression_metrics

#: Metrics a DLE estimates.
ESTIMATED_REGRESSION = ("mae", "rmse")
#: Fewest holdout rows a DLE is fitted on.
MIN_REFERENCE_ROWS = 20
#: The squared-error model's settings (beside the rounds, seed and threads both models share).
SQUARED_MODEL = {"loss": "poisson", "learning_rate": 0.05}


def _matrix(X: Any, n: int, *, encoder: InputEncoder | None, name: str) -> np.ndarray:
    """The encoded inputs as a float matrix of ``n`` rows (NaN allowed)."""
    if X is None:
        return np.empty((n, 0))
    if encoder is not None:
        if not isinstance(X, pd.DataFrame):
            raise InvalidInput(f"{name} must be a table: the estimator was fitted on one")
        matrix = encoder.transform(X)
    else:
        try:
            matrix = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{name} must be numeric, or a table") from exc
        if matrix.ndim == 1:
            matrix = matrix[:, None]
        if matrix.ndim != 2:
            raise InvalidInput(f"{name} must be a matrix, got shape {matrix.shape}")
        if np.isinf(matrix).any():
            raise InvalidInput(f"{name} holds infinite values")
    if len(matrix) != n:
        raise InvalidInput(f"{name} has {len(matrix)} rows, the predictions {n}")
    return matrix


def _variance(
    ratio: float, mean_square: float, apart: float, n: int, n_reference: int, *, rows_only: bool = False
) -> float:
    """Variance of the realized mean loss around its estimate: the window's rows erring, plus the
    estimate's own error, the larger of two measures of it (``rows_only``: the first alone).
    ``mean_square``: the mean square of the rows' expected losses."""
    per_row = (ratio - 1) * mean_square
    if rows_only:
        return per_row / n
    # first order: the holdout's sampling error, as if the window were drawn like the holdout
    holdout = per_row / n_reference
    # the two halves' models are independent estimates; the variance of their average is
    # E[(half_1 - half_2)^2] / 4, and it grows where the window leaves the holdout's support
    models = apart**2 / 4
    return per_row / n + max(holdout, models)


class DirectLossEstimator:
    """Estimate a regressor's MAE and RMSE from its inputs and predictions.

    ``X`` is the model's inputs: a table (numeric and categorical columns, as
    the model takes them; encoded by :class:`~loopwatch.performance.inputs.InputEncoder`),
    a numeric matrix (missing values as NaN, which the trees handle), or
    ``None`` to learn from the prediction alone. ``estimate`` takes the same kind.
    ``max_iter`` is each loss model's number of boosting rounds (NannyML's
    LightGBM uses 100: on its car price data and on the tests' worlds, 100 and
    200 estimate equally well within the models' own noise, and 100 takes half
    the time). ``seed`` fixes the models' randomness and the halves of the
    cross-fitting. ``n_threads`` caps their OpenMP threads (``None``: the
    library's default, every core).
    """

    def __init__(self, *, seed: int = 0, max_iter: int = 200, n_threads: int | None = 1) -> None:
        self.seed = seed
        self.max_iter = max_iter
        self.n_threads = n_threads

    def _threads(self) -> Any:
        """A context that caps the trees' OpenMP threads: on a shared, loaded machine, OpenMP threads
        that wait for a core spin, and fitting on 2 busy cores was measured 27 times slower than on one."""
        from threadpoolctl import threadpool_limits

        if self.n_threads is not None:
            check_count(self.n_threads, name="n_threads", minimum=1)
        return threadpool_limits(limits=self.n_threads, user_api="openmp")

    def _loss_model(self, categorical: np.ndarray, *, squared: bool = False) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        if squared:
            # the squared error through a log link (Poisson deviance): its predictions are positive, so
            # nothing needs clipping at zero (on heavy-tailed errors, squared-loss trees predicted a
            # negative squared error for many rows, and clipping those pushed the RMSE up). A half
            # step, since trees chasing single huge errors under-predict every other row out of
            # sample (arrival delays: by 16% at the full step, before the held-out recalibration
            # below; leaves of 100 rows did as well on them, and covered less where a window
            # leaves the holdout's support)
            extra: dict[str, Any] = dict(SQUARED_MODEL)
        else:
            extra = {}
        return HistGradientBoostingRegressor(
            max_iter=check_count(self.max_iter, name="max_iter", minimum=1),
            categorical_features=categorical if categorical.any() else None,
            # no early stopping: on targets as noisy as losses the validation loss stops boosting after
            # about 20 rounds, leaving the models shrunk toward the overall mean loss, so a window of
            # rows that err more (or less) gets an estimate only part of the way there (measured: 0.95x
            # and 1.15x the realized MAE of two categories, against 0.98x and 1.02x with all rounds)
            early_stopping=False,
            random_state=self.seed,
            **extra,
        )

    def fit(self, X_reference: Any, y_pred_reference: Any, y_true_reference: Any) -> DirectLossEstimator:
        """Fit the loss models on the model's holdout inputs, predictions and true values."""
        predicted = check_values(y_pred_reference, name="y_pred_reference")
        truth = check_values(y_true_reference, name="y_true_reference", n=len(predicted))
        if len(truth) < MIN_REFERENCE_ROWS:
            raise InvalidInput(f"direct loss estimation needs at least {MIN_REFERENCE_ROWS} holdout rows")
        self.encoder_ = InputEncoder.fit(X_reference) if isinstance(X_reference, pd.DataFrame) else None
        matrix = _matrix(X_reference, len(truth), encoder=self.encoder_, name="X_reference")
        design = np.column_stack([matrix, predicted])
        categorical = np.r_[
            self.encoder_.categorical_mask if self.encoder_ is not None else np.zeros(matrix.shape[1], bool), False
        ]
        error = predicted - truth
        half = np.random.default_rng(self.seed).permutation(len(truth)) % 2 == 0
        # made before the thread cap: the cap reaches only OpenMP runtimes already loaded
        models = [(self._loss_model(categorical), self._loss_model(categorical, squared=True)) for _ in range(2)]
        abs_out_of_fold, squared_out_of_fold = np.empty(len(truth)), np.empty(len(truth))
        with self._threads():
            for (abs_model, squared_model), rows in zip(models, (half, ~half)):
                abs_model.fit(design[rows], np.abs(error[rows]))
                squared_model.fit(design[rows], error[rows] ** 2)
            self.loss_models_ = models
            for (abs_model, squared_model), rows in zip(models, (~half, half)):
                abs_out_of_fold[rows] = np.clip(abs_model.predict(design[rows]), 0.0, None)
                squared_out_of_fold[rows] = squared_model.predict(design[rows])
        self.n_features_in_ = matrix.shape[1]
        # held-out recalibration of the squared-error model's mean: each row's out-of-fold prediction
        # comes from the half that never saw it, so sum(e^2) / sum(s_oof) is what the models' scale
        # misses on new rows (a ratio, so it cannot push one way only, as a floor did)
        predicted_total = float(np.sum(squared_out_of_fold))
        self.squared_scale_ = float(np.sum(error**2)) / predicted_total if predicted_total > 0 else 1.0
        squared_out_of_fold *= self.squared_scale_
        # E[e^2 | x] = shape * a(x)^2 (pi / 2 for normal errors), so Var(|e| | x) = (shape - 1) a(x)^2.
        # E[a(x)^2] is measured as E[a_oof(x) |e|], unbiased for the reason given below.
        first = float(np.mean(abs_out_of_fold * np.abs(error)))
        self.shape_ = max(1.0, float(np.mean(error**2)) / first) if first > 0 else math.pi / 2
        # E[e^4 | x] = kurtosis * s(x)^2 (3 for normal errors). E[s(x)^2] is measured as E[s_oof(x) e^2]:
        # an out-of-fold prediction is independent of the row's own error, so the product is unbiased,
        # where the mean of s_oof^2 would add the models' noise and an in-sample fit would follow the
        # noise in e^2; both made normal errors look lighter-tailed (ratio 2.0 instead of 3).
        # Never below 1, where Var(e^2) would be negative.
        second = float(np.mean(squared_out_of_fold * error**2))
        self.kurtosis_ = max(1.0, float(np.mean(error**4)) / second) if second > 0 else 3.0
        self.reference_metrics_ = regression_metrics(truth, predicted, n_boot=0)
        self.n_reference_ = len(truth)
        return self

    def _losses(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Expected absolute and squared error per row (the mean of the two halves' models), and
        how far apart the two halves' window means of each are."""
        absolute = [np.clip(a.predict(design), 0.0, None) for a, _ in self.loss_models_]
        squared = [self.squared_scale_ * s.predict(design) for _, s in self.loss_models_]
        apart_abs = float(absolute[0].mean() - absolute[1].mean())
        apart_sq = float(squared[0].mean() - squared[1].mean())
        return (absolute[0] + absolute[1]) / 2, (squared[0] + squared[1]) / 2, apart_abs, apart_sq

    def _design(self, X: Any, y_pred: Any) -> np.ndarray | None:
        """The loss models' inputs for a window (``None`` for an empty one)."""
        if not hasattr(self, "loss_models_"):
            raise InvalidInput("this DirectLossEstimator is not fitted yet: call fit() first")
        predicted = check_values(y_pred, name="y_pred")
        n = len(predicted)
        if n == 0:
            return None
        matrix = _matrix(X, n, encoder=self.encoder_, name="X")
        if matrix.shape[1] != self.n_features_in_:
            raise InvalidInput(f"X has {matrix.shape[1]} columns; the estimator was fitted on {self.n_features_in_}")
        return np.column_stack([matrix, predicted])

    def row_losses(self, X: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each row's expected absolute error by the first and second half's model, and its
        expected squared error by each: what a window summary adds up, so that
        :meth:`estimate_from_moments` on the sums of many windows gives their estimate."""
        design = self._design(X, y_pred)
        if design is None:
            empty = np.empty(0)
            return empty, empty, empty, empty
        with self._threads():
            absolute = [np.clip(a.predict(design), 0.0, None) for a, _ in self.loss_models_]
            squared = [self.squared_scale_ * s.predict(design) for _, s in self.loss_models_]
        return absolute[0], absolute[1], squared[0], squared[1]

    def estimate(self, X: Any, y_pred: Any, *, confidence: float = 0.95) -> dict[str, MetricValue]:
        """Expected MAE and RMSE of a window, each with the interval its realized value should fall in."""
        design = self._design(X, y_pred)
        confidence = check_confidence(confidence)
        if design is None:
            nan = float("nan")
            return {name: MetricValue(name, nan, nan, nan, 0) for name in ESTIMATED_REGRESSION}
        with self._threads():
            absolute, squared, apart_abs, apart_sq = self._losses(design)
        return self.estimate_from_moments(
            n=len(design), mean_abs=float(absolute.mean()), mean_abs_sq=float(np.mean(absolute**2)),
            mean_sq=float(squared.mean()), mean_sq_sq=float(np.mean(squared**2)),
            apart_abs=apart_abs, apart_sq=apart_sq, confidence=confidence,
        )

    def estimate_from_moments(
        self, *, n: int, mean_abs: float, mean_abs_sq: float, mean_sq: float, mean_sq_sq: float,
        apart_abs: float, apart_sq: float, confidence: float = 0.95,
    ) -> dict[str, MetricValue]:
        """:meth:`estimate` from a window's moments of the rows' expected losses: the mean
        expected absolute error and its mean square, the same of the squared error, and how
        far apart the two halves' models' window means are (first minus second)."""
        confidence = check_confidence(confidence)
        if n == 0:
            nan = float("nan")
            return {name: MetricValue(name, nan, nan, nan, 0) for name in ESTIMATED_REGRESSION}
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        mae = mean_abs
        mae_sd = math.sqrt(_variance(self.shape_, mean_abs_sq, apart_abs, n, self.n_reference_))
        mse = mean_sq
        # the realized MSE given the inputs: mean mse, variance from the rows' own errors; around the
        # estimate, the estimate's own error too
        rows_variance = _variance(self.kurtosis_, mean_sq_sq, 0.0, n, self.n_reference_, rows_only=True)
        mse_variance = _variance(self.kurtosis_, mean_sq_sq, apart_sq, n, self.n_reference_)
        rmse, rmse_low, rmse_high = _root_of_mean(mse, rows_variance, mse_variance, confidence)
        return {
            "mae": MetricValue("mae", mae, max(0.0, mae - z * mae_sd), mae + z * mae_sd, n),
            "rmse": MetricValue("rmse", rmse, rmse_low, rmse_high, n),
        }


def _gamma_shape(mean: float, variance: float) -> float:
    return mean**2 / variance if variance > 0 else math.inf


def _root_of_mean(mse: float, rows_variance: float, variance: float, confidence: float) -> tuple[float, float, float]:
    """The expected realized RMSE and its interval, the realized MSE taken as gamma distributed.

    The realized RMSE is the square root of the window's mean squared error, and a square root
    is concave: even with the MSE estimated without bias, ``sqrt(mse)`` runs above the mean of
    the realized RMSE by about ``Var(MSE) / (8 mse^1.5)``, which heavy tails make matter on small
    windows (arrival delays, kurtosis about 30: 0.7% on 500 rows). A gamma law with the MSE's
    mean and variance (a sum of positive, right-skewed terms) gives it in closed form,
    ``E[sqrt(M)] = sqrt(scale) * Gamma(shape + 1/2) / Gamma(shape)``, positive for every window
    size where the expansion is not, and its quantiles give a right-skewed interval.
    """
    if mse <= 0:
        return 0.0, 0.0, 0.0
    shape = _gamma_shape(mse, rows_variance)
    expected = math.sqrt(mse)
    if math.isfinite(shape):
        expected = math.sqrt(mse / shape) * math.exp(math.lgamma(shape + 0.5) - math.lgamma(shape))
    shape = _gamma_shape(mse, variance)
    if not math.isfinite(shape):
        return expected, expected, expected
    from scipy.stats import gamma

    quantiles = np.asarray(gamma.ppf([0.5 - confidence / 2, 0.5 + confidence / 2], shape, scale=mse / shape))
    return expected, math.sqrt(float(quantiles[0])), math.sqrt(float(quantiles[1]))
