"""A bounded uniform sample of a window's rows, for the tests that need rows.

The domain classifier, MMD, novelty and the extraction watch's geometry signals read rows,
not sums. A window keeps a sample of at most ``k`` of them (:class:`RowSample`), chosen by
*bottom-k* over a keyed hash of each row's identity (request id and row index):

* every row gets a priority, the first 8 bytes of ``blake2b(request_id, row_index)`` keyed
  with the sample's ``seed``: the same seed gives the same priorities, so rebuilding a
  window from the log gives the same sample, and every window of a model shares its seed;
* the sample holds every row whose priority is below the part's ``threshold``, and the
  threshold is the ``(k + 1)``-th smallest priority of the rows (none while there are at
  most ``k``): the ``k`` rows of smallest priority. Priorities behave as independent uniform
  draws, so every set of ``k`` rows is equally likely: a uniform sample without replacement;
* the bottom-k of two bottom-k samples is the bottom-k of the union of their rows, so
  ``merge`` gives exactly the sample one pass over all the rows would have given (the
  merged threshold is the smaller of the two, or the ``(k + 1)``-th smallest priority of
  the union, whichever is smaller).

**Deleting a request** (``logs delete``) removes its rows from the sample and keeps the
threshold. The sample is still every remaining row below the threshold, and which rows
were deleted does not depend on their priorities, so it stays a uniform sample of the
remaining rows; what deletion costs is size, never uniformity: the sample shrinks by the
deleted rows it held (on average ``k`` times the share of rows deleted), and a merge never
refills it above its threshold (that would need rows the part no longer has). To keep at
least ``m`` rows after deleting a share ``f`` of a window, use ``k >= m / (1 - f)``.
Rebuilding the window from the log after the deletion refills it to ``k``.

**A model logged without data** (``--no-log-data``) has no rows to keep: its parts are
built with ``rows=None``, hold no rows, and count the rows they could not sample in
``n_without_data``; :meth:`RowSample.unavailable_tests` names the tests that then cannot
run. A window with some rows logged with data and some without (the setting changed
within it) samples uniformly among the rows with data.

>>> rows = [{"x": float(i), "prediction": i % 2} for i in range(1000)]
>>> ids = [f"r{i}" for i in range(1000)]
>>> whole = RowSample.from_rows(ids, [0] * 1000, rows, k=50, seed=7)
>>> halves = RowSample.from_rows(ids[:400], [0] * 400, rows[:400], k=50, seed=7).merge(
...     RowSample.from_rows(ids[400:], [0] * 600, rows[400:], k=50, seed=7))
>>> halves == whole, whole.n, len(whole.rows)
(True, 1000, 50)
>>> len(whole.without_requests(["r1", "r2", "r3"], n_rows_removed=3).rows) <= 50
True
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

import pandas as pd

from loopwatch.errors import InvalidInput

#: Tests that read rows, and so cannot run on a model that logs no input data.
ROW_TESTS = ("domain_classifier", "mmd", "novelty", "extraction_geometry")
#: The default number of rows a window's sample keeps.
DEFAULT_K = 2000
_PRIORITY_BYTES = 8


def row_priority(request_id: str, row_index: int, *, seed: int) -> int:
    """A row's priority in ``[0, 2**64)``: a hash of its identity keyed by ``seed``.

    >>> row_priority("a", 0, seed=1) == row_priority("a", 0, seed=1) != row_priority("a", 0, seed=2)
    True
    """
    return row_priorities([request_id], [row_index], seed=seed)[0]


def row_priorities(request_ids: Sequence[str], row_indices: Sequence[int], *, seed: int) -> list[int]:
    """:func:`row_priority` of many rows: the keyed hash's state is set up once and copied per
    row (keying costs a block of the hash of its own, a third of a row's cost)."""
    keyed = hashlib.blake2b(key=int(seed).to_bytes(16, "big", signed=True), digest_size=_PRIORITY_BYTES)
    out = []
    for request_id, row_index in zip(request_ids, row_indices):
        h = keyed.copy()
        h.update(f"{request_id}\x00{int(row_index)}".encode())
        out.append(int.from_bytes(h.digest(), "big"))
    return out


@dataclass(frozen=True, kw_only=True)
class SampledRow:
    """One sampled row: its identity, its priority, and its values (features, prediction, probability)."""

    request_id: str
    row_index: int
    priority: int
    #: JSON-safe values (missing ones as ``None``), as :meth:`RowSample.to_dict` stores them.
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        # read-only, one level deep: a row's values are scalars (or a list of probabilities)
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @classmethod
    def _owning(cls, request_id: str, row_index: int, priority: int, values: dict[str, Any]) -> SampledRow:
        """A row over ``values``, a dict no one else holds (so it is wrapped, not copied): what
        :func:`samples_by_group` builds thousands of per window."""
        row = object.__new__(cls)
        object.__setattr__(row, "request_id", request_id)
        object.__setattr__(row, "row_index", row_index)
        object.__setattr__(row, "priority", priority)
        object.__setattr__(row, "values", MappingProxyType(values))
        return row

    def order(self) -> tuple[int, str, int]:
        # ties of 64-bit priorities are broken by identity, so the order is total and the same everywhere
        return (self.priority, self.request_id, self.row_index)


@dataclass(frozen=True, kw_only=True)
class RowSample:
    """The bottom-``k`` rows of a window by keyed-hash priority (see the module's notes).

    ``rows`` are in priority order; ``threshold`` is ``None`` while every sampleable row is
    kept. Size bound: ``k`` rows.
    """

    k: int
    seed: int
    #: Rows summarised, sampled or not (the part's size).
    n: int = 0
    #: Rows summarised that carried no input data (a model logged without data), never sampled.
    n_without_data: int = 0
    threshold: tuple[int, str, int] | None = None
    rows: tuple[SampledRow, ...] = ()

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInput(f"a row sample needs k >= 1, got {self.k}")

    @classmethod
    def empty(cls, *, k: int = DEFAULT_K, seed: int = 0) -> RowSample:
        return cls(k=k, seed=seed)

    @classmethod
    def from_rows(
        cls,
        request_ids: Sequence[str],
        row_indices: Sequence[int],
        rows: Sequence[Mapping[str, Any]] | pd.DataFrame | None,
        *,
        k: int = DEFAULT_K,
        seed: int = 0,
        keep: int | None = None,
    ) -> RowSample:
        """The sample of a batch of rows (``rows=None``: the batch was logged without data; a table:
        only the kept rows are turned into dicts). ``keep``: the sample :meth:`truncated` to ``keep``
        rows, without building the rows it would drop."""
        return samples_by_group([0] * len(request_ids), request_ids, row_indices, rows, k=k, seed=seed,
                                keep=keep).get(0, cls(k=k, seed=seed))

    def _check(self, other: RowSample) -> None:
        if (self.k, self.seed) != (other.k, other.seed):
            raise InvalidInput(
                f"row samples of different k or seed cannot merge: ({self.k}, {self.seed}) and ({other.k}, {other.seed})"
            )

    def merge(self, other: RowSample, /) -> RowSample:
        """The sample of both parts' rows: the bottom-k of their union, below both thresholds."""
        self._check(other)
        limits = [t for t in (self.threshold, other.threshold) if t is not None]
        limit = min(limits) if limits else None
        seen: set[tuple[str, int]] = set()
        pooled: list[SampledRow] = []
        for row in sorted(self.rows + other.rows, key=SampledRow.order):
            identity = (row.request_id, row.row_index)
            # the same row in both parts (a replayed batch summarised twice) is one row
            if identity in seen or (limit is not None and row.order() >= limit):
                continue
            seen.add(identity)
            pooled.append(row)
        if len(pooled) > self.k:
            limit = pooled[self.k].order()
            pooled = pooled[: self.k]
        return RowSample(
            k=self.k, seed=self.seed, n=self.n + other.n, n_without_data=self.n_without_data + other.n_without_data,
            threshold=limit, rows=tuple(pooled),
        )

    def without_requests(
        self, request_ids: Iterable[str], *, n_rows_removed: int, n_without_data_removed: int = 0
    ) -> RowSample:
        """The part after deleting every row of ``request_ids``: ``n_rows_removed`` of the window's
        rows, ``n_without_data_removed`` of them logged without data (the store's delete counts
        them). The threshold stays: the rest is still uniform, only smaller (module notes)."""
        if not 0 <= n_without_data_removed <= min(n_rows_removed, self.n_without_data) or n_rows_removed > self.n:
            raise InvalidInput(f"cannot remove {n_rows_removed} rows ({n_without_data_removed} without data) "
                               f"from a window of {self.n} ({self.n_without_data} without data)")
        gone = set(request_ids)
        kept = tuple(row for row in self.rows if row.request_id not in gone)
        return RowSample(k=self.k, seed=self.seed, n=self.n - n_rows_removed,
                         n_without_data=self.n_without_data - n_without_data_removed,
                         threshold=self.threshold, rows=kept)

    def truncated(self, m: int) -> RowSample:
        """The ``m`` rows of smallest priority, the threshold lowered to the next one: still every
        row below its threshold, so still uniform and mergeable, with ``k`` still the cap a merge
        fills up to (a stored window can keep fewer rows than a merged day or week reads)."""
        if m < 0:
            raise InvalidInput(f"cannot keep {m} rows")
        if len(self.rows) <= m:
            return self
        return RowSample(k=self.k, seed=self.seed, n=self.n, n_without_data=self.n_without_data,
                         threshold=self.rows[m].order(), rows=self.rows[:m])

    @property
    def has_data(self) -> bool:
        """Whether any row of the window was logged with its input data."""
        return self.n > self.n_without_data

    def unavailable_tests(self) -> tuple[str, ...]:
        """The tests that read rows and cannot run on this window: all of them when no row was
        logged with data (a model set to ``--no-log-data``), none otherwise."""
        return () if self.has_data or self.n == 0 else ROW_TESTS

    def values(self) -> list[dict[str, Any]]:
        """The sampled rows' values, in priority order (a uniform random order of the sample)."""
        return [dict(row.values) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "seed": self.seed,
            "n": self.n,
            "n_without_data": self.n_without_data,
            "threshold": None if self.threshold is None else list(self.threshold),
            "rows": [
                {"request_id": r.request_id, "row_index": r.row_index, "priority": r.priority, "values": dict(r.values)}
                for r in self.rows
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowSample:
        threshold = data.get("threshold")
        return cls(
            k=int(data["k"]), seed=int(data["seed"]), n=int(data["n"]), n_without_data=int(data["n_without_data"]),
            threshold=None if threshold is None else (int(threshold[0]), str(threshold[1]), int(threshold[2])),
            rows=tuple(
                SampledRow(request_id=str(r["request_id"]), row_index=int(r["row_index"]), priority=int(r["priority"]),
                           values=dict(r["values"]))
                for r in data["rows"]
            ),
        )


def samples_by_group(
    groups: Sequence[Hashable],
    request_ids: Sequence[str],
    row_indices: Sequence[int],
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame | None,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    keep: int | None = None,
) -> dict[Hashable, RowSample]:
    """One :class:`RowSample` per group of rows (a client's, say), each the bottom-k of its own
    rows, in one pass: only the kept rows' values are read (``rows=None``: logged without data).
    ``keep``: each sample :meth:`~RowSample.truncated` to ``keep`` rows (``k`` stays the cap a
    merge fills up to), without reading the rows it would drop."""
    n = len(request_ids)
    if len(row_indices) != n or len(groups) != n or (rows is not None and len(rows) != n):
        raise InvalidInput("request_ids, row_indices and rows must have one entry per row")
    if k < 1:
        raise InvalidInput(f"a row sample needs k >= 1, got {k}")
    codes, uniques = factorize(groups)
    if rows is None:
        sizes = np.bincount(codes, minlength=len(uniques))
        return {uniques[c]: RowSample(k=k, seed=seed, n=int(m), n_without_data=int(m)) for c, m in enumerate(sizes)}
    ids = [str(r) for r in request_ids]
    indices = np.asarray(row_indices, dtype=np.int64)
    priorities = np.array(row_priorities(ids, indices.tolist(), seed=seed), dtype=np.uint64).reshape(n)
    # by group, then (priority, request id, row index): the rows' order everywhere
    order = np.lexsort((indices, np.asarray(ids, dtype=str), priorities, codes))
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]]) if n else np.empty(0, np.int64)
    ends = np.r_[starts[1:], n].astype(np.int64)
    if keep is not None and keep < 0:
        raise InvalidInput(f"cannot keep {keep} rows")
    m = k if keep is None else min(k, keep)
    kept = np.concatenate([order[lo:min(hi, lo + m)] for lo, hi in zip(starts, ends)]) if n else np.empty(0, np.int64)
    if isinstance(rows, pd.DataFrame):
        values = dict(zip(kept.tolist(), json_records(rows.iloc[kept])))
    else:
        values = {int(p): dict(rows[int(p)]) for p in kept}
    priority_of = priorities.tolist()
    index_of = indices.tolist()

    def identity(position: int) -> tuple[int, str, int]:
        return (priority_of[position], ids[position], index_of[position])

    out: dict[Hashable, RowSample] = {}
    for lo, hi in zip(starts, ends):
        group = order[lo:hi].tolist()
        sampled = tuple(SampledRow._owning(ids[p], index_of[p], priority_of[p], values[p]) for p in group[:m])
        threshold = identity(group[m]) if len(group) > m else None
        out[uniques[codes[group[0]]]] = RowSample(
            k=k, seed=seed, n=len(group), n_without_data=0, threshold=threshold, rows=sampled)
    return out


#: Python types a JSON-safe row value may have as it is (pandas would box nothing of these).
_NATIVE = frozenset({str, int, float, bool, list, type(None)})


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as dicts of JSON-safe values (a missing value is ``None``, never NaN):
    the same dicts as ``frame.astype(object)`` with missing values set to ``None`` and
    ``to_dict("records")`` give, built a column at a time (about five times faster on a
    window's sample). A column of another type goes the way of pandas.

    >>> json_records(pd.DataFrame({"x": [1.5, float("nan")], "c": ["a", None], "n": [1, 2]}))
    [{'x': 1.5, 'c': 'a', 'n': 1}, {'x': None, 'c': None, 'n': 2}]
    """
    names = frame.columns.tolist()
    if len(set(names)) != len(names) or not all(isinstance(name, str) for name in names):
        return _pandas_records(frame)
    columns: list[list[Any]] = []
    for position in range(len(names)):
        column = frame.iloc[:, position]
        dtype = column.dtype
        if dtype == np.float64:
            array = column.to_numpy()
            values = array.tolist()
            missing = np.isnan(array)
        elif dtype == np.int64 or dtype == np.bool_:
            values = column.to_numpy().tolist()
            missing = None
        elif dtype == object or isinstance(dtype, pd.StringDtype):
            array = column.to_numpy(dtype=object)
            values = array.tolist()
            missing = pd.isna(array)
        else:
            return _pandas_records(frame)
        if missing is not None:
            for i in np.flatnonzero(missing).tolist():
                values[i] = None
        if not set(map(type, values)) <= _NATIVE:  # numpy scalars and the like: pandas boxes them
            return _pandas_records(frame)
        columns.append(values)
    return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(len(frame))]


def _pandas_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    chosen = frame.astype(object)
    # JSON-safe: a missing value is None, never NaN
    records: list[dict[str, Any]] = chosen.where(chosen.notna(), None).to_dict("records")
    return records


def factorize(values: Iterable[Hashable]) -> tuple[np.ndarray, list[Any]]:
    """Each value's code (its first appearance's rank) and the values by code; ``None`` is a
    value like any other (pandas would turn it into NaN)."""
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64)
    return codes, list(index)
