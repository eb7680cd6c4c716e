"""KS, Wasserstein and chi-square against scipy, plus their invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.stats.sketch import NumericSummary
from loopwatch.stats.univariate import (
    TestResult,
    chi2_test,
    ks_and_wasserstein,
    ks_method,
    ks_pvalue,
    ks_pvalue_asymp,
    ks_statistic_from_sorted,
    ks_test,
    reference_scale,
    wasserstein,
    wasserstein_normed,
)

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200) | st.lists(
    st.integers(-5, 5).map(float), min_size=1, max_size=200)


def draw(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == "discrete":  # ties within and across samples
        return rng.poisson(4.0, size=n).astype(float)
    return rng.normal(size=n)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize("n1,n2", [(7, 7), (50, 80), (1000, 1000), (3000, 10_000), (10_000, 9_999), (1, 40)])
def test_ks_exact_mode_matches_scipy(kind: str, n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    ref, cur = np.sort(draw(kind, rng, n1)), draw(kind, rng, n2) + 0.05
    assert ks_method(n1, n2) == "exact"
    ours, theirs = ks_test(ref, cur), stats.ks_2samp(ref, cur, method="exact")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize("n1,n2", [(20_000, 15_000), (10_001, 300), (100_000, 100_000)])
def test_ks_asymptotic_mode_matches_scipy(kind: str, n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref, cur = np.sort(draw(kind, rng, n1)), draw(kind, rng, n2) + 0.01
    assert ks_method(n1, n2) == "asymp"
    ours, theirs = ks_test(ref, cur), stats.ks_2samp(ref, cur, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
    assert stats.ks_2samp(ref, cur).pvalue == pytest.approx(ours.p_value, abs=1e-9)  # scipy's auto agrees


@pytest.mark.parametrize("n_eff", [20_000.0, 150_000.0])
@pytest.mark.parametrize("nx2", [0.5, 2.2, 2.5, 8.0, 60.0, 369.0, 400.0])
def test_asymptotic_p_value_equals_kstwo_where_scipy_sums_the_smirnov_series(n_eff: float, nx2: float) -> None:
    # 2.2 <= n D^2 < 370 is the branch summed vectorised here; its neighbours defer to scipy
    d = float(np.sqrt(nx2 / n_eff))
    ours = ks_pvalue_asymp(d, int(2 * n_eff), int(2 * n_eff))
    assert ours == pytest.approx(stats.kstwo.sf(d, n_eff), rel=1e-8, abs=1e-12)


def test_ks_test_on_a_drifted_large_sample_matches_scipy() -> None:
    rng = np.random.default_rng(8)
    ref, cur = np.sort(rng.normal(size=40_000)), rng.normal(0.03, 1.0, size=40_000)
    ours, theirs = ks_test(ref, cur), stats.ks_2samp(ref, cur)
    assert 2.2 <= 20_000 * ours.statistic**2 < 370
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)


@pytest.mark.parametrize("n1,n2", [(30, 45), (2000, 2000)])
def test_ks_forced_modes_match_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1)
    ref, cur = np.sort(rng.normal(size=n1)), rng.normal(0.2, 1.0, size=n2)
    for method in ("exact", "asymp"):
        ours, theirs = ks_test(ref, cur, method=method), stats.ks_2samp(ref, cur, method=method)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)


def test_ks_against_a_summary_uses_the_rows_for_the_p_value() -> None:
    rng = np.random.default_rng(4)
    full = np.sort(rng.normal(size=200_000))
    summary = NumericSummary.from_sorted(full, max_points=20_000)
    cur = rng.normal(0.01, 1.0, size=50_000)
    exact, approx = ks_test(full, cur), ks_test(summary, cur)
    assert abs(approx.statistic - exact.statistic) <= summary.rank_error
    expected_p = stats.kstwo.sf(approx.statistic, round(200_000 * 50_000 / 250_000))
    assert approx.p_value == pytest.approx(expected_p, abs=1e-12)
    # the statistic against the summary is scipy's on the summary points
    assert approx.statistic == pytest.approx(stats.ks_2samp(summary.sorted_values, cur).statistic, abs=1e-9)
    small = NumericSummary.from_values(rng.normal(size=5000), max_points=1000)
    assert ks_method(small.n, 100, exact_reference=small.exact) == "asymp"
    with pytest.raises(InvalidInput):
        ks_test(small, cur[:100], method="exact")


def test_ks_exact_is_refused_beyond_its_cost_bound() -> None:
    with pytest.raises(InvalidInput):
        ks_method(20_000, 20_000, method="exact")
    with pytest.raises(InvalidInput):
        ks_method(10, 10, method="bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize("n1,n2", [(1, 1), (13, 200), (1000, 1000), (100_000, 30_000)])
def test_wasserstein_matches_scipy(kind: str, n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + 3 * n2)
    ref, cur = np.sort(draw(kind, rng, n1)), draw(kind, rng, n2) * 1.5 + 0.3
    expected = stats.wasserstein_distance(ref, cur)
    assert wasserstein(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    ks, w = ks_and_wasserstein(ref, np.sort(cur))
    assert w == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert ks == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
    summary = NumericSummary.from_sorted(ref)
    assert wasserstein(summary, cur) == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_sorted_and_unsorted_current_agree() -> None:
    rng = np.random.default_rng(5)
    ref, cur = np.sort(rng.normal(size=500)), rng.normal(size=700)
    assert wasserstein(ref, cur) == wasserstein(ref, np.sort(cur), current_sorted=True)
    assert ks_test(ref, cur) == ks_test(ref, np.sort(cur), current_sorted=True)
    with pytest.raises(InvalidInput):
        wasserstein(ref, cur, current_sorted=True)


@pytest.mark.parametrize("n1,n2", [(300, 500), (20_000, 5000)])
def test_ks_pvalue_from_a_shared_merge_equals_ks_test(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n2)
    ref, cur = np.sort(rng.normal(size=n1)), np.sort(rng.normal(0.05, 1.0, size=n2))
    d, _ = ks_and_wasserstein(ref, cur)
    assert ks_pvalue(d, ref, cur) == ks_test(ref, cur, current_sorted=True).p_value
    assert ks_pvalue(d, ref, cur, method="asymp") == ks_test(ref, cur, method="asymp").p_value
    with pytest.raises(InvalidInput):
        ks_pvalue(1.5, ref, cur)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_is_in_unit_interval_and_symmetric(a: list[float], b: list[float]) -> None:
    x, y = np.sort(a), np.sort(b)
    d = ks_statistic_from_sorted(x, y)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(ks_statistic_from_sorted(y, x), abs=1e-15)
    assert wasserstein(x, y) == pytest.approx(wasserstein(y, x), rel=1e-12, abs=1e-12)
    assert ks_and_wasserstein(x, x) == (0.0, 0.0)


@settings(max_examples=150, deadline=None)
@given(samples, st.floats(-1e3, 1e3, allow_nan=False))
def test_wasserstein_of_a_shifted_copy_is_the_shift(a: list[float], c: float) -> None:
    x = np.sort(a)
    assert wasserstein(x, x + c) == pytest.approx(abs(c), abs=1e-9 * (1 + abs(c) + np.abs(x).max()))


@settings(max_examples=150, deadline=None)
@given(samples, samples, st.floats(1e-3, 1e3))
def test_wasserstein_normed_is_scale_invariant(a: list[float], b: list[float], k: float) -> None:
    x, y = np.sort(a), np.sort(b)
    assume(x[-1] - x[0] > 1e-3)  # a constant reference has no scale; it falls back to 1.0
    w = wasserstein_normed(x, y)
    assert wasserstein_normed(x * k, y * k) == pytest.approx(w, rel=1e-9, abs=1e-12)


def test_wasserstein_normed_reads_a_mean_shift_in_standard_deviations() -> None:
    x = np.sort(np.random.default_rng(6).normal(10.0, 3.0, size=5000))
    sd = x.std()
    for d in (0.1, 0.5, 2.0):
        assert wasserstein_normed(x, x + d * sd) == pytest.approx(d, rel=1e-9)
    summary = NumericSummary.from_sorted(x)
    assert wasserstein_normed(summary, x + sd) == pytest.approx(1.0, rel=1e-9)
    assert reference_scale(summary) == pytest.approx(sd)
    assert reference_scale(np.array([2.0, 2.0])) == 1.0
    assert wasserstein_normed(x, x + 1.0, scale=2.0) == pytest.approx(0.5, rel=1e-9)
    with pytest.raises(InvalidInput):
        wasserstein_normed(x, x, scale=0.0)


@pytest.mark.parametrize("seed", range(6))
def test_chi2_matches_scipy_contingency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    labels = [f"c{i}" for i in range(k)]
    ref = {lab: int(c) for lab, c in zip(labels, rng.integers(0, 200, size=k))}
    cur = {lab: int(c) for lab, c in zip(labels, rng.integers(0, 200, size=k))}
    cur["unseen"] = int(rng.integers(1, 20))
    ref["gone_everywhere"], cur["gone_everywhere"] = 0, 0
    ours = chi2_test(ref, cur)
    keys = sorted(k for k in set(ref) | set(cur) if ref.get(k, 0) + cur.get(k, 0) > 0)
    table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]])
    theirs = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_chi2_edge_cases_never_crash() -> None:
    assert chi2_test({"a": 10}, {"a": 3}) == TestResult(0.0, 1.0)
    assert chi2_test({"a": 10, "b": 0}, {"a": 3}) == TestResult(0.0, 1.0)
    r = chi2_test({"a": 10}, {"b": 3})  # disjoint supports: maximal evidence, finite
    assert np.isfinite(r.statistic) and r.p_value < 0.001
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    with pytest.raises(InvalidInput):
        chi2_test({"a": 0}, {"a": 3})
    with pytest.raises(InvalidInput):
        chi2_test({"a": -1}, {"a": 3})


@pytest.mark.parametrize("bad", [[], [1.0, np.nan], [np.inf], [[1.0]]])
def test_invalid_numeric_inputs(bad: object) -> None:
    ref = np.arange(5.0)
    with pytest.raises(InvalidInput):
        ks_test(ref, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        wasserstein(bad, ref)  # type: ignore[arg-type]


def test_unsorted_reference_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="sorted"):
        ks_test([3.0, 1.0, 2.0], [1.0])
    with pytest.raises(InvalidInput, match="NaN"):
        ks_test([1.0, np.nan], [1.0])
