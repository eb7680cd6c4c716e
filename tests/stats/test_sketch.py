"""NumericSummary and CategoricalSummary: exactness, the stated rank error bound, merging, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary

# small integer ranges give many ties, which is where rank bookkeeping goes wrong
values_with_ties = st.lists(st.integers(-20, 20).map(float), min_size=1, max_size=300)
values_continuous = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300)
any_values = values_with_ties | values_continuous


def true_cdf(data: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(data), x, side="right") / data.size


def probe_points(data: np.ndarray) -> np.ndarray:
    u = np.unique(data)
    mids = (u[1:] + u[:-1]) / 2 if u.size > 1 else u
    return np.concatenate((u, mids, [u[0] - 1.0, u[-1] + 1.0]))


def test_exact_summary_keeps_the_sorted_values_and_their_statistics() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=1000)
    raw[[5, 17, 600]] = np.nan
    s = NumericSummary.from_values(raw)
    data = raw[~np.isnan(raw)]
    assert s.exact and s.rank_error == 0.0
    assert (s.n, s.n_missing) == (997, 3)
    np.testing.assert_array_equal(s.sorted_values, np.sort(data))
    assert s.mean == pytest.approx(data.mean(), rel=1e-12)
    assert s.std == pytest.approx(data.std(), rel=1e-12)
    assert (s.minimum, s.maximum) == (data.min(), data.max())
    q1, q3 = np.quantile(data, [0.25, 0.75])
    assert s.iqr == pytest.approx(q3 - q1, rel=1e-12)
    assert s.quantile(0.3) == pytest.approx(np.quantile(data, 0.3), rel=1e-12)
    assert not s.sorted_values.flags.writeable


def test_quantile_summary_takes_values_at_evenly_spaced_ranks() -> None:
    data = np.random.default_rng(1).exponential(size=10_007)
    s = NumericSummary.from_values(data, max_points=100)
    ranks = np.floor((np.arange(100) + 0.5) * 10_007 / 100).astype(int)
    np.testing.assert_array_equal(s.sorted_values, np.sort(data)[ranks])
    assert s.rank_error == 0.5 / 100 and not s.exact
    assert s.n == 10_007 and s.mean == pytest.approx(data.mean())
    assert s.quantile(0.0) == data.min() and s.quantile(1.0) == data.max()
    assert s.quantile(np.array([0.25, 0.5, 0.75])).shape == (3,)


@settings(max_examples=200, deadline=None)
@given(any_values, st.integers(2, 25))
def test_rank_error_bound_holds_everywhere(values: list[float], k: int) -> None:
    data = np.array(values)
    s = NumericSummary.from_values(data, max_points=k)
    x = probe_points(data)
    assert s.rank_error == (0.0 if data.size <= k else 0.5 / k)
    assert np.max(np.abs(s.cdf(x) - true_cdf(data, x))) <= s.rank_error + 1e-12


@settings(max_examples=200, deadline=None)
@given(any_values, any_values)
def test_merging_exact_summaries_equals_the_summary_of_the_concatenation(a: list[float], b: list[float]) -> None:
    merged = NumericSummary.from_values(a).merge(NumericSummary.from_values(b))
    whole = NumericSummary.from_values(a + b)
    np.testing.assert_array_equal(merged.sorted_values, whole.sorted_values)
    assert (merged.n, merged.n_missing, merged.rank_error) == (whole.n, whole.n_missing, 0.0)
    assert (merged.minimum, merged.maximum, merged.iqr) == (whole.minimum, whole.maximum, whole.iqr)
    scale = 1.0 + max(abs(whole.minimum), abs(whole.maximum))
    assert merged.mean == pytest.approx(whole.mean, abs=1e-9 * scale)
    assert merged.std == pytest.approx(whole.std, abs=1e-6 * scale)


@settings(max_examples=100, deadline=None)
@given(any_values, any_values, st.integers(2, 30))
def test_exact_parts_too_big_to_fit_merge_into_the_summary_of_the_whole(a: list[float], b: list[float],
                                                                         k: int) -> None:
    if len(a) > k or len(b) > k:
        return  # inputs that are summaries already: the next test
    merged = NumericSummary.from_values(a, max_points=k).merge(NumericSummary.from_values(b, max_points=k))
    whole = NumericSummary.from_values(a + b, max_points=k)
    np.testing.assert_array_equal(merged.sorted_values, whole.sorted_values)
    assert merged.rank_error == whole.rank_error


@settings(max_examples=200, deadline=None)
@given(any_values, any_values, st.integers(2, 25), st.integers(2, 25))
def test_merged_summaries_keep_the_combined_rank_error_bound(a: list[float], b: list[float], ka: int,
                                                             kb: int) -> None:
    sa, sb = NumericSummary.from_values(a, max_points=ka), NumericSummary.from_values(b, max_points=kb)
    merged = sa.merge(sb)
    whole = np.array(a + b)
    kk = min(max(ka, kb), whole.size)
    if sa.exact and sb.exact:
        assert merged.rank_error == (0.0 if whole.size <= max(ka, kb) else 0.5 / kk)
    else:
        expected = (sa.n * sa.rank_error + sb.n * sb.rank_error) / whole.size + 0.5 / kk
        assert merged.rank_error == pytest.approx(expected, rel=1e-12)
    x = probe_points(whole)
    assert np.max(np.abs(merged.cdf(x) - true_cdf(whole, x))) <= merged.rank_error + 1e-12
    assert merged.sorted_values.size == min(whole.size, kk)


def test_a_merge_tree_of_summaries_stays_within_its_bound() -> None:
    rng = np.random.default_rng(2)
    parts = [rng.lognormal(size=int(n)) for n in rng.integers(500, 3000, size=8)]
    summaries = [NumericSummary.from_values(p, max_points=200) for p in parts]
    while len(summaries) > 1:
        summaries = [summaries[i].merge(summaries[i + 1]) for i in range(0, len(summaries), 2)]
    whole = np.concatenate(parts)
    merged = summaries[0]
    assert merged.n == whole.size
    assert merged.rank_error == pytest.approx(4 * 0.5 / 200)  # one 1/(2k) per level, three levels plus the leaves
    x = probe_points(whole)
    assert np.max(np.abs(merged.cdf(x) - true_cdf(whole, x))) <= merged.rank_error
    assert merged.mean == pytest.approx(whole.mean(), rel=1e-12)
    assert merged.std == pytest.approx(whole.std(), rel=1e-10)


def test_merge_of_large_weights_uses_exact_integers() -> None:
    # row counts whose products overflow int64 take the Python-integer path
    a = NumericSummary.from_sorted(np.arange(1_000_003.0), max_points=100_000)
    b = NumericSummary.from_sorted(np.arange(0.5, 2_345_679.5), max_points=99_991)
    merged = a.merge(b)
    whole = np.concatenate((np.arange(1_000_003.0), np.arange(0.5, 2_345_679.5)))
    x = np.quantile(whole, np.linspace(0, 1, 501))
    assert np.max(np.abs(merged.cdf(x) - true_cdf(whole, x))) <= merged.rank_error


def test_json_round_trip() -> None:
    for s in (NumericSummary.from_values([1.0, 2.0, np.nan, 2.0]),
              NumericSummary.from_values(np.random.default_rng(3).normal(size=5000), max_points=300)):
        back = NumericSummary.from_dict(json.loads(json.dumps(s.to_dict())))
        np.testing.assert_array_equal(back.sorted_values, s.sorted_values)
        assert back.to_dict() == s.to_dict()


def test_scale_falls_back_from_std_to_iqr_to_one() -> None:
    assert NumericSummary.from_values([1.0, 3.0]).scale == 1.0
    assert NumericSummary.from_values([0.1] * 7).std == 0.0  # not 1e-17 from rounding
    assert NumericSummary.from_values([0.1] * 7).scale == 1.0
    odd = NumericSummary(np.array([0.0, 2.0]), 2, 0, 1.0, 0.0, 0.0, 2.0, 1.349, 0.0)
    assert odd.scale == pytest.approx(1.0)


def test_bin_counts_of_a_summary_are_rows() -> None:
    s = NumericSummary.from_values(np.arange(1000.0), max_points=100)
    np.testing.assert_allclose(s.bin_counts([250.0, 500.0]), [250.0, 250.0, 500.0])


@pytest.mark.parametrize("bad", [[], [np.nan, np.nan], [1.0, np.inf], [[1.0, 2.0]], ["a", "b"]])
def test_invalid_numeric_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        NumericSummary.from_values(bad)  # type: ignore[arg-type]


def test_invalid_summaries_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        NumericSummary.from_sorted([2.0, 1.0])
    with pytest.raises(InvalidInput):
        NumericSummary.from_values([1.0], max_points=1)
    with pytest.raises(InvalidInput):
        NumericSummary.from_dict({"values": [1.0]})
    with pytest.raises(InvalidInput):
        NumericSummary(np.array([1.0]), 5, 0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0)  # exact but missing rows
    with pytest.raises(InvalidInput):
        NumericSummary.from_values([1.0]).merge("x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        NumericSummary.from_values([1.0, 2.0]).quantile(1.5)


def test_categorical_summary() -> None:
    s = CategoricalSummary.from_values(["b", "a", None, "a", float("nan"), 3, np.float64("nan")])
    assert s.counts == {"3": 1, "a": 2, "b": 1}
    assert (s.n, s.n_missing) == (4, 3)
    assert s.frequencies == {"3": 0.25, "a": 0.5, "b": 0.25}
    merged = s.merge(CategoricalSummary.from_values(np.array(["a", "c"])))
    assert merged.counts == {"3": 1, "a": 3, "b": 1, "c": 1} and merged.n_missing == 3
    assert merged == CategoricalSummary.from_values(["b", "a", None, "a", None, "3", None, "a", "c"])
    assert CategoricalSummary.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


@pytest.mark.parametrize("bad", [[], [None, None], [[1, 2]]])
def test_invalid_categorical_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        CategoricalSummary.from_values(bad)  # type: ignore[arg-type]


def test_invalid_categorical_counts() -> None:
    with pytest.raises(InvalidInput):
        CategoricalSummary({"a": -1})
    with pytest.raises(InvalidInput):
        CategoricalSummary({"a": 1.5})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        CategoricalSummary.from_dict({"nope": 1})
