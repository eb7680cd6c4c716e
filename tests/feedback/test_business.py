"""Business metrics against performance: lagged correlations and a changed relation,
checked against scipy, with properties and known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.feedback.business import lagged_correlation, relation_changed


class TestAgainstScipy:
    @pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
    def test_pearson_r_p_value_and_interval(self, confidence: float) -> None:
        rng = np.random.default_rng(0)
        x = rng.normal(size=40)
        y = 0.4 * x + rng.normal(size=40)
        (lag0,) = lagged_correlation(x, y, max_lag=0, confidence=confidence)
        expected = stats.pearsonr(x, y)
        interval = expected.confidence_interval(confidence_level=confidence)
        assert lag0.r == pytest.approx(expected.statistic, rel=1e-12)
        assert lag0.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert (lag0.ci_low, lag0.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-10)
        assert lag0.n == 40

    def test_each_lag_pairs_t_with_t_plus_lag(self) -> None:
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=30), rng.normal(size=30)
        results = lagged_correlation(x, y, min_lag=-3, max_lag=3)
        assert [c.lag for c in results] == list(range(-3, 4))
        for c in results:
            xs, ys = (x[: 30 - c.lag], y[c.lag:]) if c.lag >= 0 else (x[-c.lag:], y[: 30 + c.lag])
            assert c.r == pytest.approx(stats.pearsonr(xs, ys).statistic, rel=1e-12)
            assert c.n == 30 - abs(c.lag)

    def test_spearman_r_and_p_value(self) -> None:
        rng = np.random.default_rng(2)
        x = rng.normal(size=50)
        y = np.exp(x) + rng.normal(scale=0.5, size=50)
        y[:5] = y[5]  # ties are averaged, as scipy does
        (lag0,) = lagged_correlation(x, y, max_lag=0, method="spearman")
        expected = stats.spearmanr(x, y)
        assert lag0.r == pytest.approx(expected.statistic, rel=1e-12)
        assert lag0.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert lag0.ci_low < lag0.r < lag0.ci_high

    def test_missing_periods_are_dropped_pair_by_pair(self) -> None:
        rng = np.random.default_rng(3)
        x, y = rng.normal(size=25), rng.normal(size=25)
        x[[2, 7]], y[[3, 11]] = np.nan, np.nan
        (lag0, lag1) = lagged_correlation(x, y, max_lag=1)
        keep = ~(np.isnan(x) | np.isnan(y))
        assert lag0.n == keep.sum() and lag0.r == pytest.approx(stats.pearsonr(x[keep], y[keep]).statistic)
        keep1 = ~(np.isnan(x[:-1]) | np.isnan(y[1:]))
        assert lag1.n == keep1.sum()
        assert lag1.r == pytest.approx(stats.pearsonr(x[:-1][keep1], y[1:][keep1]).statistic)


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=4, max_size=40),
           st.sampled_from(["pearson", "spearman"]))
    def test_symmetric_at_lag_zero_and_bounded(self, pairs: list[tuple[float, float]], method: str) -> None:
        x, y = map(np.array, zip(*pairs))
        (a,) = lagged_correlation(x, y, max_lag=0, method=method)  # type: ignore[arg-type]
        (b,) = lagged_correlation(y, x, max_lag=0, method=method)  # type: ignore[arg-type]
        if math.isnan(a.r):
            assert math.isnan(b.r)
            return
        assert a.r == pytest.approx(b.r, abs=1e-12) and a.p_value == pytest.approx(b.p_value, abs=1e-12)
        assert -1.0 <= a.ci_low <= a.r <= a.ci_high <= 1.0
        assert 0.0 <= a.p_value <= 1.0

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.floats(-100, 100), min_size=5, max_size=30), st.floats(0.1, 10), st.floats(-50, 50))
    def test_invariant_to_a_positive_linear_change_of_the_business_metric(
            self, values: list[float], scale: float, shift: float) -> None:
        x = np.array(values)
        y = np.sin(x) + 0.1 * x
        (a,) = lagged_correlation(x, y, max_lag=0)
        (b,) = lagged_correlation(x, scale * y + shift, max_lag=0)
        if math.isnan(a.r) or math.isnan(b.r):
            return
        assert b.r == pytest.approx(a.r, abs=1e-6)


class TestKnownAnswers:
    def test_a_noisy_copy_two_periods_later_peaks_at_lag_two(self) -> None:
        rng = np.random.default_rng(4)
        performance = rng.normal(0.85, 0.03, size=90)
        revenue = np.full(90, np.nan)
        revenue[2:] = 1000 + 4000 * (performance[:-2] - 0.85) + rng.normal(0, 60, size=88)
        results = lagged_correlation(performance, revenue, max_lag=7)
        best = max(results, key=lambda c: abs(c.r))
        assert best.lag == 2 and best.ci_low > 0 and best.p_value < 1e-6
        assert best.r > 0.8 and all(abs(c.r) < 0.4 for c in results if c.lag != 2)  # noise at ~0.11 sd

    @pytest.mark.parametrize("method", ["pearson", "spearman"])
    def test_independent_series_cover_zero_at_the_stated_rate(self, method: str) -> None:
        rng = np.random.default_rng(5)
        covered = 0
        reps = 400
        for _ in range(reps):
            (c,) = lagged_correlation(rng.normal(size=40), rng.normal(size=40), max_lag=0, method=method)
            covered += c.ci_low <= 0 <= c.ci_high
        low, high = stats.binom.ppf([0.0005, 0.9995], reps, 0.95)
        assert low <= covered <= high

    def test_too_few_pairs_and_constant_series_give_nan_not_errors(self) -> None:
        results = lagged_correlation([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0], max_lag=3)
        assert results[0].n == 5 and math.isfinite(results[0].r)
        assert results[2].n == 3 and math.isnan(results[2].r) and math.isnan(results[2].ci_low)
        assert json.loads(json.dumps(results[3].to_dict()))["r"] is None
        (flat,) = lagged_correlation([1.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], max_lag=0)
        assert math.isnan(flat.r) and math.isnan(flat.p_value)
        (perfect,) = lagged_correlation([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], max_lag=0)
        assert perfect.r == pytest.approx(1.0) and perfect.p_value < 1e-12 and perfect.ci_high <= 1.0


class TestAlignment:
    def test_series_align_on_their_periods_and_gaps_count_as_periods(self) -> None:
        days = pd.date_range("2024-01-01", periods=30, freq="D")
        rng = np.random.default_rng(6)
        perf = pd.Series(rng.normal(size=30), index=days)
        revenue = pd.Series(np.r_[np.nan, perf.to_numpy()[:-1]] + rng.normal(0, 0.1, 30), index=days)
        gappy = revenue.drop(days[[5, 6, 20]])  # missing days stay days
        shuffled = gappy.sample(frac=1.0, random_state=0)
        best = max(lagged_correlation(perf, shuffled, max_lag=3), key=lambda c: abs(c.r))
        assert best.lag == 1 and best.n == 26
        periods = lagged_correlation(perf.to_period("D"), gappy.to_period("D").iloc[::-1], max_lag=3)
        assert [c.r for c in periods] == pytest.approx([c.r for c in lagged_correlation(perf, gappy, max_lag=3)])

    def test_integer_periods_are_completed_too(self) -> None:
        perf = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=[0, 1, 2, 3, 4, 5])
        business = pd.Series([2.0, 1.0, 4.0, 3.0, 6.0], index=[1, 2, 3, 4, 6])  # period 5 missing
        (lag1,) = lagged_correlation(perf, business, min_lag=1, max_lag=1)
        # periods 0..6: pairs (perf[t], business[t + 1]) where both exist
        expected = stats.pearsonr([1.0, 2.0, 3.0, 4.0, 6.0], [2.0, 1.0, 4.0, 3.0, 6.0])
        assert lag1.n == 5 and lag1.r == pytest.approx(expected.statistic)

    def test_bad_input_is_refused(self) -> None:
        with pytest.raises(InvalidInput, match="both"):
            lagged_correlation(pd.Series([1.0, 2.0]), [1.0, 2.0])
        with pytest.raises(InvalidInput, match="periods"):
            lagged_correlation([1.0, 2.0, 3.0], [1.0, 2.0])
        with pytest.raises(InvalidInput, match="method"):
            lagged_correlation([1.0], [1.0], method="kendall")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="confidence"):
            lagged_correlation([1.0], [1.0], confidence=95)
        with pytest.raises(InvalidInput, match="min_lag"):
            lagged_correlation([1.0], [1.0], min_lag=2, max_lag=1)
        with pytest.raises(InvalidInput, match="infinite"):
            lagged_correlation([1.0, math.inf], [1.0, 2.0])
        with pytest.raises(InvalidInput, match="regular grid"):
            stamps = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04 12:00"], format="ISO8601")
            lagged_correlation(pd.Series([1.0, 2.0, 3.0], index=stamps), pd.Series([1.0, 2.0, 3.0], index=stamps))
        with pytest.raises(InvalidInput, match="repeated"):
            lagged_correlation(pd.Series([1.0, 2.0], index=[0, 0]), pd.Series([1.0, 2.0], index=[0, 1]))


class TestRelationChanged:
    def test_the_z_test_of_two_correlations(self) -> None:
        rng = np.random.default_rng(7)
        x = rng.normal(size=100)
        y = np.r_[0.8 * x[:50], -0.2 * x[50:]] + rng.normal(0, 0.6, 100)
        result = relation_changed(x, y, split_index=50)
        r1, r2 = stats.pearsonr(x[:50], y[:50]).statistic, stats.pearsonr(x[50:], y[50:]).statistic
        z = (np.arctanh(r1) - np.arctanh(r2)) / np.sqrt(2 / 47)
        assert (result.r_before, result.r_after) == pytest.approx((r1, r2))
        assert result.z == pytest.approx(z) and result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
        assert result.changed and result.to_dict()["changed"] is True

    def test_the_slope_test_is_the_interaction_of_one_least_squares_fit(self) -> None:
        rng = np.random.default_rng(8)
        x = rng.normal(size=80)
        y = 1.0 + np.r_[1.0 * x[:30], 1.6 * x[30:]] + rng.normal(0, 1.0, 80)
        result = relation_changed(x, y, split_index=30)
        after = (np.arange(80) >= 30).astype(float)
        design = np.column_stack([np.ones(80), x, after, x * after])
        coef, rss, *_ = np.linalg.lstsq(design, y, rcond=None)
        cov = rss[0] / (80 - 4) * np.linalg.inv(design.T @ design)
        t = coef[3] / np.sqrt(cov[3, 3])
        assert result.slope_before == pytest.approx(stats.linregress(x[:30], y[:30]).slope)
        assert result.slope_after == pytest.approx(coef[1] + coef[3])
        assert result.slope_t == pytest.approx(t) and result.slope_p_value == pytest.approx(2 * stats.t.sf(abs(t), 76))

    def test_a_stable_relation_changes_at_most_at_alpha(self) -> None:
        rng = np.random.default_rng(9)
        reps, alpha = 400, 0.05
        flagged = 0
        for _ in range(reps):
            x = rng.normal(size=60)
            flagged += relation_changed(x, 0.5 * x + rng.normal(size=60), split_index=30, alpha=alpha).changed
        assert flagged <= stats.binom.ppf(0.999, reps, alpha)

    def test_a_lagged_relation_and_short_sides(self) -> None:
        rng = np.random.default_rng(10)
        x = rng.normal(size=60)
        y = np.r_[0.0, 0.0, x[:-2]] + rng.normal(0, 0.3, 60)
        y[32:] = -y[32:]
        result = relation_changed(x, y, split_index=30, lag=2)
        assert result.r_before > 0.8 and result.r_after < -0.8 and result.changed
        short = relation_changed(x, y, split_index=2)
        assert short.n_before == 2 and math.isnan(short.p_value) and not short.changed
        assert json.loads(json.dumps(short.to_dict()))["r_before"] is None
        with pytest.raises(InvalidInput, match="split_index"):
            relation_changed(x, y, split_index=60)
        with pytest.raises(InvalidInput, match="alpha"):
            relation_changed(x, y, split_index=30, alpha=0)


def test_a_lag_without_pairs_is_nan_without_a_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lags = lagged_correlation([np.nan] * 10, list(range(10)), max_lag=2)
    assert [lag.n for lag in lags] == [0, 0, 0] and all(np.isnan(lag.r) for lag in lags)
