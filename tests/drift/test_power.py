"""Power: changes the documentation promises to catch are caught, in seeded repetitions.

* A mean shift of 0.1 reference standard deviations at 10,000 rows per side
  is detected at least 80% of the time by every numeric decider (the KS test,
  and each distance against its calibrated threshold), one feature,
  univariate only, when the practical threshold is set to 0.05 sd: the power
  of the significance half of the decision.
* With the default practical threshold (max(0.1 sd, the reference band at
  1,000 rows), about 0.105 sd here) a shift of 0.15 sd is detected at least 80%
  of the time, and the 0.1 sd shift, at the threshold, is not promised.
* A change of correlation that leaves every marginal unchanged is dataset
  drift at least 80% of the time, with no feature flagged.

The rates are printed (``-s``) and recorded in docs/quality.md; the power
across sample sizes is in benchmarks/power_table.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwatch.drift import build_profile, compare

DECIDERS = ("ks", "wasserstein_normed", "psi", "kl_divergence", "js_distance", "hellinger")
REPETITIONS = 30
N = 10_000
SHIFT = 0.1
#: A shift clearly above the default practical threshold.
LARGER_SHIFT = 0.15
GATE = {"wasserstein_normed": 0.05}


@pytest.fixture(scope="module")
def shift_detections() -> dict[str, int]:
    hits = dict.fromkeys(DECIDERS, 0) | {"default_larger_shift": 0}
    for seed in range(REPETITIONS):
        rng = np.random.default_rng(10_000 + seed)
        reference = pd.DataFrame({"x": rng.normal(50.0, 8.0, N)})
        current = pd.DataFrame({"x": rng.normal(50.0 + SHIFT * 8.0, 8.0, N)})
        profile = build_profile(reference, numeric=["x"], categorical=[], joint=False, seed=seed)
        for decider in DECIDERS:
            report = compare(profile, current, numeric_test=decider, multivariate=False, outliers=False,
                             practical_thresholds=GATE)
            assert report.features["x"].decided_by == decider
            hits[decider] += report.features["x"].drift
        larger = pd.DataFrame({"x": rng.normal(50.0 + LARGER_SHIFT * 8.0, 8.0, N)})
        hits["default_larger_shift"] += compare(profile, larger, multivariate=False, outliers=False).dataset_drift
    print(f"\ndetections of a {SHIFT} sd shift (and {LARGER_SHIFT} sd by default) at n={N} per side, "
          f"of {REPETITIONS}: {hits}")
    return hits


@pytest.mark.parametrize("decider", DECIDERS)
def test_a_tenth_of_a_standard_deviation_is_significant(shift_detections: dict[str, int], decider: str) -> None:
    assert shift_detections[decider] >= 0.8 * REPETITIONS


def test_a_shift_above_the_practical_threshold_is_detected(shift_detections: dict[str, int]) -> None:
    assert shift_detections["default_larger_shift"] >= 0.8 * REPETITIONS


def test_the_same_deciders_stay_quiet_without_a_shift() -> None:
    # the other side of the coin, on fewer repetitions: no decider fires on most null samples
    quiet = dict.fromkeys(DECIDERS, 0)
    for seed in range(10):
        rng = np.random.default_rng(20_000 + seed)
        profile = build_profile(pd.DataFrame({"x": rng.normal(size=N)}), numeric=["x"], categorical=[],
                                joint=False, seed=seed)
        current = pd.DataFrame({"x": rng.normal(size=N)})
        for decider in DECIDERS:
            quiet[decider] += not compare(profile, current, numeric_test=decider, multivariate=False,
                                          outliers=False).dataset_drift
    assert all(v >= 9 for v in quiet.values()), quiet


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return pd.DataFrame({"a": 10.0 + 2.0 * z[:, 0], "b": z[:, 1], "plan": rng.choice(["x", "y"], n)})


def test_a_change_of_correlation_with_unchanged_marginals() -> None:
    repetitions, caught = 20, 0
    by_test: dict[str, int] = {}
    features_flagged = 0
    for seed in range(repetitions):
        rng = np.random.default_rng(30_000 + seed)
        reference, current = correlated(rng, 1000, 0.8), correlated(rng, 500, 0.0)
        profile = build_profile(reference, numeric=["a", "b"], categorical=["plan"], seed=seed)
        report = compare(profile, current, mmd_permutations=199, seed=seed)
        features_flagged += bool(report.drifted_features)
        caught += report.dataset_drift and not report.drifted_features
        for name, test in report.multivariate.items():
            by_test[name] = by_test.get(name, 0) + test.drift
    print(f"\ncorrelation 0.8 -> 0 (1000 vs 500 rows), of {repetitions}: dataset drift without a feature "
          f"{caught}, a feature flagged {features_flagged}, per test {by_test}")
    assert caught >= 0.8 * repetitions
    assert features_flagged <= 2
