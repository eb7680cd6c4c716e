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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import loopwatch.summaries
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.numeric import NumericPart

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


CASES: tuple[Case, ...] = (
    Case(NumericPart, _numeric, lambda: NumericPart.empty(edges=EDGES)),
    Case(CategoricalPart, _categorical, lambda: CategoricalPart.empty(cap=20)),
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
