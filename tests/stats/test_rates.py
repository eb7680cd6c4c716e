"""The outlier-rate test: exact conditional binomial, checked by brute force."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.stats.rates import RateResult, binomial_rate_test, rate_test


def _brute_force_conditional_p(k_w: int, n_w: int, k_r: int, n_r: int, rate: float) -> float:
    """P(K_w >= k_w | K_w + K_r = k_w + k_r) for independent Poisson(rate * n) counts, summed term by term."""
    total = k_w + k_r

    def joint(j: int) -> float:  # log-space: the rate must cancel out, whatever it is
        return math.exp(stats.poisson.logpmf(j, rate * n_w) + stats.poisson.logpmf(total - j, rate * n_r))

    return sum(joint(j) for j in range(k_w, total + 1)) / sum(joint(j) for j in range(total + 1))


@pytest.mark.parametrize("counts", [(3, 100, 1, 100), (12, 1000, 10, 1000), (40, 5000, 10, 1000), (0, 50, 4, 80),
                                    (7, 7, 0, 10)])
@pytest.mark.parametrize("rate", [0.001, 0.02])
def test_matches_a_brute_force_conditional_calculation(counts: tuple[int, int, int, int], rate: float) -> None:
    res = rate_test(*counts)
    assert res.p_value == pytest.approx(_brute_force_conditional_p(*counts, rate), rel=1e-9, abs=1e-12)
    k_w, n_w, k_r, n_r = counts
    share = n_w / (n_w + n_r)
    by_sum = sum(math.comb(k_w + k_r, j) * share**j * (1 - share) ** (k_w + k_r - j) for j in range(k_w, k_w + k_r + 1))
    assert res.p_value == pytest.approx(by_sum, rel=1e-9, abs=1e-12)
    assert (res.rate, res.expected_rate) == (k_w / n_w, k_r / n_r)


@settings(max_examples=200, deadline=None)
@given(n_w=st.integers(1, 5000), n_r=st.integers(1, 5000), data=st.data())
def test_p_is_a_probability_and_falls_as_the_window_count_rises(n_w: int, n_r: int, data: st.DataObject) -> None:
    k_r = data.draw(st.integers(0, n_r))
    k_w = data.draw(st.integers(0, n_w - 1))
    lower, higher = rate_test(k_w, n_w, k_r, n_r), rate_test(k_w + 1, n_w, k_r, n_r)
    assert 0.0 <= higher.p_value <= lower.p_value <= 1.0


def test_no_flag_at_all_is_no_evidence() -> None:
    assert rate_test(0, 100, 0, 100).p_value == 1.0


def test_the_plain_binomial_test_overstates_significance_against_an_estimated_rate() -> None:
    # 1,000 calibration rows at 1%, windows of 5,000 rows at the same true rate.
    rng = np.random.default_rng(0)
    k_ref, k_win = rng.binomial(1000, 0.01, size=1000), rng.binomial(5000, 0.01, size=1000)
    conditional = np.mean([rate_test(int(w), 5000, int(r), 1000).drift for w, r in zip(k_win, k_ref)])
    plain = np.mean([binomial_rate_test(int(w), 5000, r / 1000).drift for w, r in zip(k_win, k_ref)])
    assert conditional <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)
    assert plain > 0.15  # measured ~0.26


def test_plain_binomial_matches_scipy_and_results_serialise() -> None:
    res = binomial_rate_test(30, 1000, 0.02)
    assert res.p_value == pytest.approx(stats.binomtest(30, 1000, 0.02, alternative="greater").pvalue)
    assert res.method == "binomial" and rate_test(1, 2, 1, 2).method == "conditional_binomial"
    body = json.loads(json.dumps(res.to_dict()))
    assert body["drift"] == (res.p_value <= 0.05)
    assert isinstance(res, RateResult)


@pytest.mark.parametrize("args", [(5, 4, 1, 10), (-1, 4, 1, 10), (1, 0, 1, 10), (1, 4, 11, 10), (1.5, 4, 1, 10),
                                  (1, 4, 1, None)])
def test_bad_counts_raise_invalid_input(args: tuple[object, ...]) -> None:
    with pytest.raises(InvalidInput):
        rate_test(*args)  # type: ignore[arg-type]


def test_bad_rates_and_alpha_raise_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        binomial_rate_test(1, 10, 1.5)
    with pytest.raises(InvalidInput):
        rate_test(1, 10, 1, 10, alpha=0.0)
