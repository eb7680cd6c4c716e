"""The outlier detector contract, shared by the outlier and novelty detectors.

It is one shape of the family's contract (:mod:`loopwatch.detectors.contract`).

A detector is fitted on reference rows and *calibrated* on other, held-out
reference rows: its threshold is the score quantile at which the wanted share
of calibration rows is flagged. Calibrating on the rows the model was fitted
on would be optimistic (a model scores its own training rows as more
normal), and the flagged count on calibration rows (``calibration_k_`` of
``calibration_n_``) is what :func:`loopwatch.stats.rates.rate_test` compares
a window's count with.

Conventions (scikit-learn's): parameters are stored as given in
``__init__``, everything learnt ends in ``_``, randomness only via
``random_state``. Unlike scikit-learn's ``score_samples``, **higher scores
mean more outlying** here, so thresholds read naturally ("flag above").
State is plain attributes and scikit-learn estimators, so a fitted detector
round-trips through skops.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator

from loopwatch.errors import InvalidInput, echo

FloatArray = NDArray[np.float64]


def as_rows(x: ArrayLike, name: str, *, min_rows: int = 1, n_features: int | None = None) -> FloatArray:
    """``x`` as a finite float matrix, or InvalidInput saying what is wrong."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a float matrix: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise InvalidInput(f"{name} must be a 2-D matrix with at least one column, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise InvalidInput(f"{name} needs at least {min_rows} rows, got {arr.shape[0]}")
    if n_features is not None and arr.shape[1] != n_features:
        raise InvalidInput(f"{name} has {arr.shape[1]} columns; the detector was fitted on {n_features}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} holds NaN or infinite values")
    return arr


class OutlierDetector(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no stubs
    """Base class: fit on reference rows, calibrate a threshold on held-out ones.

    Subclasses set ``name`` and implement ``_fit_estimator`` and
    ``_outlyingness``; they list every parameter in their own ``__init__``
    (scikit-learn reads parameters from its signature).

    Parameters
    ----------
    expected_rate:
        Share of calibration rows flagged; the false-alarm rate expected on
        reference-like data.
    random_state:
        Seed of the model's randomness (an int for reproducible scores).
    """

    #: The name used in reports.
    name: ClassVar[str] = "outlier_detector"
    #: The parameter that seeds the model's randomness (:class:`~loopwatch.detectors.contract.Detector`).
    seed_parameter: ClassVar[str] = "random_state"

    def __init__(self, *, expected_rate: float = 0.01, random_state: int | None = None) -> None:
        self.expected_rate = expected_rate
        self.random_state = random_state

    # -- to implement --------------------------------------------------------------------

    def _fit_estimator(self, x: FloatArray) -> Any:
        """Fit and return the underlying model on validated rows."""
        raise NotImplementedError

    def _outlyingness(self, x: FloatArray) -> FloatArray:
        """Scores of validated rows, higher = more outlying."""
        raise NotImplementedError

    # -- the contract --------------------------------------------------------------------

    def fit(self, x_fit: ArrayLike, x_calibration: ArrayLike) -> Self:
        """Fit the model on ``x_fit``, then calibrate ``threshold_`` on ``x_calibration``."""
        _check_rate(self.expected_rate, "expected_rate")
        rows = as_rows(x_fit, "x_fit", min_rows=2)
        calibration = as_rows(x_calibration, "x_calibration", n_features=rows.shape[1])
        self.n_features_in_ = rows.shape[1]
        self.estimator_ = self._fit_estimator(rows)
        self.n_fit_ = rows.shape[0]
        return self.infer_threshold(calibration, self.expected_rate)

    def infer_threshold(self, x: ArrayLike, fpr: float) -> Self:
        """Set ``threshold_`` so that a share ``fpr`` of the rows ``x`` is flagged.

        With n rows, ``floor(fpr * n)`` rows score strictly above the
        threshold (fewer when scores tie at it); the count is stored as
        ``calibration_k_`` out of ``calibration_n_``. Use rows the model was
        not fitted on.
        """
        _check_rate(fpr, "fpr")
        scores = self.score_samples(x)
        n = scores.size
        k = min(math.floor(fpr * n + 1e-9), n - 1)  # the tolerance keeps 0.01 * 1000 at 10, not 9
        self.threshold_ = float(np.sort(scores)[n - 1 - k])
        self.calibration_n_ = int(n)
        self.calibration_k_ = int(np.count_nonzero(scores > self.threshold_))
        self.calibration_fpr_ = float(fpr)
        return self

    @property
    def stated_rate(self) -> float:
        """The false-alarm rate ``fit`` calibrates at: ``expected_rate``."""
        return float(self.expected_rate)

    def calibration_counts(self) -> tuple[int, int]:
        """``(calibration_k_, calibration_n_)``: what a window's flagged count is tested against."""
        if not hasattr(self, "threshold_"):
            raise InvalidInput(f"{type(self).__name__} is not calibrated: call fit first")
        return self.calibration_k_, self.calibration_n_

    def score_samples(self, x: ArrayLike) -> FloatArray:
        """Outlier score per row: **higher means more outlying**."""
        if not hasattr(self, "estimator_"):
            raise InvalidInput(f"{type(self).__name__} is not fitted: call fit first")
        rows = as_rows(x, "x", n_features=self.n_features_in_)
        return np.asarray(self._outlyingness(rows), dtype=np.float64)

    def predict(self, x: ArrayLike) -> NDArray[np.bool_]:
        """True for the rows scoring above ``threshold_``."""
        if not hasattr(self, "threshold_"):
            raise InvalidInput(f"{type(self).__name__} is not calibrated: call fit first")
        return self.score_samples(x) > self.threshold_


def _check_rate(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise InvalidInput(f"{name} must be a share in (0, 1), got {echo(value)}")
