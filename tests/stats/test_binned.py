"""Binning and histogram distances, against scipy's entropy and jensenshannon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import (
    align_categories,
    bin_counts,
    categorical_distances,
    hellinger,
    js_distance,
    kl_divergence,
    psi,
    quantile_edges,
)
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary

count_pairs = st.integers(1, 12).flatmap(
    lambda k: st.tuples(st.lists(st.integers(0, 1000), min_size=k, max_size=k),
                        st.lists(st.integers(0, 1000), min_size=k, max_size=k))
).filter(lambda ab: sum(ab[0]) > 0 and sum(ab[1]) > 0)


def smoothed(ref: np.ndarray, cur: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    keep = (ref + cur) > 0
    p, q = ref[keep] + s, cur[keep] + s
    return p / p.sum(), q / q.sum()


def test_quantile_edges_give_equal_reference_bins() -> None:
    x = np.sort(np.random.default_rng(0).normal(size=10_000))
    edges = quantile_edges(x)
    assert edges.size == 9
    np.testing.assert_array_equal(bin_counts(x, edges), np.full(10, 1000))
    summary = NumericSummary.from_sorted(x, max_points=1000)
    np.testing.assert_allclose(summary.bin_counts(quantile_edges(summary)), np.full(10, 1000.0))


def test_quantile_edges_merge_ties() -> None:
    x = np.sort(np.random.default_rng(1).poisson(1.0, size=1000).astype(float))
    edges = quantile_edges(x, n_bins=10)
    assert np.all(np.diff(edges) > 0) and set(edges) <= set(x)
    assert bin_counts(x, edges).sum() == 1000
    assert quantile_edges(np.full(50, 3.0)).tolist() == [3.0]
    with pytest.raises(InvalidInput):
        quantile_edges(x, n_bins=1)


def test_values_on_an_edge_go_to_the_right_bin() -> None:
    edges = np.array([0.0, 1.0, 2.5])
    values = np.sort(np.array([-1.0, 0.0, 0.0, 0.5, 1.0, 2.4999, 2.5, 7.0]))
    brute = [np.sum(values < 0.0), np.sum((values >= 0.0) & (values < 1.0)),
             np.sum((values >= 1.0) & (values < 2.5)), np.sum(values >= 2.5)]
    assert bin_counts(values, edges).tolist() == brute == [1, 3, 2, 2]
    with pytest.raises(InvalidInput):
        bin_counts(values, [1.0, 1.0])
    with pytest.raises(InvalidInput):
        bin_counts(values[::-1], edges)


def test_align_categories_takes_the_union() -> None:
    labels, ref, cur = align_categories({"b": 2, "a": 5}, CategoricalSummary({"a": 1, "new": 4}))
    assert labels == ["a", "b", "new"]
    assert ref.tolist() == [5.0, 2.0, 0.0] and cur.tolist() == [1.0, 0.0, 4.0]
    with pytest.raises(InvalidInput):
        align_categories({"a": -1}, {"a": 1})
    with pytest.raises(InvalidInput):
        align_categories({1: 1}, {"a": 1})  # type: ignore[dict-item]


@settings(max_examples=200, deadline=None)
@given(count_pairs, st.sampled_from([0.5, 1.0, 0.01]))
def test_psi_and_kl_equal_scipy_entropy_on_smoothed_frequencies(pair: tuple[list[int], list[int]],
                                                                s: float) -> None:
    ref, cur = np.array(pair[0], float), np.array(pair[1], float)
    p, q = smoothed(ref, cur, s)
    assert kl_divergence(ref, cur, smoothing=s) == pytest.approx(stats.entropy(q, p), rel=1e-9, abs=1e-12)
    expected_psi = stats.entropy(q, p) + stats.entropy(p, q)
    assert psi(ref, cur, smoothing=s) == pytest.approx(expected_psi, rel=1e-9, abs=1e-12)
    assert psi(ref, cur, smoothing=s) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9, abs=1e-12)


def test_kl_direction_is_current_given_reference() -> None:
    ref, cur = np.array([90.0, 10.0]), np.array([50.0, 50.0])
    p, q = smoothed(ref, cur, 0.5)
    assert kl_divergence(ref, cur) == pytest.approx(stats.entropy(q, p))
    assert kl_divergence(ref, cur) != pytest.approx(stats.entropy(p, q))


def test_smoothing_keeps_empty_bins_finite() -> None:
    ref, cur = [100, 0], [50, 50]
    assert np.isfinite(psi(ref, cur)) and np.isfinite(kl_divergence(ref, cur))
    assert psi(ref, cur, smoothing=0) == np.inf and kl_divergence(ref, cur, smoothing=0) == np.inf
    assert kl_divergence([50, 50], [100, 0], smoothing=0) == pytest.approx(np.log(2))
    # a bin empty on both sides changes nothing
    assert psi([1, 0, 2], [2, 0, 1]) == psi([1, 2], [2, 1])
    with pytest.raises(InvalidInput):
        psi(ref, cur, smoothing=-1)


@settings(max_examples=200, deadline=None)
@given(count_pairs)
def test_js_matches_scipy_and_hellinger_matches_its_definition(pair: tuple[list[int], list[int]]) -> None:
    ref, cur = np.array(pair[0], float), np.array(pair[1], float)
    assert js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-9)
    p, q = ref / ref.sum(), cur / cur.sum()
    expected = np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q))))
    assert hellinger(ref, cur) == pytest.approx(expected, abs=1e-7)  # sqrt near 0 amplifies rounding


@settings(max_examples=200, deadline=None)
@given(count_pairs)
def test_distance_properties(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    assert psi(a, b) >= 0 and psi(a, b) == pytest.approx(psi(b, a), rel=1e-12, abs=1e-15)
    assert kl_divergence(a, b) >= 0
    js = js_distance(a, b)
    assert 0.0 <= js <= 1.0 and js == pytest.approx(js_distance(b, a), abs=1e-15)
    assert 0.0 <= hellinger(a, b) <= 1.0 and hellinger(a, b) == pytest.approx(hellinger(b, a), abs=1e-15)
    assert psi(a, a) == kl_divergence(a, a) == js_distance(a, a) == hellinger(a, a) == 0.0
    proportional = [3 * x for x in a]
    assert js_distance(a, proportional) == pytest.approx(0.0, abs=1e-7)
    assert hellinger(a, proportional) == pytest.approx(0.0, abs=1e-7)


def test_categorical_distances_align_first() -> None:
    d = categorical_distances(CategoricalSummary({"a": 50, "b": 50}), {"a": 30, "b": 60, "c": 10})
    assert d["psi"] == psi([50, 50, 0], [30, 60, 10])
    assert d["js_distance"] == js_distance([50, 50, 0], [30, 60, 10])
    assert set(d) == {"psi", "kl_divergence", "js_distance", "hellinger"}


@pytest.mark.parametrize("ref,cur", [([1, 2], [1]), ([], []), ([0, 0], [1, 1]), ([1, -1], [1, 1]),
                                     ([1, np.nan], [1, 1]), ([[1, 2]], [[1, 2]])])
def test_invalid_count_vectors(ref: list[float], cur: list[float]) -> None:
    for fn in (psi, kl_divergence, js_distance, hellinger):
        with pytest.raises(InvalidInput):
            fn(ref, cur)
