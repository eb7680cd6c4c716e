"""The geometry of a client's queries, as pure numpy: how near the decision boundary they
sit, how many differ from another in one feature (a lattice), and nearest-neighbour distances
with each feature left out in turn. :class:`~loopwatch.detectors.extraction.ExtractionDetector`
builds its signals from these.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from loopwatch.errors import InvalidInput

#: Decimals numeric values are compared at: a lattice step of 0.05 stays 0.05,
#: float noise from JSON round trips disappears.
_DECIMALS = 9

def near_boundary_share(probabilities: ArrayLike, *, margin: float = 0.2) -> float:
    """Share of rows whose two most probable classes are less than ``margin`` apart."""
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0:
        raise InvalidInput("probabilities must be a non-empty matrix with one column per class")
    if proba.shape[1] == 1:
        gap = np.abs(2.0 * proba[:, 0] - 1.0)
    else:
        top = np.sort(proba, axis=1)
        gap = top[:, -1] - top[:, -2]
    return float(np.mean(gap < margin))


def value_codes(frame: pd.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """Each value as an integer code per column (equal values, equal codes; missing is -1)."""
    columns = []
    for name in frame.columns:
        values = frame[name]
        if name in numeric:
            values = pd.to_numeric(values, errors="coerce").round(_DECIMALS)
        columns.append(pd.factorize(values, use_na_sentinel=True)[0])
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0), dtype=np.int64)


def numeric_values(frame: pd.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """The numeric columns as floats (NaN elsewhere), rounded as they are compared."""
    out = np.full(frame.shape, np.nan)
    for j, name in enumerate(frame.columns):
        if name in numeric:
            out[:, j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64).round(_DECIMALS)
    return out


def distinct_positions(codes: np.ndarray) -> np.ndarray:
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(codes, axis=0, return_index=True)
    return np.sort(first)


def one_feature_neighbours(
    frame: pd.DataFrame, *, numeric: Sequence[str] = ()
) -> tuple[float, float | None, float | None]:
    """Of the distinct rows, the share with a twin that differs in exactly one feature; and
    the regularity and normalised entropy of the steps between such twins along numeric features.

    Regularity is, over groups of at least three twins, the share of steps equal to their
    group's most common step (1 on a lattice); the entropy is that of all steps pooled
    (0 when every step is the same). Both are ``None`` when there are too few steps.
    """
    codes = value_codes(frame, numeric)
    keep = distinct_positions(codes)
    return lattice_neighbours(codes[keep], numeric_values(frame, numeric)[keep])


def lattice_neighbours(codes: np.ndarray, values: np.ndarray) -> tuple[float, float | None, float | None]:
    """:func:`one_feature_neighbours` on distinct rows' codes and numeric values."""
    n, d = codes.shape
    if n < 2 or d < 2:
        return 0.0, None, None
    has_twin = np.zeros(n, dtype=bool)
    regular, steps_in_groups = 0, 0
    pooled: list[np.ndarray] = []
    for j in range(d):
        _, key = np.unique(np.delete(codes, j, axis=1), axis=0, return_inverse=True)
        key = key.ravel()
        in_group = np.bincount(key)[key] >= 2  # distinct rows sharing every other feature differ in this one
        has_twin |= in_group
        column = values[:, j]
        if not in_group.any() or np.isnan(column).all():
            continue
        order = np.lexsort((column, key))
        sorted_key = key[order]
        gaps = np.round(np.diff(column[order]), _DECIMALS)
        valid = (sorted_key[1:] == sorted_key[:-1]) & np.isfinite(gaps)
        if not valid.any():
            continue
        group, gap = sorted_key[1:][valid], gaps[valid]
        pooled.append(gap)
        steps = np.bincount(group)
        pairs, pair_counts = np.unique(np.column_stack([group, gap.view(np.int64)]), axis=0, return_counts=True)
        modal = np.zeros(len(steps), dtype=np.int64)
        np.maximum.at(modal, pairs[:, 0], pair_counts)
        wide = steps >= 2  # a lone step is regular by definition: no evidence either way
        regular += int(modal[wide].sum())
        steps_in_groups += int(steps[wide].sum())
    regularity = regular / steps_in_groups if steps_in_groups else None
    entropy = None
    if pooled:
        all_gaps = np.concatenate(pooled)
        if all_gaps.size >= 2:
            _, counts = np.unique(all_gaps, return_counts=True)
            p = counts / counts.sum()
            entropy = float(max(0.0, -(p * np.log(p)).sum() / math.log(all_gaps.size)))
    return float(has_twin.mean()), regularity, entropy


def one_blas_thread() -> Any:
    """Nearest-neighbour products here are small: waking BLAS threads costs more than they
    save (measured: 23 ms against 7 ms for 500 rows on a busy 2-core machine)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    # inspecting the loaded libraries takes ~5 ms: done once per process, not per call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _parts(a: np.ndarray, b: np.ndarray, groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each group of columns' part of the squared distances between the rows of ``a`` and ``b``."""
    parts = []
    for columns in groups:
        if len(columns) == 1:  # a numeric feature: an outer difference, no product needed
            j = int(columns[0])
            parts.append(np.square(a[:, j][:, None] - b[:, j][None, :]))
            continue
        x, y = a[:, columns], b[:, columns]
        one_hot = _one_hot(x, y)
        if one_hot is not None:  # a category: 2 v^2 apart when the categories differ, else 0
            (px, py), value = one_hot
            parts.append((px[:, None] != py[None, :]) * (2.0 * value * value))
            continue
        parts.append(np.einsum("ij,ij->i", x, x)[:, None] + np.einsum("ij,ij->i", y, y)[None, :] - 2.0 * x @ y.T)
    return parts


def _one_hot(x: np.ndarray, y: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], float] | None:
    """The position of each row's one non-zero value, when every row of ``x`` and ``y`` holds
    exactly one and all hold the same value (a one-hot encoded category), else ``None``."""
    both = np.vstack([x, y])
    if both.size == 0 or np.any(np.count_nonzero(both, axis=1) != 1):
        return None
    values = both.max(axis=1)
    if not np.all(values == values[0]) or values[0] <= 0:
        return None
    positions = both.argmax(axis=1)
    return (positions[: len(x)], positions[len(x):]), float(values[0])


def _summed(parts: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    total = np.zeros(shape)
    for part in parts:
        total += part
    return total


def nearest_dropping(queries: np.ndarray, rows: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Distance from each query to its nearest row of ``rows``: one column with all columns of
    the encoding, then one per group of columns left out (see :func:`median_nn_dropping`)."""
    out = np.empty((len(queries), 1 + len(groups)))
    for lo in range(0, len(queries), 512):
        parts = _parts(queries[lo : lo + 512], rows, groups)
        total = _summed(parts, (len(queries[lo : lo + 512]), len(rows)))
        buffer = np.empty_like(total)
        out[lo : lo + 512, 0] = total.min(axis=1)
        for k, part in enumerate(parts):
            out[lo : lo + 512, 1 + k] = np.subtract(total, part, out=buffer).min(axis=1)
    return np.sqrt(np.maximum(out, 0.0))


def median_nn_dropping(x: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Median distance from each row to its nearest other row, with all columns (first) and
    with each group of columns left out (then one per group), brute force: at most
    ``max_spread_rows`` rows reach here, and matrix products beat a tree in 20 dimensions.

    Leaving a group out subtracts its part of every squared distance, so the ``1 + groups``
    answers cost one product per group rather than one search each.
    """
    out = np.full(1 + len(groups), np.nan)
    if len(x) < 2:
        return out
    parts = _parts(x, x, groups)
    total = _summed(parts, (len(x), len(x)))
    # a row is not its own neighbour; every group's part of a row's distance to itself is 0
    total[np.arange(len(x)), np.arange(len(x))] = np.inf
    buffer = np.empty_like(total)
    nearest = [total.min(axis=1)] + [np.subtract(total, part, out=buffer).min(axis=1) for part in parts]
    medians: np.ndarray = np.median(np.sqrt(np.maximum(np.asarray(nearest), 0.0)), axis=1)
    return medians
