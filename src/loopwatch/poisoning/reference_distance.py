"""Rows far from the trusted reference: an isolation forest and a PCA subspace of the reference.

The reference is the training sample of the version in production: rows the
team trained on and trusts. Half of it fits two detectors, which see
different kinds of "far":

- an :class:`~loopwatch.detectors.isolation_forest.IsolationForestDetector`:
  rows in thinly populated parts of the space the reference spans (extreme
  values, rare combinations);
- a :class:`~loopwatch.stats.multivariate.PcaBasis` keeping 90% of the
  variance: the distance of a row from the reference's principal subspace
  (its reconstruction error). This sees what trees cannot: a value in a
  feature that is constant in the reference (a pixel that is always blank),
  or a broken correlation between features.

The other half, which neither saw, sets each detector's threshold so that a
share ``fpr / 2`` of reference rows exceeds it; a row is over the line when
it exceeds either, so rows drawn from the reference's distribution are over
it at rate at most ``fpr``. A row's score is the larger of its two scores,
each divided by its threshold (above 1: over the line).

Rows drawn from the reference's own distribution would still lose a share
``fpr`` on every run, so rows are set aside only when the table's farthest rows
are more than the reference puts there: the ``r`` highest scores, for
``r = 8, 16, ...`` (from 0.05% of the rows on a large table) up to the count over the line, against the count the
held-out half of the reference predicts (``n`` times the share of its rows
scoring as high, counted with one more row for safety; see
:func:`~loopwatch.poisoning.base.tail_excess`). When the excess passes at
``alpha``, the rows over the line and the excess's own rows are set aside.

What it cannot tell apart: a genuine covariate shift also moves rows away from
the reference. At a low ``fpr`` only the far tail is set aside, and the flagged
share is reported, so a screen that flags far more than ``fpr`` says "the data
moved" as much as "someone poisoned it".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopwatch.detectors.isolation_forest import IsolationForestDetector
from loopwatch.errors import InvalidInput
from loopwatch.poisoning.base import ScreenResult, check_rate, quantile_threshold, tail_excess
from loopwatch.stats.multivariate import PcaBasis

NAME = "reference_distance"
REASON = "far_from_reference"
#: Fewest reference rows: half fit the detectors, half calibrate their thresholds.
MIN_REFERENCE_ROWS = 100
#: Share of the reference's variance the PCA subspace keeps.
PCA_VARIANCE = 0.9


def reference_distance_screen(
    x: Any,
    x_reference: Any,
    *,
    fpr: float = 0.01,
    n_estimators: int = 200,
    seed: int = 0,
    alpha: float = 0.01,
) -> ScreenResult:
    """Flag rows of ``x`` far from ``x_reference`` (an isolation forest or the PCA subspace).

    Both matrices must be encoded alike (one encoder, fitted on the reference).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = np.hstack([rng.normal(size=(1000, 3)), np.zeros((1000, 1))])
    >>> rows = np.vstack([np.hstack([rng.normal(size=(200, 3)), np.zeros((200, 1))]),
    ...                   [[8.0, -8.0, 8.0, 0.0]] * 5 + [[0.0, 0.0, 0.0, 3.0]] * 5])
    >>> result = reference_distance_screen(rows, reference, fpr=0.01, seed=0)
    >>> bool(result.flagged[-10:].all()), result.n_flagged < 16
    (True, True)
    >>> reference_distance_screen(rows[:200], reference, fpr=0.01, seed=0).n_flagged   # like the reference
    0
    """
    level = check_rate(fpr, "fpr")
    gate = check_rate(alpha, "alpha")
    rows = np.asarray(x, dtype=np.float64)
    reference = np.asarray(x_reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[0] < MIN_REFERENCE_ROWS:
        raise InvalidInput(f"the reference needs at least {MIN_REFERENCE_ROWS} rows, got {reference.shape[0]}")
    if rows.ndim != 2 or rows.shape[1] != reference.shape[1]:
        raise InvalidInput(f"x has shape {rows.shape}; the reference has {reference.shape[1]} columns")
    order = np.random.default_rng(seed).permutation(reference.shape[0])
    fit_rows, calibration = reference[order[: reference.shape[0] // 2]], reference[order[reference.shape[0] // 2 :]]
    forest = IsolationForestDetector(n_estimators=n_estimators, expected_rate=level / 2, random_state=seed)
    forest.fit(fit_rows, calibration)
    relative = [np.zeros(rows.shape[0]), np.zeros(rows.shape[0])]
    held_out = [_relative(forest.score_samples(calibration), forest.threshold_), np.zeros(calibration.shape[0])]
    thresholds = {"isolation_forest": float(forest.threshold_), "pca_reconstruction": None}
    if rows.shape[0]:
        relative[0] = _relative(forest.score_samples(rows), forest.threshold_)
    if np.ptp(fit_rows, axis=0).any():  # a reference of identical rows has no subspace
        basis = PcaBasis.fit(fit_rows, variance=PCA_VARIANCE)
        limit = quantile_threshold(basis.reconstruction_error(calibration), level / 2)
        thresholds["pca_reconstruction"] = limit
        held_out[1] = _relative(basis.reconstruction_error(calibration), limit)
        if rows.shape[0]:
            relative[1] = _relative(basis.reconstruction_error(rows), limit)
    scores = np.maximum(relative[0], relative[1])
    clean = np.sort(np.maximum(held_out[0], held_out[1]))

    def expected(cut: float) -> float:
        at_or_above = clean.size - np.searchsorted(clean, cut, side="left")
        return float(scores.size * (at_or_above + 1) / (clean.size + 1))

    over = scores > 1.0
    excess = tail_excess(scores, expected, up_to=int(over.sum()), alpha=gate)
    flagged = (over | (scores >= excess.cut)) & excess.passes(gate)
    return ScreenResult(
        name=NAME,
        scores=scores,
        flagged=flagged,
        reasons=tuple(REASON if f else None for f in flagged),
        threshold=1.0,
        fpr=level,
        details={"n_reference": int(reference.shape[0]), "thresholds": thresholds, "alpha": gate,
                 "rows_above": int(over.sum()), "excess": excess.to_dict(gate)},
    )


def _relative(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Scores as multiples of their threshold (both positive here), so 1 is the line."""
    if threshold > 0:
        return np.asarray(scores / threshold, dtype=np.float64)
    # a threshold of 0 (every calibration row reconstructed exactly): anything above it is over the line
    return np.where(scores > 1e-9, 2.0, 0.0)
