"""ExactSum against math.fsum and fractions.Fraction, in any order and grouping."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.summaries.exact_sum import ExactSum

# every kind of double: huge, tiny (subnormal), negative zero, and cancelling pairs
doubles = st.floats(allow_nan=False, allow_infinity=False)
mixed = st.one_of(
    doubles,
    st.sampled_from([0.0, -0.0, sys.float_info.max, -sys.float_info.max, 5e-324, -5e-324,
                     sys.float_info.min, 1e308, 1e-308, 1.0, 0.1]),
)
value_lists = st.lists(mixed, max_size=60)


def exact(values: list[float]) -> Fraction:
    return sum((Fraction(v) for v in values), Fraction(0))


@settings(max_examples=300, deadline=None)
@given(value_lists)
def test_equals_the_fraction_sum_and_rounds_like_fsum(values: list[float]) -> None:
    s = ExactSum.of(values)
    total = exact(values)
    assert s.as_fraction() == total
    try:
        rounded = float(total)
    except OverflowError:
        assert s.value == (math.inf if total > 0 else -math.inf)
        return
    assert s.value == rounded
    try:
        assert s.value == math.fsum(values)
    except OverflowError:  # fsum gives up on an intermediate overflow; the exact sum does not
        pass


@settings(max_examples=200, deadline=None)
@given(value_lists)
def test_squares_are_exact(values: list[float]) -> None:
    assert ExactSum.of_squares(values).as_fraction() == sum((Fraction(v) ** 2 for v in values), Fraction(0))


@settings(max_examples=200, deadline=None)
@given(value_lists, st.data())
def test_merge_is_independent_of_order_and_grouping(values: list[float], data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(values))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=5)))
    shuffled = [values[i] for i in order]
    pieces = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)])]
    merged = ExactSum()
    for piece in reversed(pieces):
        merged = ExactSum.of(piece).merge(merged)
    assert merged == ExactSum.of(values)
    assert ExactSum.from_text(merged.to_text()) == merged


def test_cancellation_and_negative_zero() -> None:
    assert ExactSum.of([1e308, 1.0, -1e308]).value == 1.0
    assert ExactSum.of([-0.0, -0.0]) == ExactSum()
    assert ExactSum.of([5e-324] * 3).as_fraction() == 3 * Fraction(5e-324)


def test_large_arrays_match_fsum() -> None:
    rng = np.random.default_rng(4101)
    x = rng.standard_cauchy(200_000) * 10.0 ** rng.integers(-300, 300, 200_000)
    assert ExactSum.of(x).value == math.fsum(x)
    halves = ExactSum.of(x[:70_001]).merge(ExactSum.of(x[70_001:]))
    assert halves == ExactSum.of(x[::-1])


@pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf], [-math.inf, 1.0]])
def test_non_finite_input_is_refused(bad: list[float]) -> None:
    with pytest.raises(InvalidInput, match="finite"):
        ExactSum.of(bad)


@pytest.mark.parametrize("text", ["", "0x1", "zzp3", "0x1p1.5", "0x1p2p3"])
def test_bad_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        ExactSum.from_text(text)
