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
keeps it at most ``fpr``. With calibrated probabilities the false-positive
rate on clean data is then at most ``fpr``; measured, it is at or below it
(``tests/poisoning`` and ``benchmarks/poisoning_quality.py``).

The null is the table's own: it is fitted on the rows being screened, so a
concept drift (the labels of the whole window follow a new relation) moves
the model with it instead of flagging the window. What it cannot see is a
flip that looks like ordinary label noise: a row near the decision boundary
labelled the other way is as plausible flipped as not.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.base import (
    FloatArray,
    ScreenResult,
    check_rate,
    class_codes,
    null_threshold,
    out_of_fold_probabilities,
)

NAME = "label_flips"
REASON = "label_flip"
#: Fewest rows the screen runs on; below it, neighbours and folds say little.
MIN_ROWS = 50


def neighbour_disagreement(x: FloatArray, codes: np.ndarray, n_classes: int, *, k: int) -> FloatArray:
    """``out[i, c]``: the share of row ``i``'s ``k`` nearest other rows whose label is not ``c``."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(codes) - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, neighbours = index.kneighbors(x)
    rows = np.arange(len(codes))[:, None]
    # drop the row itself (duplicates may put another row first: drop the last then)
    is_self = neighbours == rows
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(neighbours, dtype=bool)
    keep[np.arange(len(codes)), drop] = False
    others = neighbours[keep].reshape(len(codes), k)
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
) -> ScreenResult:
    """Flag rows whose label disagrees with both their neighbours and a cross-validated model.

    ``x`` is the encoded feature matrix, ``labels`` one class label per row.
    ``probabilities`` (rows x sorted class texts) skips fitting the out-of-fold
    model when a caller already has them (the backdoor screen reuses them).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 2))
    >>> y = (x[:, 0] > 0).astype(int)
    >>> deep = np.flatnonzero(np.abs(x[:, 0]) > 2.0)[:4]
    >>> y[deep] = 1 - y[deep]                  # four gross flips, far from the boundary
    >>> result = label_flip_screen(x, y, fpr=0.01, seed=0)
    >>> bool(result.flagged[deep].all()), result.n_flagged <= 4 + 8
    (True, True)
    """
    level = check_rate(fpr, "fpr")
    matrix = np.asarray(x, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(labels):
        raise InvalidInput(f"x must be a matrix with one row per label, got shape {matrix.shape}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    codes, classes = class_codes(labels)
    n_classes = len(classes)
    if probabilities is None:
        probabilities = out_of_fold_probabilities(matrix, codes, n_classes, n_folds=n_folds, seed=seed)
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.shape != (len(codes), n_classes):
        raise InvalidInput(f"probabilities must have shape {(len(codes), n_classes)}, got {proba.shape}")
    blended = 0.5 * proba + 0.5 * (1.0 - neighbour_disagreement(matrix, codes, n_classes, k=k))
    threshold = null_threshold(1.0 - blended, blended, level)
    scores = 1.0 - blended[np.arange(len(codes)), codes]
    flagged = scores > threshold
    return ScreenResult(
        name=NAME,
        scores=scores,
        flagged=flagged,
        reasons=tuple(REASON if f else None for f in flagged),
        threshold=threshold,
        fpr=level,
        details={"classes": classes, "k": min(k, len(codes) - 1)},
    )
