"""Counts of non-negative integers on fixed log-spaced bins: latencies, label delays.

The bin edges are fixed for every window and every model (``2 ** (i / BINS_PER_OCTAVE)``),
so counts add up exactly and a quantile read from merged windows is the one read from the
rows, to within its bin. Bin 0 holds zero; bin ``i >= 1`` holds ``[2**((i-1)/B), 2**(i/B))``.
With 16 bins per octave a bin is 4.4% wide: a quantile read from the bins is known to that
width, and :class:`Quantile` says where the exact one lies. Values are integers (latency in
microseconds, delay in seconds), so their sum is exact too. Size: one count per occupied
bin, at most ``16 * log2(largest value) + 2`` (590 for anything under 2**36).

>>> h = LogHistogram.from_values([100, 120, 130, 5000], missing=1)
>>> h.n, h.n_missing, h.total, h.min, h.max
(4, 1, 5350, 100, 5000)
>>> q = h.quantile(0.5)
>>> q.low <= 120 <= q.high
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.summaries.part import freeze_fields

#: Bins per doubling of the value: each bin is ``2 ** (1/16) - 1`` = 4.4% wide.
BINS_PER_OCTAVE = 16


def bin_of(values: np.ndarray) -> np.ndarray:
    """The bin of each non-negative integer value."""
    values = np.asarray(values, dtype=np.int64)
    out = np.zeros(len(values), dtype=np.int64)
    positive = values > 0
    out[positive] = np.floor(BINS_PER_OCTAVE * np.log2(values[positive].astype(np.float64))).astype(np.int64) + 1
    return out


def bin_edges(index: int) -> tuple[float, float]:
    """The half-open range ``[low, high)`` of bin ``index``."""
    if index == 0:
        return 0.0, 1.0
    return 2.0 ** ((index - 1) / BINS_PER_OCTAVE), 2.0 ** (index / BINS_PER_OCTAVE)


@dataclass(frozen=True)
class Quantile:
    """A quantile read from the bins: ``value`` (the bin's geometric middle, clipped to the
    data's range), and ``[low, high]``, where the exact quantile of the values lies (the
    smallest value whose share of values at or below it reaches ``q``)."""

    q: float
    value: float
    low: float
    high: float

    @property
    def relative_error(self) -> float:
        """How far, relatively, ``value`` can be from the exact quantile."""
        if self.value == 0:
            return 0.0 if self.high == 0 else math.inf
        return max(self.value - self.low, self.high - self.value) / self.value


@dataclass(frozen=True, kw_only=True)
class LogHistogram:
    """Exact counts of non-negative integers on the fixed log-spaced bins, with their exact sum,
    minimum and maximum, and a count of missing values (a latency nobody measured)."""

    counts: Mapping[int, int] = field(default_factory=dict)
    total: int = 0
    min: int | None = None
    max: int | None = None
    n_missing: int = 0

    def __post_init__(self) -> None:
        freeze_fields(self, "counts")

    @property
    def n(self) -> int:
        """Values counted (missing ones apart)."""
        return sum(self.counts.values())

    @classmethod
    def from_values(cls, values: Iterable[int] | np.ndarray, *, missing: int = 0) -> LogHistogram:
        array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
        if array.size and (not np.issubdtype(array.dtype, np.integer) or int(array.min()) < 0):
            raise InvalidInput("log-binned values must be non-negative integers")
        if array.size == 0:
            return cls(n_missing=missing)
        bins, counts = np.unique(bin_of(array), return_counts=True)
        return cls(
            counts={int(b): int(c) for b, c in zip(bins, counts)},
            # Python ints: a sum of int64 values can overflow int64, a Python int cannot
            total=sum(int(s) for s in np.add.reduceat(array.astype(np.int64), np.arange(0, array.size, 1 << 20))),
            min=int(array.min()), max=int(array.max()), n_missing=missing,
        )

    def merge(self, other: LogHistogram, /) -> LogHistogram:
        counts = dict(self.counts)
        for b, c in other.counts.items():
            counts[b] = counts.get(b, 0) + c
        lows = [v for v in (self.min, other.min) if v is not None]
        highs = [v for v in (self.max, other.max) if v is not None]
        return LogHistogram(
            counts=dict(sorted(counts.items())), total=self.total + other.total,
            min=min(lows) if lows else None, max=max(highs) if highs else None,
            n_missing=self.n_missing + other.n_missing,
        )

    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def quantile(self, q: float) -> Quantile:
        """The ``q`` quantile (numpy's ``inverted_cdf``), with the range the exact one lies in."""
        if not 0 <= q <= 1:
            raise InvalidInput(f"a quantile needs q in [0, 1], got {q}")
        n = self.n
        if n == 0 or self.min is None or self.max is None:
            return Quantile(q, math.nan, math.nan, math.nan)
        rank = max(1, math.ceil(q * n))  # the rank-th smallest value
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                low, high = bin_edges(b)
                # integers: the largest one in [low, high) is ceil(high) - 1
                low, high = max(float(math.ceil(low)), self.min), min(float(math.ceil(high) - 1), self.max)
                return Quantile(q, math.sqrt(low * high) if low > 0 else low, low, high)
        raise AssertionError("unreachable: the counts add up to n")

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(b): c for b, c in sorted(self.counts.items())},
            "total": self.total, "min": self.min, "max": self.max, "n_missing": self.n_missing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogHistogram:
        return cls(
            counts={int(b): int(c) for b, c in data["counts"].items()}, total=int(data["total"]),
            min=None if data["min"] is None else int(data["min"]),
            max=None if data["max"] is None else int(data["max"]), n_missing=int(data["n_missing"]),
        )
