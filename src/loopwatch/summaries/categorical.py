"""The summary part of one categorical feature over a window.

Categories are labels as :func:`loopwatch.features.frames.labels_of` makes them, so an
integer code logged as ``3``, ``3.0`` or ``"3"`` is one category, ``"3"``; None and NaN
are missing (``n_null``).

While a window (or a merge of windows) has at most ``cap`` distinct categories (1,000 by
default) the part keeps the exact count of each, and merging is exact in any order. Past
the cap it switches, for good, to two sketches from Apache DataSketches:

* ``frequent``: a frequent-items sketch (``frequent_strings_sketch``, map size 2**10). Each
  category's estimated count is at most :attr:`CategoricalPart.count_error` (0.34% of the
  rows: 3.5 / 1024 of them) above its true count, never below it; categories it does not
  track have at most that many rows.
* ``distinct``: an HLL sketch (``lg_k = 12``, relative standard error 1.6%) of the number of
  distinct categories, which an exact part knows without one.

>>> p = CategoricalPart.from_values(["a", "b", None, 3, 3.0])
>>> p.n, p.count, p.n_null, dict(p.counts or {}), p.exact
(5, 4, 1, {'3': 2, 'a': 1, 'b': 1}, True)
>>> q = p.merge(CategoricalPart.from_values([str(i) for i in range(5)], cap=4))
>>> q.exact, q.cap, round(q.distinct_count()[0]), q.estimated_counts()["3"] <= 3 + q.count_error
(False, 4, 7, True)
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.frames import labels_of

#: Most distinct categories counted exactly.
DEFAULT_CAP = 1_000
#: log2 of the frequent-items sketch's map size: its error is 3.5 / 2**10 of the rows.
FREQUENT_LG_MAP = 10
#: log2 of the HLL sketch's register count: relative standard error 1.04 / sqrt(2**12).
HLL_LG_K = 12


def _frequent(data: bytes | None = None) -> Any:
    from datasketches import frequent_strings_sketch

    if data is None:
        return frequent_strings_sketch(FREQUENT_LG_MAP)
    try:
        return frequent_strings_sketch.deserialize(data)
    except Exception as exc:  # the C++ reader raises several kinds on bad bytes: all mean the same
        raise InvalidInput("not a frequent-items sketch") from exc


def _hll(data: bytes | None = None) -> Any:
    from datasketches import hll_sketch

    if data is None:
        return hll_sketch(HLL_LG_K)
    try:
        return hll_sketch.deserialize(data)
    except Exception as exc:  # the C++ reader raises several kinds on bad bytes: all mean the same
        raise InvalidInput("not an HLL sketch") from exc


def _sketches_of(counts: Mapping[str, int]) -> tuple[bytes, bytes]:
    freq, hll = _frequent(), _hll()
    for label, c in counts.items():
        freq.update(label, c)
        hll.update(label)
    return bytes(freq.serialize()), bytes(hll.serialize_compact())


def _check_cap(cap: Any) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidInput(f"cap must be a positive integer, got {echo(cap)}")
    return cap


@dataclass(frozen=True)
class CategoricalPart:
    """One categorical feature over a window: exact counts up to ``cap`` categories, then sketches."""

    SKETCH_KEYS: ClassVar[tuple[str, ...]] = ("frequent", "distinct")

    count: int
    n_null: int
    #: Exact counts per category (sorted by label, read-only), or ``None`` once past the cap.
    counts: Mapping[str, int] | None
    frequent: bytes | None = None
    distinct: bytes | None = None
    cap: int = DEFAULT_CAP

    def __post_init__(self) -> None:
        _check_cap(self.cap)
        for name in ("count", "n_null"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInput(f"{name} must be a non-negative integer")
        if self.counts is not None:
            if self.frequent is not None or self.distinct is not None:
                raise InvalidInput("a part holds exact counts or sketches, not both")
            clean = {}
            for label, c in self.counts.items():
                if not isinstance(label, str):
                    raise InvalidInput(f"category labels are strings, got {echo(label)}")
                if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                    raise InvalidInput(f"count of {echo(label)} must be a non-negative integer")
                if c:
                    clean[label] = c
            if sum(clean.values()) != self.count or len(clean) > self.cap:
                raise InvalidInput("exact counts must add up to count and number at most cap")
            object.__setattr__(self, "counts", MappingProxyType(dict(sorted(clean.items()))))
        elif not (isinstance(self.frequent, bytes) and isinstance(self.distinct, bytes)):
            raise InvalidInput("a part past its cap holds both sketches")

    @classmethod
    def empty(cls, *, cap: int = DEFAULT_CAP) -> CategoricalPart:
        return cls(0, 0, {}, cap=_check_cap(cap))

    @classmethod
    def from_values(cls, values: Iterable[Any], *, cap: int = DEFAULT_CAP) -> CategoricalPart:
        """Summarise a batch of category values (None or NaN for missing)."""
        _check_cap(cap)
        counter, n_null = _label_counts(values)
        count = sum(counter.values())
        if len(counter) <= cap:
            return cls(count, n_null, dict(counter), cap=cap)
        return cls(count, n_null, None, *_sketches_of(counter), cap=cap)

    def merge(self, other: CategoricalPart, /) -> CategoricalPart:
        """Exact while the union has at most ``cap`` categories; sketches after (the smaller cap wins)."""
        if not isinstance(other, CategoricalPart):
            raise InvalidInput("can only merge a CategoricalPart with another")
        cap = min(self.cap, other.cap)
        count, n_null = self.count + other.count, self.n_null + other.n_null
        for a, b in ((self, other), (other, self)):
            if b.counts == {} and (a.counts is None or len(a.counts) <= cap):
                # nothing to add: the sketches stay byte for byte (the empty part is the identity)
                return CategoricalPart(count, n_null, a.counts, a.frequent, a.distinct, cap=cap)
        if self.counts is not None and other.counts is not None:
            total = Counter(self.counts)
            total.update(other.counts)
            if len(total) <= cap:
                return CategoricalPart(count, n_null, dict(total), cap=cap)
            return CategoricalPart(count, n_null, None, *_sketches_of(total), cap=cap)
        freq, hll = _frequent(), _hll()
        from datasketches import hll_union

        union = hll_union(HLL_LG_K)
        for part in (self, other):
            if part.counts is not None:
                for label, c in part.counts.items():
                    freq.update(label, c)
                    hll.update(label)
            else:
                freq.merge(_frequent(part.frequent))
                union.update(_hll(part.distinct))
        union.update(hll)
        return CategoricalPart(count, n_null, None, bytes(freq.serialize()),
                               bytes(union.get_result().serialize_compact()), cap=cap)

    @property
    def n(self) -> int:
        """Rows summarised, missing ones included."""
        return self.count + self.n_null

    @property
    def exact(self) -> bool:
        return self.counts is not None

    @property
    def count_error(self) -> float:
        """Most rows any category's estimate can be above its true count (0 while exact)."""
        if self.counts is not None:
            return 0.0
        sketch = _frequent(self.frequent)
        return float(sketch.epsilon * sketch.total_weight)

    def estimated_counts(self) -> dict[str, int]:
        """Counts per category: exact, or the frequent-items estimates of the categories the
        sketch tracks (each at most :attr:`count_error` above the truth, never below it)."""
        if self.counts is not None:
            return dict(self.counts)
        from datasketches import frequent_items_error_type

        rows = _frequent(self.frequent).get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return dict(sorted((str(label), int(estimate)) for label, estimate, _low, _high in rows))

    def count_bounds(self) -> dict[str, tuple[int, int]]:
        """(lowest, highest) true count of each category :meth:`estimated_counts` lists: a
        deterministic bound (equal ends while exact). Categories not listed have at most
        :attr:`count_error` rows each."""
        if self.counts is not None:
            return {label: (c, c) for label, c in self.counts.items()}
        from datasketches import frequent_items_error_type

        rows = _frequent(self.frequent).get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        return dict(sorted((str(label), (int(low), int(high))) for label, _est, low, high in rows))

    def distinct_count(self) -> tuple[float, float, float]:
        """Distinct categories: (estimate, lower, upper) at about 95% confidence; exact while exact."""
        if self.counts is not None:
            d = float(len(self.counts))
            return d, d, d
        sketch = _hll(self.distinct)
        return float(sketch.get_estimate()), float(sketch.get_lower_bound(2)), float(sketch.get_upper_bound(2))

    def to_dict(self) -> dict[str, Any]:
        def b64(data: bytes | None) -> str | None:
            return None if data is None else base64.b64encode(data).decode("ascii")

        return {
            "kind": "categorical",
            "count": self.count,
            "n_null": self.n_null,
            "counts": None if self.counts is None else dict(self.counts),
            "frequent": b64(self.frequent),
            "distinct": b64(self.distinct),
            "cap": self.cap,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalPart:
        if not isinstance(data, Mapping) or data.get("kind") != "categorical":
            raise InvalidInput("not a categorical summary part")
        try:
            counts = data["counts"]
            if counts is not None and not isinstance(counts, Mapping):
                raise InvalidInput("counts must map labels to counts")
            frequent = None if data["frequent"] is None else base64.b64decode(str(data["frequent"]), validate=True)
            distinct = None if data["distinct"] is None else base64.b64decode(str(data["distinct"]), validate=True)
            if frequent is not None and _frequent(frequent).total_weight != data["count"]:
                raise InvalidInput("the frequent-items sketch does not hold the part's count of values")
            if distinct is not None:
                _hll(distinct)
            return cls(data["count"], data["n_null"], None if counts is None else dict(counts), frequent,
                       distinct, data["cap"])
        except (KeyError, binascii.Error) as exc:
            raise InvalidInput(f"not a categorical summary part: {exc}") from exc


def _label_counts(values: Iterable[Any]) -> tuple[Counter[str], int]:
    """Rows per category label, and missing rows: :func:`labels_of` of each distinct value once
    (values keyed with their type, so that ``1`` and ``1.0`` stay apart as their labels may)."""
    vals = list(values)
    try:
        raw = Counter(zip(map(type, vals), vals))
    except TypeError:  # an unhashable value: label every row
        labels = labels_of(vals)
        found = Counter(label for label in labels if label is not None)
        return found, len(labels) - sum(found.values())
    counter: Counter[str] = Counter()
    n_null = 0
    for (_, value), c in raw.items():
        label = labels_of([value])[0]
        if label is None:
            n_null += c
        else:
            counter[label] += c
    return counter, n_null
