"""Known answers: every numeric distance and test sees a 0.1 sd mean shift at
10,000 rows per side, and the KS and chi-square tests stay quiet at their
stated rate when nothing drifted."""

from __future__ import annotations

import numpy as np
import pytest

from loopwatch.stats.binned import bin_counts, hellinger, js_distance, kl_divergence, psi, quantile_edges
from loopwatch.stats.calibration import NUMERIC_STATISTICS, bootstrap_null
from loopwatch.stats.sketch import NumericSummary
from loopwatch.stats.univariate import chi2_test, ks_and_wasserstein, ks_test, wasserstein_normed

N = 10_000
SHIFT = 0.1
REPS = 50
NULL_REPS = 200
MAX_ALARMS = 18  # as in test_calibration: P(Binomial(200, 0.05) >= 19) = 0.006


def all_distances(reference: NumericSummary, current_sorted: np.ndarray) -> dict[str, float]:
    edges = quantile_edges(reference)
    ref, cur = bin_counts(reference.sorted_values, edges), bin_counts(current_sorted, edges)
    ks, w = ks_and_wasserstein(reference, current_sorted)
    return {
        "ks_statistic": ks,
        "wasserstein": w,
        "wasserstein_normed": wasserstein_normed(reference, current_sorted, current_sorted=True),
        "psi": psi(ref, cur),
        "kl_divergence": kl_divergence(ref, cur),
        "js_distance": js_distance(ref, cur),
        "hellinger": hellinger(ref, cur),
    }


def test_a_tenth_of_a_standard_deviation_is_detected_by_every_statistic() -> None:
    detected = dict.fromkeys((*NUMERIC_STATISTICS, "ks_test"), 0)
    for rep in range(REPS):
        rng = np.random.default_rng([31, rep])
        reference = NumericSummary.from_values(rng.normal(0.0, 1.0, size=N))
        current = np.sort(rng.normal(SHIFT, 1.0, size=N))
        # a capped bootstrap (the scaling law carries it to n = 10,000) keeps this test quick
        cal = bootstrap_null(reference, N, rng=rng, max_size=2000, n_boot=100)
        for name, value in all_distances(reference, current).items():
            detected[name] += value > cal.threshold(name, 0.05)
        detected["ks_test"] += ks_test(reference, current, current_sorted=True).p_value < 0.05
    rates = {name: count / REPS for name, count in detected.items()}
    assert min(rates.values()) >= 0.8, rates


@pytest.mark.parametrize("n", [1000, 10_000])
def test_ks_test_is_quiet_without_drift(n: int) -> None:
    alarms = 0
    for rep in range(NULL_REPS):
        rng = np.random.default_rng([37, rep, n])
        reference = np.sort(rng.lognormal(size=n))
        alarms += ks_test(reference, rng.lognormal(size=n)).p_value < 0.05
    assert 2 <= alarms <= MAX_ALARMS, alarms


def test_chi2_test_is_quiet_without_drift() -> None:
    p = np.array([0.5, 0.3, 0.15, 0.05])
    labels = ["a", "b", "c", "d"]
    alarms = 0
    for rep in range(NULL_REPS):
        rng = np.random.default_rng([41, rep])
        ref = dict(zip(labels, rng.multinomial(1000, p).tolist()))
        cur = dict(zip(labels, rng.multinomial(1000, p).tolist()))
        alarms += chi2_test(ref, cur).p_value < 0.05
    assert 2 <= alarms <= MAX_ALARMS, alarms
