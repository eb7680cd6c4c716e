"""The summary part of one numeric feature over a window.

Exact, and merged exactly (identical in any order and grouping):

* ``count`` of finite values, ``n_null`` (NaN or None) and ``n_nonfinite`` (+-inf);
* ``minimum`` and ``maximum`` of the finite values;
* ``total`` and ``total_squares``: :class:`~loopwatch.summaries.exact_sum.ExactSum`, so
  the mean and the variance are the correctly rounded values of the exact ones;
* ``bins``: counts on FIXED ``edges``, the reference's quantile edges
  (:func:`loopwatch.stats.binned.quantile_edges`), in the bins ``(-inf, e0), [e0, e1),
  ..., [e_last, inf)`` exactly as :func:`loopwatch.stats.binned.bin_counts` counts raw
  rows, with the two overflow bins at the ends. Parts on different edges do not merge.

Within a stated bound: ``kll``, an Apache DataSketches KLL quantile sketch of the finite
values (serialised bytes), for KS and Wasserstein. With ``k = 600`` (:data:`DEFAULT_K`)
its normalized rank error is 0.0046 (:func:`kll_rank_error`): with 99% confidence every
rank the sketch reports, at every point at once (measured below; DataSketches states it
as the 99th percentile of the largest rank error of a sketch), is within 0.0046 of the
exact fraction of values at or below that point. While a window holds fewer values than
the sketch keeps (about ``k``), it keeps them all and its error is 0.
A serialised sketch takes about 11.6 kB at 10k values, 13.3 kB at 40k and 14 kB at 1M
(it grows with ``log(n / k)``), so a year of hourly windows is about 115 MB per feature
before any rollup of old windows.

Non-finite values (+-inf) are counted in ``n_nonfinite`` and kept out of every other
field: ingest refuses them, so they should never arrive, but a window must still be
summarised if one does, and it stays visible in the count.

>>> p = NumericPart.from_values([1.0, 2.0, None, 3.0, float("inf")], edges=[2.0])
>>> p.n, p.count, p.n_null, p.n_nonfinite, p.bins, p.mean, p.rank_error
(5, 3, 1, 1, (1, 2), 2.0, 0.0)
>>> q = p.merge(NumericPart.from_values([10.0], edges=[2.0]))
>>> q.count, q.maximum, q.bins, q.mean, round(q.std, 6)
(4, 10.0, (1, 3), 4.0, 3.535534)
>>> NumericPart.from_dict(q.to_dict()) == q
True
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.frames import is_missing
from loopwatch.summaries.exact_sum import ExactSum

FloatArray = npt.NDArray[np.float64]

#: KLL's size parameter: the smallest round k whose stated rank error (0.0046) keeps the
#: sketch KS statistic within 0.005 of the exact one (benchmarks/bench_sketch_quality.py).
DEFAULT_K = 600


def kll_rank_error(k: int = DEFAULT_K) -> float:
    """DataSketches' normalized rank error of a KLL sketch of size ``k`` (99% confidence).

    >>> round(kll_rank_error(), 4)
    0.0046
    """
    from datasketches import kll_doubles_sketch

    return float(kll_doubles_sketch.get_normalized_rank_error(int(k), False))


def _empty_sketch(k: int) -> bytes:
    from datasketches import kll_doubles_sketch

    if isinstance(k, bool) or not isinstance(k, int) or not 8 <= k <= 65_535:
        raise InvalidInput(f"KLL k must be an integer in 8..65535, got {echo(k)}")
    return bytes(kll_doubles_sketch(k).serialize())


def _load_sketch(data: bytes) -> Any:
    from datasketches import kll_doubles_sketch

    try:
        return kll_doubles_sketch.deserialize(data)
    except Exception as exc:  # the C++ reader raises several kinds on bad bytes: all mean the same
        raise InvalidInput("not a KLL sketch") from exc


def check_edges(edges: npt.ArrayLike) -> tuple[float, ...]:
    """Bin edges as a tuple: finite, strictly increasing (none at all is one bin).

    >>> check_edges([0.5, 1.5])
    (0.5, 1.5)
    """
    try:
        e = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("bin edges must be numbers") from exc
    if e.ndim != 1 or not np.isfinite(e).all() or (e.size > 1 and not np.all(e[1:] > e[:-1])):
        raise InvalidInput("bin edges must be finite and strictly increasing")
    return tuple(float(v) for v in e.tolist())


def _numbers(values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)  # None becomes NaN
    except (TypeError, ValueError):
        # pandas' missing markers (pd.NA) do not convert: read them as NaN, one value at a time
        try:
            obj = np.asarray(values, dtype=object)
            flat = [math.nan if is_missing(v) else v for v in obj.ravel()]
            arr = np.asarray(flat, dtype=np.float64).reshape(obj.shape)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("a numeric feature's values must be numbers or missing") from exc
    if arr.ndim != 1:
        raise InvalidInput(f"values must be one-dimensional, got shape {arr.shape}")
    return arr


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{key} must be a non-negative integer, got {echo(value)}")
    return value


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"expected a finite number or null, got {echo(value)}")
    return float(value)


@dataclass(frozen=True)
class NumericPart:
    """One numeric feature over a window: exact counts, extremes, sums and bins; a KLL sketch."""

    #: Fields whose value is a sketch: equal within its bound, not byte for byte.
    SKETCH_KEYS: ClassVar[tuple[str, ...]] = ("kll",)

    edges: tuple[float, ...]
    count: int
    n_null: int
    n_nonfinite: int
    minimum: float | None
    maximum: float | None
    total: ExactSum
    total_squares: ExactSum
    bins: tuple[int, ...]
    kll: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", check_edges(self.edges))
        object.__setattr__(self, "bins", tuple(int(b) for b in self.bins))
        for name in ("count", "n_null", "n_nonfinite"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInput(f"{name} must be a non-negative integer")
        if len(self.bins) != len(self.edges) + 1 or min(self.bins) < 0 or sum(self.bins) != self.count:
            raise InvalidInput("bins must be one more than the edges, non-negative, and add up to count")
        if (self.minimum is None) != (self.count == 0) or (self.maximum is None) != (self.count == 0):
            raise InvalidInput("minimum and maximum are set exactly when there are values")
        if self.minimum is not None and self.maximum is not None and not self.minimum <= self.maximum:
            raise InvalidInput("minimum must not exceed maximum")
        if not isinstance(self.kll, bytes):
            raise InvalidInput("kll must be the serialised sketch's bytes")

    # -- building and merging ---------------------------------------------------------------

    @classmethod
    def empty(cls, *, edges: npt.ArrayLike, k: int = DEFAULT_K) -> NumericPart:
        """The identity of :meth:`merge` on these edges."""
        e = check_edges(edges)
        return cls(e, 0, 0, 0, None, None, ExactSum(), ExactSum(), (0,) * (len(e) + 1), _empty_sketch(k))

    @classmethod
    def from_values(cls, values: npt.ArrayLike, *, edges: npt.ArrayLike, k: int = DEFAULT_K) -> NumericPart:
        """Summarise a batch of values (NaN or None for missing)."""
        from datasketches import kll_doubles_sketch

        e = check_edges(edges)
        empty = _empty_sketch(k)  # validates k
        arr = _numbers(values)
        null = np.isnan(arr)
        finite = np.isfinite(arr)
        x = arr[finite]
        n_null = int(null.sum())
        n_nonfinite = int(arr.size - n_null - x.size)
        if x.size == 0:
            return cls(e, 0, n_null, n_nonfinite, None, None, ExactSum(), ExactSum(), (0,) * (len(e) + 1), empty)
        # searchsorted(side="right") counts the edges <= v: a value on an edge goes to its right bin
        bins = np.bincount(np.searchsorted(np.asarray(e, dtype=np.float64), x, side="right"),
                           minlength=len(e) + 1)
        sketch = kll_doubles_sketch(k)
        sketch.update(x)
        return cls(e, int(x.size), n_null, n_nonfinite, float(x.min()), float(x.max()), ExactSum.of(x),
                   ExactSum.of_squares(x), tuple(int(b) for b in bins.tolist()), bytes(sketch.serialize()))

    def merge(self, other: NumericPart, /) -> NumericPart:
        """The part of both windows' rows. Exact fields exactly; the sketch within its bound."""
        if not isinstance(other, NumericPart):
            raise InvalidInput("can only merge a NumericPart with another")
        if other.edges != self.edges:
            raise InvalidInput("numeric parts on different bin edges cannot be merged: rebuild them on one set")
        lows = [v for v in (self.minimum, other.minimum) if v is not None]
        highs = [v for v in (self.maximum, other.maximum) if v is not None]
        if other.count == 0:
            kll = self.kll
        elif self.count == 0:
            kll = other.kll
        else:
            sketch = _load_sketch(self.kll)
            sketch.merge(_load_sketch(other.kll))
            kll = bytes(sketch.serialize())
        return NumericPart(
            self.edges,
            self.count + other.count,
            self.n_null + other.n_null,
            self.n_nonfinite + other.n_nonfinite,
            min(lows) if lows else None,
            max(highs) if highs else None,
            self.total.merge(other.total),
            self.total_squares.merge(other.total_squares),
            tuple(a + b for a, b in zip(self.bins, other.bins)),
            kll,
        )

    # -- what it tells ----------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Rows summarised, missing and non-finite ones included."""
        return self.count + self.n_null + self.n_nonfinite

    @property
    def mean(self) -> float:
        """The correctly rounded mean of the finite values (NaN when there are none)."""
        if self.count == 0:
            return math.nan
        return float(self.total.as_fraction() / self.count)

    @property
    def variance(self) -> float:
        """The population variance, computed exactly and then rounded (NaN without values)."""
        if self.count == 0:
            return math.nan
        s, q = self.total.as_fraction(), self.total_squares.as_fraction()
        return float(max(q / self.count - (s / self.count) ** 2, Fraction(0)))

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.count else math.nan

    def sketch(self) -> Any:
        """The KLL sketch itself (a ``datasketches.kll_doubles_sketch``)."""
        return _load_sketch(self.kll)

    @property
    def rank_error(self) -> float:
        """Bound on ``|sketch CDF - exact CDF|`` at every point (99% confidence); 0 while exact."""
        sketch = self.sketch()
        if sketch.is_empty() or not sketch.is_estimation_mode():
            return 0.0
        return float(sketch.normalized_rank_error(False))

    def cdf_steps(self) -> tuple[FloatArray, FloatArray]:
        """The sketch's CDF as a step function: sorted distinct points and the fraction of values
        at or below each (exact while :attr:`rank_error` is 0).

        >>> xs, fs = NumericPart.from_values([3.0, 1.0, 1.0, 2.0], edges=[]).cdf_steps()
        >>> xs.tolist(), fs.tolist()
        ([1.0, 2.0, 3.0], [0.5, 0.75, 1.0])
        """
        sketch = self.sketch()
        if sketch.is_empty():
            return np.empty(0), np.empty(0)
        items = np.unique(np.array([item for item, _ in sketch], dtype=np.float64))
        # the ranks come from the sketch's own sorted view: iterating a sketch that was merged
        # into (datasketches 5.x) can report weight 1 for every item
        return items, np.asarray(sketch.get_cdf(items, True), dtype=np.float64)[:-1]

    def values_if_exact(self) -> FloatArray | None:
        """Every finite value, sorted, while the sketch still keeps them all; else ``None``."""
        sketch = self.sketch()
        if sketch.is_estimation_mode():
            return None
        pairs = np.array(list(sketch), dtype=np.float64).reshape(-1, 2)
        return np.sort(np.repeat(pairs[:, 0], pairs[:, 1].astype(np.int64)))

    def quantile(self, q: float) -> float:
        """The sketch's quantile: within :attr:`rank_error` in rank of the exact one."""
        if self.count == 0:
            raise InvalidInput("no values: no quantiles")
        if not 0.0 <= q <= 1.0:
            raise InvalidInput("a quantile level lies in [0, 1]")
        return float(self.sketch().get_quantile(float(q), True))

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": list(self.edges),
            "count": self.count,
            "n_null": self.n_null,
            "n_nonfinite": self.n_nonfinite,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "sum": self.total.to_text(),
            "sum_squares": self.total_squares.to_text(),
            "bins": list(self.bins),
            "kll": base64.b64encode(self.kll).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericPart:
        if not isinstance(data, Mapping) or data.get("kind") != "numeric":
            raise InvalidInput("not a numeric summary part")
        try:
            bins = data["bins"]
            if not isinstance(bins, Sequence) or not all(isinstance(b, int) and not isinstance(b, bool)
                                                          for b in bins):
                raise InvalidInput("bins must be a list of integers")
            kll = base64.b64decode(str(data["kll"]), validate=True)
            if _load_sketch(kll).n != data["count"]:
                raise InvalidInput("the sketch does not hold the part's count of values")
            return cls(
                check_edges(data["edges"]),
                _int(data, "count"),
                _int(data, "n_null"),
                _int(data, "n_nonfinite"),
                _float_or_none(data["minimum"]),
                _float_or_none(data["maximum"]),
                ExactSum.from_text(data["sum"]),
                ExactSum.from_text(data["sum_squares"]),
                tuple(bins),
                kll,
            )
        except (KeyError, binascii.Error) as exc:
            raise InvalidInput(f"not a numeric summary part: {exc}") from exc
