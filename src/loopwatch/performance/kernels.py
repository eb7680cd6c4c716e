"""Vectorised kernels shared by realized metrics and their estimates.

Every kernel takes a batch: a leading axis of bootstrap resamples or simulated
label draws, and returns one value per member of the batch. The point value
of a metric is the same kernel on a batch of one (every row once), so a
metric and its interval can never disagree about the formula.

* Confusion-matrix metrics (accuracy, precision, recall, F1) read a batch of
  confusion matrices ``(B, k, k)`` indexed ``[true, predicted]``; counts may
  be fractional (an *expected* confusion matrix).
* ROC AUC reads a batch of positive and negative *masses* per row, rows
  sorted by score: resampling weights times 0/1 labels for a bootstrap, drawn
  labels for a simulation, calibrated probabilities for an estimate. It is the
  Mann-Whitney statistic, ties counting one half, as ``roc_auc_score``.
"""

from __future__ import annotations

from typing import Iterator, Literal

import numpy as np

#: Largest number of cells of one resampling block (rows x resamples): bounds memory to a few tens of MB.
BLOCK_CELLS = 2_000_000


def blocks(n_rows: int, n_draws: int) -> Iterator[int]:
    """Sizes of the blocks in which ``n_draws`` draws over ``n_rows`` rows are made."""
    per_block = max(1, BLOCK_CELLS // max(n_rows, 1))
    done = 0
    while done < n_draws:
        size = min(per_block, n_draws - done)
        yield size
        done += size


def resample_indices(n_rows: int, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Bootstrap index matrices ``(B, n_rows)``, block by block."""
    for size in blocks(n_rows, n_boot):
        yield rng.integers(0, n_rows, size=(size, n_rows))


def counts_per_row(index: np.ndarray, n_rows: int) -> np.ndarray:
    """How often each row appears in each resample: ``(B, n_rows)`` weights."""
    b = index.shape[0]
    offsets = (np.arange(b) * n_rows)[:, None]
    return np.bincount((index + offsets).ravel(), minlength=b * n_rows).reshape(b, n_rows).astype(np.float64)


def grouped_counts(cells: np.ndarray, n_cells: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per member of the batch, the (weighted) count of each cell: ``(B, n_cells)``."""
    b = cells.shape[0]
    offsets = (np.arange(b) * n_cells)[:, None]
    flat = (cells + offsets).ravel()
    out = np.bincount(flat, weights=None if weights is None else weights.ravel(), minlength=b * n_cells)
    return out.reshape(b, n_cells).astype(np.float64)


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the samples that are not NaN (NaN if none)."""
    defined = samples[~np.isnan(samples)]
    if defined.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    # interpolating towards an infinite loss is undefined: then take the nearest sample
    method: Literal["linear", "nearest"] = "linear" if np.isfinite(defined).all() else "nearest"
    low, high = np.quantile(defined, [tail, 1 - tail], method=method)
    return float(low), float(high)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    defined = np.isfinite(values)
    total = np.where(defined, values, 0.0).sum(axis=axis)
    return _ratio(total, defined.sum(axis=axis).astype(np.float64))


def confusion_metrics(cm: np.ndarray, positive: int | None) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 of each confusion matrix in the batch ``(B, k, k)``.

    ``positive`` given: precision, recall and F1 of that class (binary);
    ``None``: their macro average over the classes where each is defined
    (``zero_division=nan`` in scikit-learn's terms). Undefined values are NaN.
    """
    total = cm.sum(axis=(1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    predicted = cm.sum(axis=1)  # per predicted class
    actual = cm.sum(axis=2)  # per true class
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2 * tp, predicted + actual)
    out = {"accuracy": _ratio(tp.sum(axis=1), total)}
    if positive is not None:
        out |= {"precision": precision[:, positive], "recall": recall[:, positive], "f1": f1[:, positive]}
    else:
        out |= {"precision": _nanmean(precision, 1), "recall": _nanmean(recall, 1), "f1": _nanmean(f1, 1)}
    return out


def tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts ``scores`` and where each run of equal scores starts in it."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def auc_from_masses(positive: np.ndarray, negative: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """ROC AUC per batch member from per-row masses ``(B, n)`` already in score order.

    Each (positive, negative) pair counts ``positive_i * negative_j`` times: one
    when the positive scores higher, one half on a tie. NaN where either mass is zero.
    """
    pos = np.add.reduceat(positive, starts, axis=1)
    neg = np.add.reduceat(negative, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return _ratio(wins, pos.sum(axis=1) * neg.sum(axis=1))
