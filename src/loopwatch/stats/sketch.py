"""Mergeable summaries of a reference column, built once when a profile is made.

:class:`NumericSummary` keeps the sorted values themselves while they number
at most ``max_points``; beyond that it keeps ``max_points`` values at evenly
spaced ranks, ``sorted[floor((i + 1/2) n / k)]`` for ``i = 0..k-1``.

Rank error bound. Write ``F(x)`` for the fraction of the ``n`` values that
are ``<= x`` and ``F_s(x)`` for the fraction of the ``k`` summary points that
are ``<= x``. Point ``i`` is ``<= x`` exactly when its rank is below
``c = n F(x)``, i.e. when ``(i + 1/2) n / k < c``, so
``F_s(x) = ceil(k F(x) - 1/2) / k`` and, for every ``x``,
``|F_s(x) - F(x)| <= 1 / (2k)``. That is ``rank_error`` (0 when exact). A KS
statistic against a summary is therefore within ``rank_error`` of the one
against the full data.

Merging. Two exact summaries whose union fits are merged exactly. Otherwise
each point stands for ``n / k`` rows of its side; the union of the two
weighted point sets has a CDF within ``(n_a e_a + n_b e_b) / (n_a + n_b)`` of
the truth, and taking ``k`` points at evenly spaced ranks of that weighted
CDF (the same rule as above, done in exact integer arithmetic) adds at most
``1 / (2k)``. So merged ``rank_error = (n_a e_a + n_b e_b) / n + 1 / (2k)``:
merging two exact parts that do not fit gives exactly the summary of their
concatenation, and every level of a merge tree over summaries adds ``1/(2k)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from loopwatch.errors import InvalidInput, echo

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_MAX_POINTS = 100_000
IQR_PER_SD = 1.349  # interquartile range of the standard normal


def _as_float_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numeric") from exc
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInput(f"{name} is empty")
    return arr


def finite_array(values: npt.ArrayLike, *, name: str = "values") -> FloatArray:
    """A non-empty 1-D float64 array without NaN or inf, else :class:`InvalidInput`."""
    arr = _as_float_1d(values, name)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} contains NaN or infinite values; drop missing values first")
    return arr


def sorted_finite_array(values: npt.ArrayLike, *, name: str = "values") -> FloatArray:
    """Like :func:`finite_array` for input that must already be sorted ascending.

    One pass suffices: a NaN breaks the ordering check, and in sorted data an
    infinity can only sit at an end.
    """
    arr = _as_float_1d(values, name)
    if arr.size > 1 and not bool(np.all(arr[1:] >= arr[:-1])):
        if np.isnan(arr).any():
            raise InvalidInput(f"{name} contains NaN values; drop missing values first")
        raise InvalidInput(f"{name} must be sorted ascending")
    if not (math.isfinite(arr[0]) and math.isfinite(arr[-1])):
        raise InvalidInput(f"{name} contains NaN or infinite values; drop missing values first")
    return arr


def scale_of(std: float, iqr: float) -> float:
    """The unit Wasserstein is divided by: std, else iqr/1.349, else 1.0."""
    if std > 0:
        return float(std)
    if iqr > 0:
        return float(iqr) / IQR_PER_SD
    return 1.0


def counts_below_edges(sorted_values: FloatArray, edges: FloatArray) -> IntArray:
    """Counts in the bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` of sorted data."""
    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [sorted_values.size]))).astype(np.int64)


def _even_rank_indices(n: int, k: int) -> IntArray:
    i = np.arange(k, dtype=np.int64)
    return ((2 * i + 1) * n) // (2 * k)


def _linear_quantile(sorted_values: FloatArray, q: float) -> float:
    # numpy's default ("linear") definition, read off data that is already sorted
    pos = q * (sorted_values.size - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, sorted_values.size - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _weighted_even_ranks(values: FloatArray, is_a: npt.NDArray[np.bool_], wa: int, wb: int, k: int) -> FloatArray:
    """``k`` points at evenly spaced ranks of a sorted point set whose points
    weigh ``wa`` (where ``is_a``) or ``wb``.

    Point ``i`` is the first value whose cumulative weight ``c`` satisfies
    ``2 k c > (2 i + 1) T``; done in integers so that a rank falling exactly on
    a threshold resolves as in :meth:`NumericSummary.from_values`.
    """
    g = math.gcd(wa, wb)
    wa, wb = wa // g, wb // g
    n_a = int(is_a.sum())
    total = n_a * wa + (is_a.size - n_a) * wb
    if 2 * k * total < 2**62 and max(wa, wb) < 2**62:
        cum: Any = np.cumsum(np.where(is_a, wa, wb).astype(np.int64))
    else:
        # Python integers: slower, but the products above would overflow int64
        cum = np.cumsum(np.where(is_a, wa, wb).astype(object))
    # points at or before each value: #{i : (2i+1) T < 2 k c} = ceil(2kc / T) // 2
    through = np.asarray((-((-2 * k * cum) // total)) // 2, dtype=np.int64)
    reps = np.diff(np.concatenate(([0], through)))
    out: FloatArray = np.repeat(values, reps)
    return out


@dataclass(frozen=True, eq=False)
class NumericSummary:
    """Sorted reference values (exact) or an even-rank quantile summary of them.

    >>> s = NumericSummary.from_values([3.0, 1.0, float("nan"), 2.0, 4.0])
    >>> s.n, s.n_missing, s.rank_error, s.sorted_values.tolist()
    (4, 1, 0.0, [1.0, 2.0, 3.0, 4.0])
    >>> big = NumericSummary.from_values(range(1000), max_points=10)
    >>> big.sorted_values.tolist(), big.rank_error
    ([50.0, 150.0, 250.0, 350.0, 450.0, 550.0, 650.0, 750.0, 850.0, 950.0], 0.05)
    >>> round(big.cdf(499.0), 3), round(big.mean, 1)
    (0.5, 499.5)
    """

    values: FloatArray = field(repr=False)
    n: int
    n_missing: int
    mean: float
    std: float
    minimum: float
    maximum: float
    iqr: float
    rank_error: float
    max_points: int = DEFAULT_MAX_POINTS

    def __post_init__(self) -> None:
        arr = np.array(sorted_finite_array(self.values, name="summary values"), dtype=np.float64)
        arr.flags.writeable = False
        object.__setattr__(self, "values", arr)
        if self.max_points < 2:
            raise InvalidInput("max_points must be at least 2")
        if self.n < arr.size or self.n_missing < 0:
            raise InvalidInput("a summary cannot hold more points than rows")
        if self.rank_error == 0 and arr.size != self.n:
            raise InvalidInput("a summary with rank_error 0 must hold every value")
        stats = (self.mean, self.std, self.minimum, self.maximum, self.iqr, self.rank_error)
        if not all(math.isfinite(x) for x in stats) or self.std < 0 or self.iqr < 0:
            raise InvalidInput("summary statistics must be finite and non-negative where it matters")

    @classmethod
    def from_values(cls, values: npt.ArrayLike, *, max_points: int = DEFAULT_MAX_POINTS) -> NumericSummary:
        """Summarise raw values; NaN are dropped and counted in ``n_missing``."""
        arr = _as_float_1d(values, "values")
        missing = np.isnan(arr)
        n_missing = int(missing.sum())
        data = arr[~missing] if n_missing else arr
        if data.size == 0:
            raise InvalidInput("values has no non-missing entries")
        if np.isinf(data).any():
            raise InvalidInput("values contains infinite entries")
        return cls.from_sorted(np.sort(data), n_missing=n_missing, max_points=max_points)

    @classmethod
    def from_sorted(
        cls, sorted_values: npt.ArrayLike, *, n_missing: int = 0, max_points: int = DEFAULT_MAX_POINTS
    ) -> NumericSummary:
        """Summarise values that are already sorted and free of NaN."""
        s = sorted_finite_array(sorted_values, name="sorted_values")
        if max_points < 2:
            raise InvalidInput("max_points must be at least 2")
        n = int(s.size)
        lo, hi = float(s[0]), float(s[-1])
        if lo == hi:
            # np.std of a constant can come out as 1e-17, which would blow up a normalised distance
            mean, std = lo, 0.0
        else:
            mean, std = float(s.mean()), float(s.std())
        iqr = _linear_quantile(s, 0.75) - _linear_quantile(s, 0.25)
        if n <= max_points:
            return cls(s, n, n_missing, mean, std, lo, hi, iqr, 0.0, max_points)
        points = s[_even_rank_indices(n, max_points)]
        return cls(points, n, n_missing, mean, std, lo, hi, iqr, 0.5 / max_points, max_points)

    @property
    def exact(self) -> bool:
        return self.rank_error == 0

    @property
    def sorted_values(self) -> FloatArray:
        """The reference for KS and Wasserstein; each point stands for ``n / len`` rows."""
        return self.values

    @property
    def scale(self) -> float:
        return scale_of(self.std, self.iqr)

    @overload
    def cdf(self, x: float) -> float: ...
    @overload
    def cdf(self, x: npt.NDArray[Any]) -> FloatArray: ...
    def cdf(self, x: float | npt.NDArray[Any]) -> float | FloatArray:
        """Fraction of rows ``<= x``, within ``rank_error`` of the exact value."""
        out = np.searchsorted(self.values, x, side="right") / self.values.size
        return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)

    @overload
    def quantile(self, q: float) -> float: ...
    @overload
    def quantile(self, q: npt.NDArray[Any]) -> FloatArray: ...
    def quantile(self, q: float | npt.NDArray[Any]) -> float | FloatArray:
        """numpy's linear quantile when exact; otherwise the points sit at ranks
        ``(i + 1/2)/k`` and the minimum and maximum at 0 and 1, linearly joined."""
        qa = np.asarray(q, dtype=np.float64)
        if not (np.isfinite(qa).all() and (qa >= 0).all() and (qa <= 1).all()):
            raise InvalidInput("quantile levels must lie in [0, 1]")
        if self.exact:
            out = np.quantile(self.values, qa)
        else:
            k = self.values.size
            pos = np.concatenate(([0.0], (np.arange(k) + 0.5) / k, [1.0]))
            pts = np.concatenate(([self.minimum], self.values, [self.maximum]))
            out = np.interp(qa, pos, pts)
        return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)

    def bin_counts(self, edges: npt.ArrayLike) -> FloatArray:
        """Rows per bin ``(-inf, e0), [e0, e1), ...``: each point weighs ``n / len`` rows."""
        e = sorted_finite_array(edges, name="edges")
        # int64 counts times a Python float: already float64, so asarray does not copy
        return np.asarray(counts_below_edges(self.values, e) * (self.n / self.values.size), dtype=np.float64)

    def merge(self, other: NumericSummary) -> NumericSummary:
        """The summary of both parts; see the module docstring for the error bound.

        The result keeps the larger ``max_points`` of the two; mean and std
        combine exactly (pooled moments), the iqr is exact when both parts are.

        >>> a = NumericSummary.from_values([1.0, 5.0]); b = NumericSummary.from_values([2.0, 3.0])
        >>> a.merge(b).sorted_values.tolist()
        [1.0, 2.0, 3.0, 5.0]
        """
        if not isinstance(other, NumericSummary):
            raise InvalidInput("can only merge a NumericSummary with another")
        n = self.n + other.n
        k = max(self.max_points, other.max_points)
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.n * self.std**2 + other.n * other.std**2 + delta**2 * self.n * other.n / n
        lo, hi = min(self.minimum, other.minimum), max(self.maximum, other.maximum)
        std = 0.0 if lo == hi else math.sqrt(max(m2 / n, 0.0))
        mean = lo if lo == hi else mean
        n_missing = self.n_missing + other.n_missing
        if self.exact and other.exact:
            both = np.sort(np.concatenate((self.values, other.values)), kind="stable")
            iqr = _linear_quantile(both, 0.75) - _linear_quantile(both, 0.25)
            if n <= k:
                return NumericSummary(both, n, n_missing, mean, std, lo, hi, iqr, 0.0, k)
            return NumericSummary(both[_even_rank_indices(n, k)], n, n_missing, mean, std, lo, hi, iqr,
                                  0.5 / k, k)
        both = np.concatenate((self.values, other.values))
        order = np.argsort(both, kind="stable")
        # a point of one side stands for n_side / k_side rows; scaled to integers
        wa, wb = self.n * other.values.size, other.n * self.values.size
        k_out = min(k, n)
        points = _weighted_even_ranks(both[order], order < self.values.size, wa, wb, k_out)
        error = (self.n * self.rank_error + other.n * other.rank_error) / n + 0.5 / k_out
        merged = NumericSummary(points, n, n_missing, mean, std, lo, hi, 0.0, error, k)
        iqr = merged.quantile(0.75) - merged.quantile(0.25)
        return NumericSummary(points, n, n_missing, mean, std, lo, hi, iqr, error, k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "values": [float(v) for v in self.values.tolist()],
            "n": self.n,
            "n_missing": self.n_missing,
            "mean": self.mean,
            "std": self.std,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "iqr": self.iqr,
            "rank_error": self.rank_error,
            "max_points": self.max_points,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        try:
            return cls(
                np.asarray(data["values"], dtype=np.float64),
                int(data["n"]),
                int(data["n_missing"]),
                float(data["mean"]),
                float(data["std"]),
                float(data["minimum"]),
                float(data["maximum"]),
                float(data["iqr"]),
                float(data["rank_error"]),
                int(data.get("max_points", DEFAULT_MAX_POINTS)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"not a numeric summary: {exc}") from exc


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


@dataclass(frozen=True)
class CategoricalSummary:
    """Counts per category (as strings) plus the number of missing values.

    >>> s = CategoricalSummary.from_values(["a", "b", "a", None, float("nan")])
    >>> s.counts, s.n, s.n_missing
    ({'a': 2, 'b': 1}, 3, 2)
    >>> s.merge(CategoricalSummary.from_values(["c"])).frequencies["a"]
    0.5
    """

    counts: dict[str, int]
    n_missing: int = 0

    def __post_init__(self) -> None:
        clean: dict[str, int] = {}
        for key, value in self.counts.items():
            if not isinstance(key, str):
                raise InvalidInput(f"category labels must be strings, got {echo(key)}")
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"count of {echo(key)} must be a non-negative integer, got {echo(value)}")
            if value:
                clean[key] = int(value)
        if not clean:
            raise InvalidInput("a categorical summary needs at least one non-missing value")
        if self.n_missing < 0:
            raise InvalidInput("n_missing must be non-negative")
        object.__setattr__(self, "counts", dict(sorted(clean.items())))

    @classmethod
    def from_values(cls, values: Iterable[object]) -> CategoricalSummary:
        """Count values as ``str(value)``; None and NaN are missing."""
        arr = values if isinstance(values, np.ndarray) else np.asarray(list(values))
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidInput("values must be a non-empty one-dimensional sequence")
        if arr.dtype.kind in "US":
            labels, counts = np.unique(arr, return_counts=True)
            return cls({str(k): int(c) for k, c in zip(labels.tolist(), counts.tolist())})
        counter: Counter[str] = Counter()
        missing = 0
        for v in arr.tolist():
            if _is_missing(v):
                missing += 1
            else:
                counter[str(v)] += 1
        return cls(dict(counter), missing)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def frequencies(self) -> dict[str, float]:
        n = self.n
        return {k: v / n for k, v in self.counts.items()}

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        if not isinstance(other, CategoricalSummary):
            raise InvalidInput("can only merge a CategoricalSummary with another")
        total = Counter(self.counts)
        total.update(other.counts)
        return CategoricalSummary(dict(total), self.n_missing + other.n_missing)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "counts": dict(self.counts), "n_missing": self.n_missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        try:
            return cls(dict(data["counts"]), int(data.get("n_missing", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"not a categorical summary: {exc}") from exc
