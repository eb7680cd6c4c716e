"""Bootstrap thresholds: the vectorised bootstrap computes the production
distances, the scaling law holds, and a threshold at alpha = 0.05 is exceeded
5% of the time when nothing drifted."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import bin_counts, categorical_distances, hellinger, js_distance, kl_divergence, psi
from loopwatch.stats.binned import quantile_edges
from loopwatch.stats.calibration import (
    CATEGORICAL_STATISTICS,
    NUMERIC_STATISTICS,
    SCALING_EXPONENT,
    NullCalibration,
    bootstrap_null,
    bootstrap_null_categorical,
    gamma_quantile,
    numeric_statistic_functions,
    sorted_uniform_indices,
)
from loopwatch.stats.sketch import NumericSummary
from loopwatch.stats.univariate import wasserstein_normed

REPS = 200
# P(Binomial(200, 0.05) >= 19) = 0.006: a calibrated threshold fails this bound once in ~170 runs
MAX_ALARMS = 18
CALIBRATED = ("psi", "kl_divergence", "js_distance", "hellinger", "wasserstein_normed")

Draw = Callable[[np.random.Generator, int], np.ndarray]
DISTRIBUTIONS: dict[str, Draw] = {
    "normal": lambda rng, n: rng.normal(5.0, 2.0, size=n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, size=n),
    "uniform": lambda rng, n: rng.uniform(-1.0, 3.0, size=n),
    "discrete": lambda rng, n: rng.poisson(3.0, size=n).astype(float),
}


def test_the_binomial_bound_is_what_the_tests_claim() -> None:
    assert stats.binom.sf(MAX_ALARMS, REPS, 0.05) < 0.01
    assert stats.binom.sf(MAX_ALARMS - 1, REPS, 0.05) > 0.01


def test_gamma_quantile_matches_scipy() -> None:
    for mean, var, level in [(1.0, 0.5, 0.95), (0.02, 1e-4, 0.99), (3.0, 30.0, 0.5)]:
        expected = stats.gamma.ppf(level, mean**2 / var, scale=var / mean)
        assert gamma_quantile(mean, var, level) == pytest.approx(expected, rel=1e-10)
    assert gamma_quantile(0.0, 0.0, 0.95) == 0.0 and gamma_quantile(2.0, 0.0, 0.95) == 2.0
    with pytest.raises(InvalidInput):
        gamma_quantile(1.0, 1.0, 1.0)


def test_sorted_uniform_indices_are_sorted_uniform_draws() -> None:
    idx = sorted_uniform_indices(np.random.default_rng(0), 200, 500, 7)
    assert idx.shape == (200, 500) and idx.min() == 0 and idx.max() == 6
    assert np.all(np.diff(idx, axis=1) >= 0)
    counts = np.bincount(idx.ravel(), minlength=7)
    assert stats.chisquare(counts).pvalue > 0.001


@pytest.mark.parametrize("sizes", [(400, 400, 5000), (3000, 700, 1000), (150, 900, 5000)])
def test_vectorised_bootstrap_equals_the_production_functions(sizes: tuple[int, int, int]) -> None:
    n_ref, n_cur, max_size = sizes
    rng = np.random.default_rng(n_ref)
    # rounding makes ties within and across the resamples
    reference = NumericSummary.from_values(np.round(rng.gamma(2.0, size=n_ref), 1), max_points=1000)
    fast = bootstrap_null(reference, n_cur, rng=np.random.default_rng(1), n_boot=30, max_size=max_size)
    slow = bootstrap_null(reference, n_cur, numeric_statistic_functions(), rng=np.random.default_rng(1),
                          n_boot=30, max_size=max_size)
    assert set(fast.moments) == set(NUMERIC_STATISTICS) == set(slow.moments)
    for name in NUMERIC_STATISTICS:
        np.testing.assert_allclose(fast.moments[name], slow.moments[name], rtol=1e-9, atol=1e-15, err_msg=name)
        assert fast.threshold(name) == pytest.approx(slow.threshold(name), rel=1e-9)
    assert (fast.sample_reference, fast.sample_current) == (min(n_ref, max_size), min(n_cur, max_size))


def test_scaling_law_carries_a_capped_bootstrap_to_the_real_sizes() -> None:
    rng = np.random.default_rng(3)
    reference = np.sort(rng.normal(size=40_000))
    full = bootstrap_null(reference, 20_000, CALIBRATED, rng=rng, max_size=40_000, n_boot=200)
    capped = bootstrap_null(reference, 20_000, CALIBRATED, rng=rng, max_size=2_000, n_boot=200)
    assert capped.size_ratio == pytest.approx((1000.0) / (40_000 * 20_000 / 60_000))
    for name in CALIBRATED:
        assert capped.scale_factor(name) == pytest.approx(capped.size_ratio ** SCALING_EXPONENT[name])
        assert capped.threshold(name) == pytest.approx(full.threshold(name), rel=0.12), name
    uncapped = bootstrap_null(reference, 20_000, ["psi"], rng=rng, max_size=10**6, n_boot=20)
    assert uncapped.size_ratio == 1.0


def test_calibration_round_trips_through_json() -> None:
    cal = bootstrap_null(np.arange(100.0), 50, rng=np.random.default_rng(0), n_boot=20)
    back = NullCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal and back.thresholds(0.01) == cal.thresholds(0.01)
    with pytest.raises(InvalidInput):
        NullCalibration.from_dict({"moments": {}})


def test_custom_statistics_need_a_scaling_law() -> None:
    def mean_gap(ref: np.ndarray, cur: np.ndarray) -> float:
        return abs(float(ref.mean() - cur.mean()))

    ref, rng = np.arange(50.0), np.random.default_rng(0)
    with pytest.raises(InvalidInput, match="scaling"):
        bootstrap_null(ref, 50, {"mean_gap": mean_gap}, rng=rng, n_boot=10)
    cal = bootstrap_null(ref, 50, {"mean_gap": mean_gap}, rng=rng, n_boot=10, scaling={"mean_gap": 0.5})
    assert cal.threshold("mean_gap") > 0
    with pytest.raises(InvalidInput):
        bootstrap_null(ref, 50, ["nope"], rng=rng)
    with pytest.raises(InvalidInput):
        bootstrap_null(ref, 0, rng=rng)
    with pytest.raises(InvalidInput):
        bootstrap_null(ref, 10, rng=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        cal.threshold("psi")
    with pytest.raises(InvalidInput):
        cal.threshold("mean_gap", alpha=0.0)


def test_a_constant_reference_alarms_on_any_change_only() -> None:
    cal = bootstrap_null(np.full(100, 2.0), 100, rng=np.random.default_rng(0), n_boot=20)
    assert all(t == 0.0 for t in cal.thresholds().values())
    assert wasserstein_normed(np.full(100, 2.0), np.full(100, 2.0)) <= cal.threshold("wasserstein_normed")


def realized(reference: NumericSummary, current_sorted: np.ndarray) -> dict[str, float]:
    edges = quantile_edges(reference)
    ref, cur = bin_counts(reference.sorted_values, edges), bin_counts(current_sorted, edges)
    return {
        "psi": psi(ref, cur),
        "kl_divergence": kl_divergence(ref, cur),
        "js_distance": js_distance(ref, cur),
        "hellinger": hellinger(ref, cur),
        "wasserstein_normed": wasserstein_normed(reference, current_sorted, current_sorted=True),
    }


@pytest.mark.parametrize("n,max_size", [(1000, 5000), (10_000, 2000)])
@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_numeric_thresholds_hold_their_false_alarm_rate(dist: str, n: int, max_size: int) -> None:
    # n = 10,000 with max_size = 2,000: the bootstrap runs at a fifth of the real
    # effective size, so the scaling law does real work
    draw = DISTRIBUTIONS[dist]
    alarms = dict.fromkeys(CALIBRATED, 0)
    for rep in range(REPS):
        rng = np.random.default_rng([2024, rep, n])
        reference = NumericSummary.from_values(draw(rng, n))
        current = np.sort(draw(rng, n))
        cal = bootstrap_null(reference, n, CALIBRATED, rng=rng, max_size=max_size)
        for name, value in realized(reference, current).items():
            alarms[name] += value > cal.threshold(name, 0.05)
    assert max(alarms.values()) <= MAX_ALARMS, alarms
    assert min(alarms.values()) >= 2, alarms  # and not uselessly conservative


# every category expects >= 10 rows at n = 1000: the regime the categorical bootstrap claims
CATEGORIES = {
    "balanced": np.full(5, 0.2),
    "skewed": np.array([0.55, 0.2, 0.12, 0.08, 0.04, 0.01]),
}


@pytest.mark.parametrize("n,max_size", [(1000, 5000), (10_000, 2000)])
@pytest.mark.parametrize("shape", sorted(CATEGORIES))
def test_categorical_thresholds_hold_their_false_alarm_rate(shape: str, n: int, max_size: int) -> None:
    p = CATEGORIES[shape]
    labels = [f"c{i}" for i in range(p.size)]
    alarms = dict.fromkeys(CATEGORICAL_STATISTICS, 0)
    for rep in range(REPS):
        rng = np.random.default_rng([7, rep, n])
        ref = dict(zip(labels, rng.multinomial(n, p).tolist()))
        cur = dict(zip(labels, rng.multinomial(n, p).tolist()))
        cal = bootstrap_null_categorical(ref, n, rng=rng, max_size=max_size)
        for name, value in categorical_distances(ref, cur).items():
            alarms[name] += value > cal.threshold(name, 0.05)
    assert max(alarms.values()) <= MAX_ALARMS, alarms
    assert min(alarms.values()) >= 2, alarms


def test_categorical_bootstrap_validates_its_input() -> None:
    with pytest.raises(InvalidInput):
        bootstrap_null_categorical({"a": 0}, 10, rng=np.random.default_rng(0))
    with pytest.raises(InvalidInput):
        bootstrap_null_categorical({"a": 3}, 10, ["wasserstein"], rng=np.random.default_rng(0))
    cal = bootstrap_null_categorical({"a": 3, "b": 0}, 10, rng=np.random.default_rng(0), n_boot=10)
    assert cal.thresholds()["psi"] == 0.0  # one category: nothing can move
