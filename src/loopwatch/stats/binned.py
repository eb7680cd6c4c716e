"""Histogram distances: PSI, KL, Jensen-Shannon, Hellinger on two count vectors.

Numeric features are binned at reference quantiles (:func:`quantile_edges`,
computed once with the profile); the current window's counts come from
``searchsorted`` of the edges into the already sorted current values
(:func:`bin_counts`, ``O(bins log n)``). Categorical features are aligned on the
union of their categories (:func:`align_categories`).

Conventions shared by every distance here:

* ``ref`` and ``cur`` are counts (non-negative, any scale) over the same bins;
  ``p`` and ``q`` are the reference and current frequencies.
* Bins empty on *both* sides are dropped first: they carry no information, and
  dropping them makes the value independent of how many there are (duplicate
  edges, categories absent from both windows).
* ``psi`` and ``kl_divergence`` add ``smoothing`` pseudo-counts (default 0.5)
  to every remaining bin of both sides *before* normalising, so a bin empty on
  one side gives a large but finite value instead of infinity
  (``smoothing=0`` turns that off and may return ``inf``).
* ``js_distance`` and ``hellinger`` are bounded and need no smoothing.

The ``*_rows`` functions compute the same values along the last axis of 2-D
count arrays; the bootstrap calibration uses them on all replicates at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from loopwatch.errors import InvalidInput, echo
from loopwatch.stats.sketch import (
    CategoricalSummary,
    FloatArray,
    IntArray,
    NumericSummary,
    counts_below_edges,
    sorted_finite_array,
)

LN2 = float(np.log(2.0))
Counts = Mapping[str, float] | CategoricalSummary


def quantile_edges(reference_sorted: NumericSummary | npt.ArrayLike, *, n_bins: int = 10) -> FloatArray:
    """Interior bin edges at reference quantiles, ties merged.

    Edge ``j`` is ``sorted[floor(j N / n_bins)]`` for ``j = 1..n_bins-1``, so,
    with values equal to an edge counted in the bin to its right, bin ``j``
    holds exactly the sorted positions ``[floor(j N/B), floor((j+1) N/B))``
    when there are no ties. Repeated values (ties) collapse to one edge, so a
    discrete feature may get fewer bins; an edge at the minimum leaves the
    first bin ``(-inf, min)`` empty in the reference, which is where values
    below the reference range land.

    >>> quantile_edges(np.arange(100.0), n_bins=4).tolist()
    [25.0, 50.0, 75.0]
    >>> quantile_edges([0.0, 0.0, 0.0, 1.0, 1.0, 2.0], n_bins=3).tolist()
    [0.0, 1.0]
    """
    if isinstance(reference_sorted, NumericSummary):
        values = reference_sorted.sorted_values
    else:
        values = sorted_finite_array(reference_sorted, name="reference_sorted")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise InvalidInput("n_bins must be an integer >= 2")
    ranks = (np.arange(1, n_bins, dtype=np.int64) * values.size) // n_bins
    return np.unique(values[ranks])


def bin_counts(sorted_values: npt.ArrayLike, edges: npt.ArrayLike) -> IntArray:
    """Counts in ``(-inf, e0), [e0, e1), ..., [e_last, inf)``: ``len(edges) + 1`` bins.

    A value equal to an edge goes to the bin on its right, for reference and
    current alike. The input must be sorted (it is, once per feature).

    >>> bin_counts([0.0, 1.0, 1.0, 2.0, 3.0], [1.0, 3.0]).tolist()
    [1, 3, 1]
    """
    values = sorted_finite_array(sorted_values, name="sorted_values")
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or not np.isfinite(e).all() or (e.size > 1 and not np.all(e[1:] > e[:-1])):
        raise InvalidInput("edges must be finite and strictly increasing")
    return counts_below_edges(values, e)


def count_mapping(counts: Counts, name: str = "counts") -> Mapping[str, float]:
    """The label -> count mapping of a dict or summary, validated (non-negative, finite)."""
    mapping = counts.counts if isinstance(counts, CategoricalSummary) else counts
    if not isinstance(mapping, Mapping):
        raise InvalidInput(f"{name} must map category labels to counts")
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise InvalidInput(f"{name}: category labels must be strings, got {echo(key)}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInput(f"{name}: count of {echo(key)} is not a number")
        if not (np.isfinite(value) and value >= 0):
            raise InvalidInput(f"{name}: count of {echo(key)} must be finite and non-negative")
    return mapping


def align_categories(reference_counts: Counts, current_counts: Counts) -> tuple[list[str], FloatArray, FloatArray]:
    """Both count tables over the sorted union of their labels (unseen ones as 0).

    >>> align_categories({"b": 2, "a": 1}, {"c": 4, "a": 3})
    (['a', 'b', 'c'], array([1., 2., 0.]), array([3., 0., 4.]))
    """
    ref = count_mapping(reference_counts, "reference_counts")
    cur = count_mapping(current_counts, "current_counts")
    labels = sorted(set(ref) | set(cur))
    ref_vec = np.array([float(ref.get(k, 0)) for k in labels], dtype=np.float64)
    cur_vec = np.array([float(cur.get(k, 0)) for k in labels], dtype=np.float64)
    return labels, ref_vec, cur_vec


def _pair(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(cur, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise InvalidInput(f"need two non-empty count vectors of the same length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a < 0).any() or (b < 0).any():
        raise InvalidInput("counts must be finite and non-negative")
    if a.sum() <= 0 or b.sum() <= 0:
        raise InvalidInput("each count vector needs a positive total")
    return a, b


def _check_smoothing(smoothing: float) -> float:
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise InvalidInput("smoothing must be a finite number >= 0")
    return float(smoothing)


def _frequencies(a: FloatArray, b: FloatArray, smoothing: float) -> tuple[FloatArray, FloatArray]:
    kept = (a + b) > 0
    a_s = np.where(kept, a + smoothing, 0.0)
    b_s = np.where(kept, b + smoothing, 0.0)
    return a_s / a_s.sum(axis=-1, keepdims=True), b_s / b_s.sum(axis=-1, keepdims=True)


def _xlogy_ratio(x: FloatArray, y: FloatArray) -> FloatArray:
    """``x ln(x / y)`` with ``0 ln 0 = 0`` and ``x ln(x/0) = inf``."""
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape))
    pos = x > 0
    with np.errstate(divide="ignore"):
        np.multiply(x, np.log(x, where=pos, out=np.ones_like(x)) - np.log(y, where=pos, out=np.ones_like(y)),
                    where=pos, out=out)
    return out


def psi_rows(ref: FloatArray, cur: FloatArray, smoothing: float = 0.5) -> FloatArray:
    p, q = _frequencies(ref, cur, smoothing)
    # (q - p) ln(q/p) = q ln(q/p) + p ln(p/q): psi is the symmetrised KL
    return np.asarray(np.sum(_xlogy_ratio(q, p) + _xlogy_ratio(p, q), axis=-1))


def kl_rows(ref: FloatArray, cur: FloatArray, smoothing: float = 0.5) -> FloatArray:
    p, q = _frequencies(ref, cur, smoothing)
    return np.asarray(np.sum(_xlogy_ratio(q, p), axis=-1))


def js_rows(ref: FloatArray, cur: FloatArray, smoothing: float = 0.0) -> FloatArray:
    p, q = _frequencies(ref, cur, 0.0)
    m = (p + q) / 2.0
    div = (np.sum(_xlogy_ratio(p, m), axis=-1) + np.sum(_xlogy_ratio(q, m), axis=-1)) / (2.0 * LN2)
    return np.asarray(np.sqrt(np.clip(div, 0.0, 1.0)))


def hellinger_rows(ref: FloatArray, cur: FloatArray, smoothing: float = 0.0) -> FloatArray:
    p, q = _frequencies(ref, cur, 0.0)
    # 1 - sum sqrt(pq) written as a sum of squares: exactly 0 for identical inputs, never negative
    h2 = 0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=-1)
    return np.asarray(np.sqrt(np.clip(h2, 0.0, 1.0)))


ROW_DISTANCES: dict[str, Callable[[FloatArray, FloatArray, float], FloatArray]] = {
    "psi": psi_rows,
    "kl_divergence": kl_rows,
    "js_distance": js_rows,
    "hellinger": hellinger_rows,
}


def psi(ref: npt.ArrayLike, cur: npt.ArrayLike, *, smoothing: float = 0.5) -> float:
    """Population stability index ``sum (q - p) ln(q / p)`` = KL(q||p) + KL(p||q).

    Symmetric in its arguments and >= 0; ``smoothing`` pseudo-counts are added
    to every bin of both sides before normalising (see the module docstring).

    >>> round(psi([50, 50], [50, 50]), 6), round(psi([50, 50], [30, 70]), 4)
    (0.0, 0.1659)
    """
    a, b = _pair(ref, cur)
    return float(psi_rows(a, b, _check_smoothing(smoothing)))


def kl_divergence(ref: npt.ArrayLike, cur: npt.ArrayLike, *, smoothing: float = 0.5) -> float:
    """KL(current || reference) = ``sum q ln(q / p)``, in nats.

    Direction: ``q`` (current) is the distribution the data now follow and
    ``p`` (reference) the model of it we hold; the value is the information
    lost when the reference stands in for the current window. ``smoothing``
    pseudo-counts are added to every bin of both sides before normalising, so
    a current bin the reference never saw gives a large finite value, not inf.

    >>> round(kl_divergence([50, 50], [30, 70]), 4)
    0.0806
    """
    a, b = _pair(ref, cur)
    return float(kl_rows(a, b, _check_smoothing(smoothing)))


def js_distance(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Jensen-Shannon *distance* (square root of the divergence, base 2), in [0, 1].

    Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; symmetric,
    finite for empty bins, so no smoothing.

    >>> js_distance([1, 0], [0, 1]), round(js_distance([50, 50], [30, 70]), 4)
    (1.0, 0.1741)
    """
    a, b = _pair(ref, cur)
    return float(js_rows(a, b))


def hellinger(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))`` in [0, 1].

    >>> hellinger([1, 0], [0, 1]), round(hellinger([50, 50], [30, 70]), 4)
    (1.0, 0.1452)
    """
    a, b = _pair(ref, cur)
    return float(hellinger_rows(a, b))


def categorical_distances(reference_counts: Counts, current_counts: Counts, *,
                          smoothing: float = 0.5) -> dict[str, Any]:
    """All four distances of two categorical count tables, aligned on the union.

    >>> d = categorical_distances({"a": 50, "b": 50}, {"a": 30, "b": 70})
    >>> {k: round(v, 4) for k, v in d.items()}
    {'psi': 0.1659, 'kl_divergence': 0.0806, 'js_distance': 0.1741, 'hellinger': 0.1452}
    """
    _, ref, cur = align_categories(reference_counts, current_counts)
    a, b = _pair(ref, cur)
    s = _check_smoothing(smoothing)
    return {name: float(fn(a, b, s)) for name, fn in ROW_DISTANCES.items()}
