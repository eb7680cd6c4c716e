"""Calibrators for confidence-based estimation: maps from a model's probability to the observed frequency.

* ``isotonic``: a monotone step function (pool adjacent violators), as NannyML's
  CBPE uses. It assumes nothing about the shape of the miscalibration, but its
  end blocks rest on few reference rows and often reach exactly 0 or 1; a
  window that moves into a tail of the score distribution then inherits that
  false certainty.
* ``sigmoid``: Platt scaling on the logit of the probability, two parameters.
  It extrapolates smoothly into the tails and fits the most common
  miscalibration (over- or under-confidence) exactly.
* ``none``: the model's probabilities as they are.
* ``auto`` (the default of :class:`~loopwatch.performance.estimation.ConfidenceBasedEstimator`)
  chooses among the three by their seeded, cross-fitted log loss on the
  reference: each calibrator is fitted on four fifths and scored on the fifth
  it did not see, so a calibrator that merely memorises the reference loses.
  Log loss rather than the Brier score because it punishes false certainty:
  on an overconfident model, isotonic's end blocks at exactly 1 won on Brier
  by a hair, then missed the AUC of windows that moved into that tail in 82%
  of them (sigmoid: 8%).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")
#: Folds of the cross-fitting behind ``auto``.
FOLDS = 5
#: Probabilities are kept this far from 0 and 1 before taking their logit.
LOGIT_CLIP = 1e-7
#: Scored probabilities are clipped to [EPS, 1 - EPS], as scikit-learn's log_loss does.
EPS = float(np.finfo(np.float64).eps)


class Calibrator(Protocol):
    def predict(self, p: np.ndarray) -> np.ndarray: ...


class Identity:
    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(q) - np.log1p(-q)


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for any z


class Sigmoid:
    """``sigmoid(slope * logit(p) + intercept)``, fitted by maximum likelihood (Platt scaling).

    Newton's method on the two parameters, with a penalty of one pseudo-row
    pulling toward the identity map (slope 1, intercept 0): negligible next to
    a holdout of hundreds of rows, and it keeps the fit finite when the
    outcomes are perfectly separated.
    """

    PRIOR_WEIGHT = 1.0

    def __init__(self, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.slope, self.intercept = slope, intercept

    def fit(self, p: np.ndarray, outcome: np.ndarray) -> Sigmoid:
        z = _logit(np.asarray(p, dtype=np.float64))
        design = np.column_stack([z, np.ones_like(z)])
        prior = np.array([1.0, 0.0])
        weights = prior.copy()
        penalty = self.PRIOR_WEIGHT * np.eye(2)
        for _ in range(100):
            mu = _expit(design @ weights)
            gradient = design.T @ (outcome - mu) - penalty @ (weights - prior)
            hessian = (design * (mu * (1 - mu))[:, None]).T @ design + penalty
            step = np.linalg.solve(hessian, gradient)
            weights = weights + step
            if np.abs(step).max() < 1e-10:
                break
        self.slope, self.intercept = float(weights[0]), float(weights[1])
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return _expit(self.slope * _logit(np.asarray(p, dtype=np.float64)) + self.intercept)


def fit_calibrator(method: str, p: np.ndarray, outcome: np.ndarray) -> Calibrator:
    """Fit one calibrator of ``method`` (not ``auto``) on probabilities and 0/1 outcomes."""
    if method == "none":
        return Identity()
    if method == "sigmoid":
        return Sigmoid().fit(p, outcome)
    from sklearn.isotonic import IsotonicRegression

    calibrator: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    return calibrator.fit(p, outcome)


def cross_fitted_log_loss(
    method: str, proba: np.ndarray, truth: np.ndarray, columns: list[int], *, seed: int
) -> float:
    """The log loss of ``method``'s calibrated probabilities, each row scored by calibrators
    fitted without it (summed over ``columns``, one calibrator per column)."""
    n = len(truth)
    folds = np.random.default_rng(seed).permutation(n) % FOLDS
    total = 0.0
    for c in columns:
        outcome = (truth == c).astype(np.float64)
        for fold in range(FOLDS):
            held = folds == fold
            if held.all() or not held.any():
                continue
            calibrator = fit_calibrator(method, proba[~held, c], outcome[~held])
            predicted = np.clip(calibrator.predict(proba[held, c]), EPS, 1 - EPS)
            total -= float(np.sum(np.where(outcome[held] == 1, np.log(predicted), np.log1p(-predicted))))
    return total / n


def choose_calibration(proba: np.ndarray, truth: np.ndarray, columns: list[int], *, seed: int) -> dict[str, float]:
    """Cross-fitted log loss of every concrete method, simplest first; the lowest wins (a tie, the simpler)."""
    return {m: cross_fitted_log_loss(m, proba, truth, columns, seed=seed) for m in ("none", "sigmoid", "isotonic")}
