"""The flip screen's null from a trusted reference: how many labels should disagree this much?

Without a reference, the flip screen asks a model fitted on the table itself what
its labels should be; a model fitted on randomly flipped labels learns to expect
that noise, and the flips explain themselves. With a labelled trusted reference
(the production version's reference sample, the rows a version was trained on),
the question is asked of a model that never saw the table:

- logistic regressions fitted on the reference (three folds, their mean) give every
  row of the table a probability for each class, then its class shares are moved to the table's own
  (one weight per class, as for a change of class priors: a month with more late
  flights is not a month of flipped labels);
- were the table's labels drawn from these probabilities, the expected count of
  rows scoring ``s`` or more (score: one minus the probability of the row's own
  label) is ``sum_ic q_ic [1 - q_ic >= s]``;
- a model's extreme tail is where it is least calibrated, so that count is scaled
  by how far the reference's own rows, scored out of fold, exceed what their
  out-of-fold probabilities expect at ``s`` (never scaled down).

A table whose labels disagree with its features more than the trusted labels did
then shows an excess in its tail. What this cannot tell from poison: a concept
drift that changes the label relation *within* classes (not only their shares)
raises disagreement against the reference just as flips do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from numpy.typing import NDArray

from loopwatch.poisoning.base import FloatArray, class_codes, fit_sample

#: Fewest labelled reference rows for the flip screen to judge a table against the reference.
MIN_REFERENCE_LABELS = 200
#: Folds of the reference: each fold model scores its held-out reference rows and, averaged, the table.
REFERENCE_FOLDS = 3
#: Rounds of the class-share adjustment (each moves the predicted shares toward the table's).
PRIOR_ROUNDS = 50


@dataclass(frozen=True)
class ReferenceNull:
    """The reference's view of a table's labels: per-row class probabilities and the tail calibration."""

    #: Class probabilities of the table's rows (columns: the table's classes), shares moved to the table's.
    probabilities: FloatArray
    #: The reference rows' out-of-fold scores, sorted, and the null mass their probabilities put at each.
    reference_scores: FloatArray
    reference_candidates: FloatArray
    reference_weights: FloatArray
    n_reference: int

    def expected(self, cut: float) -> float:
        """Expected count of the table's rows scoring ``cut`` or more, were its labels honest."""
        q = self.probabilities
        model = float(q[(1.0 - q) >= cut].sum())
        observed_reference = float(self.reference_scores.size - np.searchsorted(self.reference_scores, cut, "left"))
        expected_reference = float(self.reference_weights[self.reference_candidates >= cut].sum())
        # a tail the model under-predicts on honest reference labels is scaled up by as much (+1: smoothing)
        scale = max(1.0, (observed_reference + 1.0) / (expected_reference + 1.0))
        return model * scale


def reference_null(
    x_reference: FloatArray, reference_labels: Sequence[Any], x: FloatArray, classes: Sequence[str],
    shares: FloatArray, *, seed: int = 0,
) -> ReferenceNull | None:
    """The null of :class:`ReferenceNull`, or ``None`` when the reference cannot give one.

    ``x_reference`` and ``x`` are encoded alike; ``classes`` are the table's class texts and
    ``shares`` its class shares. ``None`` when the reference has fewer than
    :data:`MIN_REFERENCE_LABELS` rows, fewer than two classes, a class of fewer than
    :data:`REFERENCE_FOLDS` rows, or lacks a class of the table.
    """
    codes, reference_classes = class_codes(reference_labels)
    counts = np.bincount(codes, minlength=len(reference_classes))
    if (codes.size < MIN_REFERENCE_LABELS or len(reference_classes) < 2 or counts.min() < REFERENCE_FOLDS
            or not set(classes) <= set(reference_classes)):
        return None
    oof, fitted = _folds(x_reference, codes, len(reference_classes), x, seed=seed)
    # the table's classes only (a class the table lacks is a share of 0), then the table's shares
    columns = [reference_classes.index(c) for c in classes]
    probabilities = with_shares(fitted[:, columns], shares)
    own = 1.0 - oof[np.arange(codes.size), codes]
    return ReferenceNull(
        probabilities=probabilities,
        reference_scores=np.sort(own),
        reference_candidates=(1.0 - oof).ravel(),
        reference_weights=oof.ravel(),
        n_reference=int(codes.size),
    )


def _folds(
    x_reference: FloatArray, codes: NDArray[np.int64], n_classes: int, x: FloatArray, *, seed: int
) -> tuple[FloatArray, FloatArray]:
    """Out-of-fold probabilities of the reference rows, and the mean of the fold models' on ``x``.

    The same models score both, so the tail calibration measured on the reference is that of
    the probabilities the table is judged by (each fold on at most ``MAX_FIT_ROWS`` rows).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros((codes.size, n_classes))
    table = np.zeros((x.shape[0], n_classes))
    splitter = StratifiedKFold(n_splits=REFERENCE_FOLDS, shuffle=True, random_state=seed)
    for fold, (whole_fold, held_out) in enumerate(splitter.split(x_reference, codes)):
        rows = fit_sample(whole_fold, seed=seed + fold)
        if np.unique(codes[rows]).size < n_classes:
            rows = whole_fold
        model = LogisticRegression(max_iter=1000).fit(x_reference[rows], codes[rows])
        oof[np.ix_(held_out, model.classes_)] = model.predict_proba(x_reference[held_out])
        if x.shape[0]:
            table[:, model.classes_] += model.predict_proba(x) / REFERENCE_FOLDS
    return oof, table


def with_shares(probabilities: FloatArray, shares: FloatArray) -> FloatArray:
    """``probabilities`` reweighted per class (rows renormalised) until their mean is ``shares``.

    The fixed point of ``w_c <- w_c * share_c / mean_c``: a change of class priors moves every
    row's odds by one factor per class, and leaves the relation of features to labels alone.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    target = np.asarray(shares, dtype=np.float64)
    weights = np.ones(p.shape[1])
    adjusted = p / p.sum(axis=1, keepdims=True)
    for _ in range(PRIOR_ROUNDS):
        mean = adjusted.mean(axis=0) if adjusted.shape[0] else target
        if np.allclose(mean, target, atol=1e-6):
            break
        weights *= np.where(mean > 0, target / np.maximum(mean, 1e-300), 1.0)
        adjusted = p * weights
        adjusted /= adjusted.sum(axis=1, keepdims=True)
    return np.asarray(adjusted, dtype=np.float64)
