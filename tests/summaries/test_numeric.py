"""The numeric part: exact fields equal the raw rows' values, the sketch stays within its bound."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import bin_counts, quantile_edges
from loopwatch.summaries.numeric import DEFAULT_K, NumericPart, kll_rank_error

EDGES = (-1.0, 0.0, 0.5, 2.0)


def exact_fields(part: NumericPart) -> dict[str, object]:
    d = part.to_dict()
    for key in part.SKETCH_KEYS:
        d.pop(key)
    return d


def test_exact_fields_equal_the_raw_rows() -> None:
    rng = np.random.default_rng(5120)
    x = rng.lognormal(0.0, 2.0, 20_000) - 1.0
    x[rng.random(x.size) < 0.05] = np.nan
    ref = np.sort(rng.lognormal(0.0, 2.0, 5_000) - 1.0)
    edges = quantile_edges(ref, n_bins=10)
    part = NumericPart.from_values(x, edges=edges)
    finite = x[np.isfinite(x)]
    assert part.count == finite.size and part.n_null == x.size - finite.size and part.n == x.size
    assert list(part.bins) == bin_counts(np.sort(finite), edges).tolist()
    assert (part.minimum, part.maximum) == (finite.min(), finite.max())
    assert part.mean == float(sum(Fraction(v) for v in finite) / finite.size)
    assert part.total.value == math.fsum(finite)
    assert part.std == pytest.approx(finite.std(), rel=1e-12)


floats = st.floats(-1e6, 1e6, allow_nan=False)
values = st.lists(st.one_of(floats, st.none(), st.just(math.nan), st.just(math.inf)), max_size=40)


@settings(max_examples=100, deadline=None)
@given(values, st.data())
def test_merging_split_batches_equals_one_batch(rows: list[float | None], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    whole = NumericPart.from_values(rows, edges=EDGES)
    a = NumericPart.from_values(rows[:cut], edges=EDGES)
    b = NumericPart.from_values(rows[cut:], edges=EDGES)
    assert exact_fields(a.merge(b)) == exact_fields(whole) == exact_fields(b.merge(a))
    empty = NumericPart.empty(edges=EDGES)
    assert a.merge(empty) == a and empty.merge(a) == a
    # small batches keep every value: the sketch is exact, so it matches too
    assert np.array_equal(a.merge(b).cdf_steps()[0], whole.cdf_steps()[0])
    assert NumericPart.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole


def test_sketch_cdf_stays_within_its_bound_after_merges() -> None:
    rng = np.random.default_rng(5121)
    batches = [rng.gamma(2.0, 3.0, 30_000) for _ in range(8)]
    merged = NumericPart.empty(edges=EDGES)
    for batch in batches:
        merged = merged.merge(NumericPart.from_values(batch, edges=EDGES))
    x = np.sort(np.concatenate(batches))
    xs, fs = merged.cdf_steps()
    exact = np.searchsorted(x, xs, side="right") / x.size
    assert 0 < merged.rank_error == pytest.approx(kll_rank_error(DEFAULT_K))
    assert np.max(np.abs(fs - exact)) <= merged.rank_error
    assert abs(merged.quantile(0.5) - np.quantile(x, 0.5)) < 0.1


def test_merging_different_edges_is_refused() -> None:
    with pytest.raises(InvalidInput, match="different bin edges"):
        NumericPart.from_values([1.0], edges=[0.0]).merge(NumericPart.from_values([1.0], edges=[0.5]))


@pytest.mark.parametrize("edges", [[1.0, 1.0], [math.nan], [[1.0]], ["a"]])
def test_bad_edges_are_refused(edges: object) -> None:
    with pytest.raises(InvalidInput):
        NumericPart.from_values([1.0], edges=edges)  # type: ignore[arg-type]


def test_pandas_missing_markers_are_nulls() -> None:
    import pandas as pd

    part = NumericPart.from_values(pd.Series([1, None, 3], dtype="Int64").to_numpy(dtype=object), edges=[2.0])
    assert (part.count, part.n_null, part.bins) == (2, 1, (1, 1))


def test_bad_values_and_dicts_are_refused() -> None:
    with pytest.raises(InvalidInput):
        NumericPart.from_values(["x"], edges=[])
    good = NumericPart.from_values([1.0, 2.0], edges=[1.5]).to_dict()
    other_sketch = NumericPart.from_values([1.0, 2.0, 3.0], edges=[1.5]).to_dict()["kll"]
    for change in ({"kll": other_sketch}, {"bins": [5, 5]}, {"kll": "not base64!"}, {"kll": "AAAA"}, {"sum": 3}, {"count": -1},
                   {"kind": "categorical"}, {"minimum": None}):
        with pytest.raises(InvalidInput):
            NumericPart.from_dict({**good, **change})
    with pytest.raises(InvalidInput):
        NumericPart.from_dict({"kind": "numeric"})


def test_merged_sketch_weighs_compacted_values_by_what_they_stand_for() -> None:
    rng = np.random.default_rng(5122)
    big = NumericPart.from_values(rng.normal(size=200_000), edges=EDGES)
    small = NumericPart.from_values(100.0 + rng.random(5_000), edges=EDGES)
    assert small.rank_error > 0  # both sketches have compacted values: they carry weights
    merged = big.merge(small)
    xs, fs = merged.cdf_steps()
    # 200,000 of 205,000 values lie below 99; iterating a merged DataSketches KLL sketch reports
    # weight 1 for every item, and ranks built from that would put about 0.5 here
    below = fs[np.searchsorted(xs, 99.0, side="right") - 1]
    assert abs(below - 200_000 / 205_000) <= merged.rank_error


def test_sketch_cdf_holds_at_every_value_after_many_merges() -> None:
    rng = np.random.default_rng(5123)
    x = rng.normal(size=100_000)
    part = NumericPart.empty(edges=EDGES)
    for batch in np.array_split(x, 24):
        part = part.merge(NumericPart.from_values(batch, edges=EDGES))
    xs, fs = part.cdf_steps()
    s = np.sort(x)
    at = np.searchsorted(xs, s, side="right")
    sketch_cdf = np.where(at > 0, fs[np.maximum(at - 1, 0)], 0.0)
    assert np.max(np.abs(sketch_cdf - np.arange(1, s.size + 1) / s.size)) <= part.rank_error


@settings(max_examples=12, deadline=None)
@given(st.integers(600, 40_000), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
       st.sampled_from(["normal", "lognormal", "integers"]), st.integers(0, 2**32 - 1))
def test_sketch_within_its_bound_for_any_split(n: int, cuts: list[float], shape: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = {"normal": rng.normal(size=n), "lognormal": rng.lognormal(0.0, 2.0, n),
         "integers": rng.integers(0, 30, n).astype(np.float64)}[shape]
    bounds = sorted({0, n, *(int(c * n) for c in cuts)})
    parts = [NumericPart.from_values(x[a:b], edges=EDGES) for a, b in zip(bounds[:-1], bounds[1:])]
    merged = parts[0]
    for part in parts[1:]:
        merged = part.merge(merged)
    xs, fs = merged.cdf_steps()
    s = np.sort(x)
    at = np.searchsorted(xs, s, side="right")
    sketch_cdf = np.where(at > 0, fs[np.maximum(at - 1, 0)], 0.0)
    exact_cdf = np.searchsorted(s, s, side="right") / n  # ties: the fraction at or below each value
    assert np.max(np.abs(sketch_cdf - exact_cdf)) <= merged.rank_error
    assert exact_fields(merged) == exact_fields(NumericPart.from_values(x, edges=EDGES))
