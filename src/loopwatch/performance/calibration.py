"""Calibrators for confidence-based estimation: maps from a model's probability to the observed frequency.

* ``isotonic``: a monotone step function (pool adjacent violators), as NannyML's
  CBPE uses. It assumes nothing about the shape of the miscalibration, but its
  end blocks rest on few reference rows and often reach exactly 0 or 1.
* ``sigmoid``: Platt scaling on the logit of the probability, two parameters.
  It extrapolates smoothly into the tails and fits the most common
  miscalibration (over- or under-confidence) exactly, and nothing else.
* ``none``: the model's probabilities as they are.
* ``auto`` (the default of :class:`~loopwatch.performance.estimation.ConfidenceBasedEstimator`)
  chooses between isotonic and sigmoid by what is estimated: each is fitted on four
  fifths of the reference, and on the fifth it did not see, the accuracy and ROC
  AUC it estimates are set against the realized ones, on the fold as it is and
  reweighted toward either end of the scores (``TILTS``); the lowest root mean
  squared error wins (:meth:`~loopwatch.performance.estimation.ConfidenceBasedEstimator.fit`).
  ``none`` is scored the same way, for the record, and never chosen: trusted as
  they are, the scores would carry no calibration error into the interval.
  It used to be the cross-fitted log loss, which a few exact 0/1 isotonic blocks
  decided: one held-out row in a block at 0 costs ``-log(eps) = 36``, as much as
  ten thousand rows' differences, so isotonic never won on real data, even
  where its estimates were the better ones (a random forest's scores, 2013 flights:
  accuracy 0.0057 off on average, sigmoid's 0.0113).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")
#: Folds of the cross-fitting behind ``auto``.
FOLDS = 5
#: Reweightings of a held-out fold, ``exp(t * z)`` with ``z`` the normal score of the model's score,
#: that ``auto`` judges calibrations on: the fold as it is, and windows leaning toward either end.
TILTS = (-1.5, -0.75, 0.0, 0.75, 1.5)
#: Holdout rows a side of the served label needs for an isotonic fit of its own.
MIN_SIDE_ROWS = 50
#: Probabilities are kept this far from 0 and 1 before taking their logit.
LOGIT_CLIP = 1e-7


class Calibrator(Protocol):
    def predict(self, p: np.ndarray) -> np.ndarray: ...


class Identity:
    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    logits: np.ndarray = np.log(q) - np.log1p(-q)
    return logits


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for any z


class Sigmoid:
    """``sigmoid(slope * logit(p) + intercept)``, fitted by maximum likelihood (Platt scaling).

    Newton's method on the parameters, with a penalty of one pseudo-row
    pulling toward the identity map (slope 1, intercept 0): negligible next to
    a holdout of hundreds of rows, and it keeps the fit finite when the
    outcomes are perfectly separated. Given ``side`` (0/1 per row, the side of
    the served label), the intercept moves by ``shift`` on side 1: one slope,
    and an intercept per side, whose score equations make each side's
    calibrated probabilities add up to its outcomes.
    """

    PRIOR_WEIGHT = 1.0

    def __init__(self, slope: float = 1.0, intercept: float = 0.0, shift: float = 0.0) -> None:
        self.slope, self.intercept, self.shift = slope, intercept, shift

    def fit(self, p: np.ndarray, outcome: np.ndarray, side: np.ndarray | None = None) -> Sigmoid:
        z = _logit(np.asarray(p, dtype=np.float64))
        columns = [z, np.ones_like(z)] + ([np.asarray(side, dtype=np.float64)] if side is not None else [])
        design = np.column_stack(columns)
        prior = np.zeros(len(columns))
        prior[0] = 1.0
        penalty = self.PRIOR_WEIGHT * np.eye(len(columns))

        def objective(w: np.ndarray) -> float:  # the penalised log-likelihood
            eta = design @ w
            return float(np.sum(outcome * eta - np.logaddexp(0.0, eta)) - 0.5 * (w - prior) @ penalty @ (w - prior))

        weights = prior.copy()
        current = objective(weights)
        for _ in range(100):
            mu = _expit(design @ weights)
            gradient = design.T @ (outcome - mu) - penalty @ (weights - prior)
            hessian = (design * (mu * (1 - mu))[:, None]).T @ design + penalty
            step = np.linalg.solve(hessian, gradient)
            # halve a step that lowers the likelihood: from the identity map, scores far more
            # confident than their outcomes (naive Bayes: 1% of rows above 0.998, a third of them
            # positive) have almost no curvature, and the full Newton step ran off to a slope of 8,000
            for _ in range(50):
                trial = objective(weights + step)
                if trial >= current:
                    break
                step = step / 2
            weights, current = weights + step, max(current, trial)
            if np.abs(step).max() < 1e-10:
                break
        self.slope, self.intercept = float(weights[0]), float(weights[1])
        self.shift = float(weights[2]) if side is not None else 0.0
        return self

    def predict(self, p: np.ndarray, side: np.ndarray | None = None) -> np.ndarray:
        eta = self.slope * _logit(np.asarray(p, dtype=np.float64)) + self.intercept
        return _expit(eta if side is None else eta + self.shift * np.asarray(side, dtype=np.float64))


class Sided:
    """A calibrator per side of the served label: ``below`` for rows served the negative class,
    ``above`` for rows served the positive one."""

    def __init__(self, below: Calibrator, above: Calibrator) -> None:
        self.below, self.above = below, above

    def predict(self, p: np.ndarray, side: np.ndarray) -> np.ndarray:
        return np.where(side, self.above.predict(p), self.below.predict(p))


class SidedSigmoid:
    """A :class:`Sigmoid` with an intercept per side of the served label."""

    def __init__(self, sigmoid: Sigmoid) -> None:
        self.sigmoid = sigmoid

    def predict(self, p: np.ndarray, side: np.ndarray) -> np.ndarray:
        return self.sigmoid.predict(p, side)


def fit_calibrator(method: str, p: np.ndarray, outcome: np.ndarray) -> Calibrator:
    """Fit one calibrator of ``method`` (not ``auto``) on probabilities and 0/1 outcomes."""
    if method == "none":
        return Identity()
    if method == "sigmoid":
        return Sigmoid().fit(p, outcome)
    from sklearn.isotonic import IsotonicRegression

    calibrator: Calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, outcome)
    return calibrator


def fit_sided(method: str, p: np.ndarray, outcome: np.ndarray, side: np.ndarray) -> Sided | SidedSigmoid:
    """Fit ``method`` (not ``auto``) on each side of the served label (``side``: 1 where the positive
    class was served) of a two-class model.

    What is estimated depends on the side: a row served positive is right with probability
    ``q``, one served negative with ``1 - q``. One monotone map pools rows across the threshold
    wherever the truth is not monotone in the score, and its estimate of accuracy is then off on
    both sides at once (naive Bayes on the 1980 census: scores just above 0.5 positive less often
    than scores just below, and isotonic and sigmoid fits over both sides put the accuracy 0.01
    high, on the holdout they were fitted on too). So isotonic is fitted per side (a side with
    fewer than ``MIN_SIDE_ROWS`` rows, or one outcome only, takes the fit over both), and sigmoid
    keeps one slope, which extrapolates into the tails, with an intercept per side.
    """
    side = np.asarray(side, dtype=bool)
    if method == "sigmoid":
        return SidedSigmoid(Sigmoid().fit(p, outcome, side))
    pooled = fit_calibrator(method, p, outcome)
    if method == "none":
        return Sided(pooled, pooled)
    fits = []
    for rows in (~side, side):
        known = outcome[rows]
        enough = len(known) >= MIN_SIDE_ROWS and 0 < known.sum() < len(known)
        fits.append(fit_calibrator(method, p[rows], known) if enough else pooled)
    return Sided(*fits)


def normal_scores(p: np.ndarray) -> np.ndarray:
    """The normal quantile of each score's rank (ties share their mean rank): a tilt ``exp(t * z)``
    of these leans toward high or low scores by the same amount whatever the scores' spread,
    where the logit of a model that returns exact 0s and 1s put all the weight on a few rows."""
    from scipy.stats import norm, rankdata

    return np.asarray(norm.ppf(rankdata(p) / (len(p) + 1)), dtype=np.float64)
