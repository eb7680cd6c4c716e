"""Direct loss estimation (DLE): a regressor's MAE and RMSE on a window, before its labels arrive.

On the model's holdout, gradient-boosted trees learn the loss a row can be
expected to have from the row's inputs and the model's prediction: the
absolute error, ``a(x) = E[|e| | x]``, and the squared error,
``s(x) = E[e^2 | x]`` (``e`` = prediction - truth). They are cross-fitted:
each is the average of two models fitted on complementary halves of the
holdout (the same cost as one model on all of it), so that every holdout row
also has loss predictions from a model that never saw it. On a window the estimated
MAE is the mean of ``a`` and the estimated RMSE the square root of the mean
of ``s``. Like CBPE it follows covariate shift, here into regions where the
model is known to err more (heteroscedastic noise, sparse training data), and
cannot see concept drift.

The interval is where the realized value should fall, from the same two
models: given the inputs, rows err independently, so the realized MAE has
variance ``sum(s - a^2) / n^2``; the realized mean squared error has variance
``sum(Var(e^2 | x)) / n^2`` with ``Var(e^2 | x) = (kurtosis - 1) s(x)^2``,
the kurtosis ratio ``E[e^4] / E[s(x)^2]`` measured on the holdout, the
denominator as ``E[s_oof(x) e^2]`` with out-of-fold ``s`` (3 for normal errors), and the RMSE's follows by the delta method. The intervals are
normal around the estimate. The loss models learned their averages from the
holdout's ``n_reference`` rows, whose own sampling error carries into every
estimate; to first order it adds the same per-row variance divided by
``n_reference``, so each variance is the per-row variance times
``1 / n + 1 / n_reference``. (Bootstrapping the trees would measure this
more exactly at many times the cost; CBPE, whose calibrators are cheap, does
bootstrap them.) What the intervals cannot cover is extrapolation: trees are
constant beyond the holdout's range, so a window far outside it gets the
loss of the holdout's edge.
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


class DirectLossEstimator:
    """Estimate a regressor's MAE and RMSE from its inputs and predictions.

    ``X`` is the model's inputs: a table (numeric and categorical columns, as
    the model takes them; encoded by :class:`~loopwatch.performance.inputs.InputEncoder`),
    a numeric matrix (missing values as NaN, which the trees handle), or
    ``None`` to learn from the prediction alone. ``estimate`` takes the same kind. ``max_iter`` bounds each loss model's
    boosting rounds; ``seed`` fixes their randomness. ``n_threads`` caps their
    OpenMP threads (``None``: the library's default, every core).
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

    def _loss_model(self, categorical: np.ndarray) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=check_count(self.max_iter, name="max_iter", minimum=1),
            categorical_features=categorical if categorical.any() else None,
            # no early stopping: on targets as noisy as losses the validation loss stops boosting after
            # about 20 rounds, leaving the models shrunk toward the overall mean loss, so a window of
            # rows that err more (or less) gets an estimate only part of the way there (measured: 0.95x
            # and 1.15x the realized MAE of two categories, against 0.98x and 1.02x with all rounds)
            early_stopping=False,
            random_state=self.seed,
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
        models = [(self._loss_model(categorical), self._loss_model(categorical)) for _ in range(2)]
        squared_out_of_fold = np.empty(len(truth))
        with self._threads():
            for (abs_model, squared_model), rows in zip(models, (half, ~half)):
                abs_model.fit(design[rows], np.abs(error[rows]))
                squared_model.fit(design[rows], error[rows] ** 2)
            self.loss_models_ = models
            for (abs_model, squared_model), rows in zip(models, (~half, half)):
                squared_out_of_fold[rows] = self._bounded(abs_model.predict(design[rows]),
                                                          squared_model.predict(design[rows]))[1]
        self.n_features_in_ = matrix.shape[1]
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

    @staticmethod
    def _bounded(absolute: np.ndarray, squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        absolute = np.clip(absolute, 0.0, None)
        # E[e^2] >= E[|e|]^2 always; the two models are fitted apart, so hold them to it
        return absolute, np.maximum(np.clip(squared, 0.0, None), absolute**2)

    def _losses(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected absolute and squared error per row: the mean of the two halves' models."""
        absolute = np.mean([a.predict(design) for a, _ in self.loss_models_], axis=0)
        squared = np.mean([s.predict(design) for _, s in self.loss_models_], axis=0)
        return self._bounded(absolute, squared)

    def estimate(self, X: Any, y_pred: Any, *, confidence: float = 0.95) -> dict[str, MetricValue]:
        """Expected MAE and RMSE of a window, each with the interval its realized value should fall in."""
        if not hasattr(self, "loss_models_"):
            raise InvalidInput("this DirectLossEstimator is not fitted yet: call fit() first")
        confidence = check_confidence(confidence)
        predicted = check_values(y_pred, name="y_pred")
        n = len(predicted)
        if n == 0:
            nan = float("nan")
            return {name: MetricValue(name, nan, nan, nan, 0) for name in ESTIMATED_REGRESSION}
        matrix = _matrix(X, n, encoder=self.encoder_, name="X")
        if matrix.shape[1] != self.n_features_in_:
            raise InvalidInput(f"X has {matrix.shape[1]} columns; the estimator was fitted on {self.n_features_in_}")
        design = np.column_stack([matrix, predicted])
        with self._threads():
            absolute, squared = self._losses(design)
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        # the window's rows, and the reference rows the loss models averaged over
        spread = 1 / n + 1 / self.n_reference_
        mae = float(absolute.mean())
        mae_sd = math.sqrt(float(np.mean(squared - absolute**2)) * spread)
        mse = float(squared.mean())
        mse_sd = math.sqrt((self.kurtosis_ - 1) * float(np.mean(squared**2)) * spread)
        rmse = math.sqrt(mse)
        rmse_sd = mse_sd / (2 * rmse) if rmse > 0 else 0.0
        return {
            "mae": MetricValue("mae", mae, max(0.0, mae - z * mae_sd), mae + z * mae_sd, n),
            "rmse": MetricValue("rmse", rmse, max(0.0, rmse - z * rmse_sd), rmse + z * rmse_sd, n),
        }
