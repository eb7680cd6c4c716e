"""Statistics from summaries against scipy and stats/ on the raw rows, and the sketch bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from loopwatch.errors import InvalidInput
from loopwatch.stats import binned
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary
from loopwatch.stats.univariate import chi2_test
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.feature_tests import (
    binned_tests,
    categorical_tests,
    ks_from_summaries,
    wasserstein_from_summaries,
)
from loopwatch.summaries.numeric import NumericPart


def reference_of(values: np.ndarray, n_bins: int = 10) -> tuple[NumericSummary, np.ndarray, np.ndarray]:
    """What a profile keeps for a numeric feature (drift/profile.py's UnivariateProfile.build)."""
    summary = NumericSummary.from_values(values)
    edges = binned.quantile_edges(summary.sorted_values, n_bins=n_bins)
    return summary, edges, np.asarray(summary.bin_counts(edges), dtype=np.int64)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_small_windows_are_exact_and_equal_scipy(shift: float) -> None:
    rng = np.random.default_rng(6230)
    ref_values, cur = rng.normal(size=3_000), rng.normal(shift, 1.2, size=400)
    ref, edges, bins = reference_of(ref_values)
    part = NumericPart.from_values(cur, edges=edges)
    ks = ks_from_summaries(ref, part)
    expected = sps.ks_2samp(ref_values, cur)
    assert ks.exact and ks.error_bound == 0.0
    assert ks.statistic == pytest.approx(expected.statistic, abs=1e-15)
    assert ks.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert ks.drifted == (expected.pvalue < 0.05)
    w = wasserstein_from_summaries(ref, part)
    assert w.exact and w.distance == pytest.approx(sps.wasserstein_distance(ref_values, cur), rel=1e-12)

    tests = binned_tests(reference_edges=edges, reference_bins=bins, current=part)
    raw = binned.bin_counts(np.sort(cur), edges)
    assert tests.psi == binned.psi(bins, raw) and tests.js_distance == binned.js_distance(bins, raw)
    assert tests.kl_divergence == binned.kl_divergence(bins, raw)
    assert tests.hellinger == binned.hellinger(bins, raw)
    table = np.vstack((bins, raw))
    chi2 = sps.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    assert tests.chi2_statistic == pytest.approx(chi2.statistic, rel=1e-12)
    assert tests.chi2_p_value == pytest.approx(chi2.pvalue, rel=1e-9)


def test_large_windows_report_a_bound_that_holds() -> None:
    rng = np.random.default_rng(6231)
    ref_values = rng.normal(size=50_000)
    ref, edges, _ = reference_of(ref_values)
    batches = [rng.normal(0.05, 1.0, size=100_000) for _ in range(4)]
    part = NumericPart.empty(edges=edges)
    for batch in batches:  # as windows are merged into a day
        part = part.merge(NumericPart.from_values(batch, edges=edges))
    cur = np.concatenate(batches)
    ks = ks_from_summaries(ref, part)
    exact = sps.ks_2samp(ref_values, cur)
    assert not ks.exact and ks.error_bound == pytest.approx(part.rank_error)
    assert ks.statistic_low <= exact.statistic <= ks.statistic_high
    assert ks.p_value_low <= exact.pvalue <= ks.p_value_high
    assert ks.drifted  # a 0.05 sd shift in 400k rows is far past the bound
    w = wasserstein_from_summaries(ref, part)
    assert w.low <= sps.wasserstein_distance(ref_values, cur) <= w.high
    assert w.normed_error_bound == pytest.approx(w.error_bound / ref.scale)


def test_the_decision_never_rejects_where_the_bound_leaves_room() -> None:
    rng = np.random.default_rng(6232)
    ref_values = rng.normal(size=20_000)
    ref, edges, _ = reference_of(ref_values)
    part = NumericPart.from_values(rng.normal(size=200_000), edges=edges)
    ks = ks_from_summaries(ref, part, alpha=0.5)
    assert ks.drifted == (ks.p_value_high < 0.5)
    assert ks.p_value_low <= ks.p_value <= ks.p_value_high


def test_categorical_tests_equal_scipy_while_exact() -> None:
    ref = CategoricalSummary({"1": 500, "2": 300, "3": 200})
    part = CategoricalPart.from_values([1] * 40 + [2] * 40 + [3] * 15 + [4] * 5)
    t = categorical_tests(ref, part)
    table = np.array([[500, 300, 200, 0], [40, 40, 15, 5]])
    chi2 = sps.chi2_contingency(table, correction=False)
    assert t.exact and t.chi2_statistic == pytest.approx(chi2.statistic, rel=1e-12)
    assert (t.chi2_statistic_low, t.chi2_p_value_high) == (t.chi2_statistic, t.chi2_p_value)
    assert t.psi == binned.categorical_distances(ref, {"1": 40, "2": 40, "3": 15, "4": 5})["psi"]


@pytest.mark.parametrize("tilt", [0.0, 0.3])
def test_categorical_tests_past_the_cap_bound_the_chi_square(tilt: float) -> None:
    rng = np.random.default_rng(6233)
    k = 3_000
    weights = 1.0 / np.arange(1, k + 1) ** 1.1
    ref_values = rng.choice(k, 50_000, p=weights / weights.sum())
    cur_weights = weights * np.exp(tilt * (np.arange(k) % 2))  # tilt: odd categories grow
    cur_values = rng.choice(k, 60_000, p=cur_weights / cur_weights.sum())
    ref = CategoricalSummary.from_values(ref_values.astype(str))
    part = CategoricalPart.empty()
    for batch in np.array_split(cur_values, 6):
        part = part.merge(CategoricalPart.from_values(batch))
    t = categorical_tests(ref, part)
    assert not t.exact and 0 < t.count_error and t.n_current == 60_000 and t.n_reference == 50_000
    # the chi-square of the true counts, on the same coarse table, lies above the reported low end
    from loopwatch.summaries.feature_tests import SKETCH_MIN_EXPECTED

    truth = {str(v): float(c) for v, c in zip(*np.unique(cur_values, return_counts=True))}
    kept = [kk for kk, v in ref.counts.items() if v / ref.n * t.n_current >= SKETCH_MIN_EXPECTED * t.count_error]
    assert 3 <= len(kept) < 100
    true_ref = {kk: float(ref.counts[kk]) for kk in kept}
    true_ref["rest"] = ref.n - sum(true_ref.values())
    true_cur = {kk: truth.get(kk, 0.0) for kk in kept}
    true_cur["rest"] = t.n_current - sum(true_cur.values())
    exact = chi2_test(true_ref, true_cur)
    assert t.chi2_statistic_low <= exact.statistic
    assert t.chi2_p_value_high >= exact.p_value
    assert (t.chi2_p_value_high < 0.05) == (tilt > 0)  # no false alarm; a real tilt still found


def test_bad_input_is_refused() -> None:
    ref, edges, bins = reference_of(np.arange(100.0))
    other = NumericPart.from_values([1.0, 2.0], edges=[0.0, 50.0])
    with pytest.raises(InvalidInput, match="other edges"):
        binned_tests(reference_edges=edges, reference_bins=bins, current=other)
    with pytest.raises(InvalidInput, match="no values"):
        ks_from_summaries(ref, NumericPart.from_values([None], edges=edges))
    with pytest.raises(InvalidInput):
        ks_from_summaries(ref, other, alpha=1.5)
    with pytest.raises(InvalidInput):
        ks_from_summaries(np.arange(3.0), other)  # type: ignore[arg-type]
