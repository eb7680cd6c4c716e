"""Every summary part in loopwatch.summaries follows the contract of summaries/part.py.

A new part joins by adding one :class:`Case` to :data:`CASES`: how to build three parts of
one shape (mergeable with each other) and the empty part. The last test fails while a part
class of the package is missing from the tuple.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopwatch.summaries
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.labels import LabelSums, ScoredLabels
from loopwatch.summaries.log_bins import LogHistogram
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.outcomes import ConfidenceSums, LossSums
from loopwatch.summaries.reservoir import RowSample
from loopwatch.summaries.traffic import ClientSums, TrafficSums
from loopwatch.summaries.window import SummaryLayout, WindowSummary, empty_summary, summarise_frame

EDGES = (-1.0, 0.0, 1.5)


@dataclass(frozen=True)
class Case:
    cls: type
    #: Three parts of one shape, from a seeded generator.
    build: Callable[[np.random.Generator], list[Any]]
    empty: Callable[[], Any]


def _numeric(rng: np.random.Generator) -> list[NumericPart]:
    sizes = (0, 50, 5_000)  # empty, exact sketch, estimating sketch
    out = []
    for n in sizes:
        x = rng.normal(size=n)
        x[rng.random(n) < 0.1] = np.nan
        out.append(NumericPart.from_values(x, edges=EDGES))
    return out


def _categorical(rng: np.random.Generator) -> list[CategoricalPart]:
    return [CategoricalPart.from_values(rng.integers(0, k, 300).tolist() + [None], cap=20) for k in (5, 15, 60)]


def _proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.dirichlet(np.ones(k), size=n)
    return np.round(p, 3) / np.round(p, 3).sum(axis=1, keepdims=True)


def _rows(rng: np.random.Generator, n: int, offset: int) -> tuple[list[str], list[int], pd.DataFrame]:
    ids = [f"r{offset + i // 2}" for i in range(n)]
    return ids, [i % 2 for i in range(n)], pd.DataFrame({"x": rng.normal(size=n).round(3), "c": ["a"] * n})


def _row_samples(rng: np.random.Generator) -> list[RowSample]:
    out = []
    for n, offset in ((0, 0), (6, 100), (40, 200)):  # empty, all kept, past k
        ids, index, frame = _rows(rng, n, offset)
        out.append(RowSample.from_rows(ids, index, frame, k=10, seed=3))
    return out


def _confidence(rng: np.random.Generator) -> list[ConfidenceSums]:
    out = []
    for n in (0, 30, 200):
        p = _proba(rng, n, 3) if n else np.empty((0, 3))
        out.append(ConfidenceSums.from_rows(p, p, p.argmax(axis=1) if n else np.empty(0, int), positive=None))
    return out


def _losses(rng: np.random.Generator) -> list[LossSums]:
    return [LossSums.from_losses(*(rng.exponential(size=n) for _ in range(4))) for n in (0, 20, 300)]


def _scored(rng: np.random.Generator) -> list[ScoredLabels]:
    return [ScoredLabels.from_rows(_proba(rng, n, 2), rng.integers(0, 2, n), positive=1) for n in (0, 25, 300)]


def _labels(rng: np.random.Generator) -> list[LabelSums]:
    out = []
    for n in (0, 25, 300):
        p = _proba(rng, n, 2)
        out.append(LabelSums.from_pairs(task="classification", predicted=p.argmax(axis=1).tolist(),
                                        truth=rng.integers(0, 2, n).tolist(), delay_seconds=rng.exponential(60, n),
                                        classes=[0, 1], proba=p, positive=1))
    return out


def _log_bins(rng: np.random.Generator) -> list[LogHistogram]:
    return [LogHistogram.from_values(rng.integers(0, 10**6, n), missing=m) for n, m in ((0, 0), (5, 1), (400, 3))]


def _traffic(rng: np.random.Generator) -> list[TrafficSums]:
    out = []
    for n in (0, 10, 300):
        latency = rng.lognormal(2, 1, n)
        latency[rng.random(n) < 0.1] = np.nan
        out.append(TrafficSums.from_columns(row_indices=[i % 3 for i in range(n)], request_latency_ms=latency,
                                            request_types=rng.choice(["api", "batch"], n).tolist(),
                                            fingerprint_ids=rng.choice(["f1", "f2", "f3"], n).tolist()))
    return out


def _clients(rng: np.random.Generator) -> list[ClientSums]:
    out = []
    for n, offset in ((0, 0), (8, 100), (60, 200)):
        ids, index, frame = _rows(rng, n, offset)
        out.append(ClientSums.from_columns(
            client_ids=rng.choice(["a", "b", "c"], n).tolist(), request_ids=ids, row_indices=index,
            timestamps_us=rng.integers(0, 10**9, n).tolist(), request_types=["api"] * n, rows=frame,
            proba=_proba(rng, n, 2), k=5, seed=3))
    return out


LAYOUT = SummaryLayout(numeric={"x": EDGES}, categorical=("c",), classes=("no", "yes"),
                       output_edges={"probability_yes": (0.5,), "probability_no": (0.5,)}, sample_k=20, client_k=5)
HOUR = datetime(2026, 2, 2, 9, tzinfo=timezone.utc)


def events(rng: np.random.Generator, n: int, offset: int) -> pd.DataFrame:
    """A frame of ``n`` events of one hour, in the form the summariser reads."""
    p = rng.random(n).round(3)
    return pd.DataFrame({
        "x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n), "prediction": np.where(p > 0.5, "yes", "no"),
        "probability_no": 1 - p, "probability_yes": p,
        "__timestamp": [HOUR + timedelta(seconds=int(s)) for s in rng.integers(0, 3600, n)],
        "__version": 1, "__request_id": [f"r{offset + i}" for i in range(n)], "__row_index": 0,
        "__client_id": rng.choice(["k1", "k2"], n), "__fingerprint_id": "f", "__request_type": "api",
        "__request_runtime_ms": rng.exponential(5, n), "__has_data": True,
    })


def _windows(rng: np.random.Generator) -> list[WindowSummary]:
    return [summarise_frame(events(rng, n, offset), model="m", layouts={1: LAYOUT})[(1, HOUR)]
            for n, offset in ((1, 0), (15, 100), (900, 1000))]


CASES: tuple[Case, ...] = (
    Case(NumericPart, _numeric, lambda: NumericPart.empty(edges=EDGES)),
    Case(CategoricalPart, _categorical, lambda: CategoricalPart.empty(cap=20)),
    Case(RowSample, _row_samples, lambda: RowSample.empty(k=10, seed=3)),
    Case(ConfidenceSums, _confidence, lambda: ConfidenceSums.empty(n_classes=3, positive=None)),
    Case(LossSums, _losses, LossSums),
    Case(ScoredLabels, _scored, lambda: ScoredLabels(n_classes=2, positive=1)),
    Case(LabelSums, _labels, lambda: LabelSums(task="classification")),
    Case(LogHistogram, _log_bins, LogHistogram),
    Case(TrafficSums, _traffic, TrafficSums),
    Case(ClientSums, _clients, lambda: ClientSums(k=5, seed=3)),
    Case(WindowSummary, _windows, lambda: empty_summary(model="m", version=1, start=HOUR, layout=LAYOUT)),
)


def exact_view(part: Any) -> dict[str, Any]:
    """The part's dict without its sketch fields (which merge equal only within their bound)."""
    d = part.to_dict()
    for key in getattr(part, "SKETCH_KEYS", ()):
        d.pop(key, None)
    return d


def ids(case: Case) -> str:
    return case.cls.__name__


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_round_trip_through_json(case: Case) -> None:
    for part in [case.empty(), *case.build(np.random.default_rng(8801))]:
        data = json.loads(json.dumps(part.to_dict(), allow_nan=False))  # JSON-safe: no NaN, no bytes
        again = case.cls.from_dict(data)
        assert again == part and again.to_dict() == part.to_dict()


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_empty_is_the_identity(case: Case) -> None:
    empty = case.empty()
    assert empty.n == 0 and empty.merge(empty) == empty
    for part in case.build(np.random.default_rng(8802)):
        assert part.merge(empty) == part and empty.merge(part) == part


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_merge_is_commutative_and_associative(case: Case) -> None:
    a, b, c = case.build(np.random.default_rng(8803))
    assert exact_view(a.merge(b)) == exact_view(b.merge(a))
    assert exact_view(a.merge(b).merge(c)) == exact_view(a.merge(b.merge(c)))
    assert a.merge(b).merge(c).n == a.n + b.n + c.n


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_parts_are_immutable(case: Case) -> None:
    part = case.build(np.random.default_rng(8804))[1]
    before = part.to_dict()
    with pytest.raises(AttributeError):
        part.n = 3
    if dataclasses.is_dataclass(part):
        for field in dataclasses.fields(part):
            with pytest.raises(AttributeError):
                setattr(part, field.name, None)
            value = getattr(part, field.name)
            if isinstance(value, Mapping):  # a mapping inside is read-only too
                with pytest.raises(TypeError):
                    value["x"] = 1  # type: ignore[index]
    assert part.to_dict() == before


def test_every_part_of_the_package_is_listed() -> None:
    found = set()
    for info in pkgutil.iter_modules(loopwatch.summaries.__path__, "loopwatch.summaries."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and all(
                    hasattr(obj, name) for name in ("merge", "to_dict", "from_dict", "n")):
                found.add(obj)
    assert found <= {case.cls for case in CASES}, f"add a Case for {sorted(c.__name__ for c in found)}"
    assert {NumericPart, CategoricalPart} <= found
