"""Label flips: labels at odds with their neighbours and with cross-validated predictions.

Each row gets a probability for each class that no model fitted on the row
itself gave it: the mean of

- the out-of-fold probability of a logistic regression (fitted without the
  row, see :func:`~loopwatch.poisoning.base.out_of_fold_probabilities`), and
- the share of the row's ``k`` nearest other rows (encoded, standardised
  features) that carry the class.

The score is one minus that probability of the row's own label: high when
the label is at odds with both the model and the neighbours. The threshold
comes from the null of clean labels: were each row's label drawn from these
probabilities ``q``, the expected share of rows scoring above ``t`` would be
``sum_ic q_ic [1 - q_ic > t] / n``; the threshold is the lowest ``t`` that
keeps it at most ``fpr``.

Every real table has honest label noise, so a threshold alone would set aside
a share ``fpr`` of genuine rows on every run. Rows are set aside only when the
table's most suspicious rows are more than clean labels explain: for ranks
``r = 8, 16, 32, ...`` up to the count above the threshold (at least
:data:`~loopwatch.poisoning.base.MIN_EXCESS_ROWS` and 0.05% of the rows: a real table's few most surprising labels are where
any model's calibration is worst, and a handful of rows is no evidence of an
attack, as for the backdoor screen's ``min_count``), the ``r`` rows scoring
highest are tested against the null's expected count ``E`` of rows scoring at
least as high (the upper binomial tail at ``E / n``, which bounds the
Poisson-binomial tail of independent rows from above; Bonferroni over the
ranks at ``alpha``). When some rank passes and clean labels explain at most
:data:`~loopwatch.poisoning.base.MAX_NOISE_SHARE` of its rows, the table holds flips and the rows above
the threshold are set aside; otherwise none are. With calibrated probabilities
a clean table then loses rows at most ``alpha`` of the time; a table with
flips is screened at ``fpr`` as before. Measured on real tables
(``benchmarks/poisoning_genuine.py``, ``docs/security.md``).

Without a reference the null is the table's own: it is fitted on the rows
being screened, so a concept drift moves the model with it instead of
flagging the window; but a model fitted on randomly flipped labels learns to
expect them, and the flips explain themselves. With a labelled trusted
reference (``reference``, see :mod:`~loopwatch.poisoning.flip_reference`) the
excess is judged by a model of the reference instead, which never saw the
table's flips. A drift of class shares is absorbed (the null takes the
table's shares); a drift of the relation itself shows as disagreement, and
only an excess of which clean data explains at most a quarter sets rows
aside. What neither can see is a flip that looks like ordinary label noise:
a row near the decision boundary labelled the other way is as plausible
flipped as not.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from loopwatch.errors import InvalidInput, echo
from loopwatch.poisoning.base import (
    FloatArray,
    ScreenResult,
    TailExcess,
    check_rate,
    class_codes,
    null_threshold,
    out_of_fold_probabilities,
    tail_excess,
)
from loopwatch.poisoning.flip_reference import ReferenceNull

NAME = "label_flips"
REASON = "label_flip"
#: Fewest rows the screen runs on; below it, neighbours and folds say little.
MIN_ROWS = 50
#: Most rows the neighbours are looked for among (a seeded sample beyond it).
MAX_INDEX_ROWS = 10_000


def neighbour_disagreement(
    x: FloatArray, codes: np.ndarray, n_classes: int, *, k: int, max_index_rows: int = MAX_INDEX_ROWS, seed: int = 0
) -> FloatArray:
    """``out[i, c]``: the share of row ``i``'s ``k`` nearest other rows whose label is not ``c``.

    The neighbours are looked for among at most ``max_index_rows`` rows (a seeded sample):
    the search costs rows times indexed rows, and the share of ``k`` neighbours among a
    sample of 10,000 rows estimates the local label mix as well as among all of them.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(codes)
    indexed = np.arange(n)
    if n > max_index_rows:
        indexed = np.sort(np.random.default_rng(seed).choice(n, max_index_rows, replace=False))
    k = min(k, indexed.size - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(x[indexed])
    _, found = index.kneighbors(x)
    neighbours = indexed[found]
    rows = np.arange(n)[:, None]
    # drop the row itself (duplicates may put another row first: drop the last then)
    is_self = neighbours == rows
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(neighbours, dtype=bool)
    keep[np.arange(n), drop] = False
    others = neighbours[keep].reshape(n, k)
    counts = np.zeros((len(codes), n_classes))
    np.add.at(counts, (np.repeat(np.arange(len(codes)), k), codes[others].ravel()), 1.0)
    return np.asarray(1.0 - counts / k, dtype=np.float64)


def label_flip_screen(
    x: Any,
    labels: Sequence[Any],
    *,
    fpr: float = 0.01,
    k: int = 20,
    n_folds: int = 5,
    seed: int = 0,
    probabilities: FloatArray | None = None,
    alpha: float = 0.01,
    reference: ReferenceNull | None = None,
) -> ScreenResult:
    """Flag rows whose label disagrees with both their neighbours and a cross-validated model.

    ``x`` is the encoded feature matrix, ``labels`` one class label per row.
    ``probabilities`` (rows x sorted class texts) skips fitting the out-of-fold
    model when a caller already has them (the backdoor screen reuses them).
    ``fpr`` is the highest null rate of the thresholds tried; ``alpha`` the
    rate at which a clean table has any row set aside (see the module's text).
    ``reference`` (:func:`~loopwatch.poisoning.flip_reference.reference_null`) judges the
    table's labels against a trusted reference instead of against the table's own model.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 2))
    >>> y = (x[:, 0] > 0).astype(int)
    >>> deep = np.flatnonzero(np.abs(x[:, 0]) > 1.8)[:10]
    >>> y[deep] = 1 - y[deep]                  # ten gross flips, far from the boundary
    >>> result = label_flip_screen(x, y, fpr=0.01, seed=0)
    >>> bool(result.flagged[deep].all()), result.n_flagged <= 10 + 10, result.details["excess"]["holds_poison"]
    (True, True, True)
    >>> clean = label_flip_screen(x, (x[:, 0] > 0).astype(int), fpr=0.01, seed=0)
    >>> clean.n_flagged                         # honest labels: nothing set aside
    0
    """
    level = check_rate(fpr, "fpr")
    gate = check_rate(alpha, "alpha")
    matrix = np.asarray(x, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(labels):
        raise InvalidInput(f"x must be a matrix with one row per label, got shape {matrix.shape}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {echo(k)}")
    codes, classes = class_codes(labels)
    n_classes = len(classes)
    if probabilities is None:
        probabilities = out_of_fold_probabilities(matrix, codes, n_classes, n_folds=n_folds, seed=seed)
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.shape != (len(codes), n_classes):
        raise InvalidInput(f"probabilities must have shape {(len(codes), n_classes)}, got {proba.shape}")
    blended = 0.5 * proba + 0.5 * (1.0 - neighbour_disagreement(matrix, codes, n_classes, k=k, seed=seed))
    scores = 1.0 - blended[np.arange(len(codes)), codes]
    threshold = null_threshold(1.0 - blended, blended, level)
    above = scores > threshold
    # the excess is judged on the model's probabilities alone: the neighbours' shares near a flip
    # hold the flip itself, and would let each flip explain itself and the next
    if reference is None:
        model_scores = 1.0 - proba[np.arange(len(codes)), codes]
        excess = flip_excess(model_scores, 1.0 - proba, proba, up_to=int(above.sum()), alpha=gate)
    else:
        # a model of the trusted labels never learnt the table's flips: they cannot explain themselves
        model_scores = 1.0 - reference.probabilities[np.arange(len(codes)), codes]
        excess = tail_excess(model_scores, reference.expected, up_to=int(above.sum()), alpha=gate)
    # a table that holds flips loses the rows above the threshold and the excess's own rows
    flagged = (above | (model_scores >= excess.cut)) & excess.passes(gate)
    return ScreenResult(
        name=NAME,
        scores=scores,
        flagged=flagged,
        reasons=tuple(REASON if f else None for f in flagged),
        threshold=threshold,
        fpr=level,
        details={"classes": classes, "k": min(k, len(codes) - 1), "alpha": gate, "rows_above": int(above.sum()),
                 "excess": excess.to_dict(gate),
                 "null": "table" if reference is None else f"reference of {reference.n_reference} rows"},
    )


def flip_excess(
    scores: FloatArray, candidate_scores: FloatArray, null_weights: FloatArray, *, up_to: int, alpha: float
) -> TailExcess:
    """The excess test of :func:`~loopwatch.poisoning.base.tail_excess` against the clean-label null.

    ``candidate_scores`` and ``null_weights`` as :func:`~loopwatch.poisoning.base.null_threshold`:
    the null expects ``sum_ic w_ic [s_ic >= s]`` rows scoring ``s`` or more.
    """
    flat_scores = np.asarray(candidate_scores, dtype=np.float64).ravel()
    order = np.argsort(flat_scores, kind="stable")
    sorted_scores = flat_scores[order]
    # null mass of the candidates at or above each sorted score (and 0 past the last)
    weights = np.asarray(null_weights, dtype=np.float64).ravel()[order]
    tail_mass = np.concatenate([np.cumsum(weights[::-1])[::-1], [0.0]])

    def expected(cut: float) -> float:
        return float(tail_mass[np.searchsorted(sorted_scores, cut, side="left")])

    return tail_excess(scores, expected, up_to=up_to, alpha=alpha)
