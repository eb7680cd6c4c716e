"""False alarms when nothing changed: 200 seeded reference-against-reference comparisons.

Each repetition draws a reference and a current table independently from the
same mixed distribution (a normal, a skewed, a discrete and a bimodal numeric
feature, and two categorical ones), builds the reference's profile and
compares. Counted: each feature's test at a raw p < 0.05, each distance
against its calibrated 5% threshold, each multivariate and outlier test at a
raw p < 0.05, each family's decision (at its share of alpha) and
``dataset_drift`` (alpha = 0.05). Every count must stay at or below 18 of 200.
For a statistic whose true false-alarm rate is 5%, a count above 18 has a
probability of 0.6% (one-sided binomial tail); some 50 counts are checked at
once, so the plain 5% bound (15: P(X > 15) = 4.4%) would fail a correctly
calibrated statistic by chance about once in every run or two. A count above
18 says the statistic fires more often than its stated rate; a rate of 10%
passes 37% of the time, so this bound only catches a gross miscalibration
(the counts themselves are in docs/quality.md).

Sizes: the reference has 700 rows (so the profile's detectors are fitted on
490 rows), the current table 500. The profile is built with build_profile's
own defaults (bootstrap replicates included); only the MMD permutations are
cut to 199.
The repetitions run in two processes. The counts are printed (``-s``) and
recorded in docs/quality.md.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

REPETITIONS = 200
SEEDS = range(REPETITIONS)  # fixed in advance
N_REFERENCE = 700
N_CURRENT = 500
ALPHA = 0.05
#: Most alarms allowed in 200 null repetitions (see the module docstring).
BOUND = 18
NUMERIC = ("normal", "skewed", "discrete", "bimodal")
CATEGORICAL = ("plan", "region")
DISTANCES = ("wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger")


def draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """The null world: one fixed mixed distribution."""
    second_mode = rng.random(n) < 0.3
    return pd.DataFrame(
        {
            "normal": rng.normal(10.0, 2.0, n),
            "skewed": rng.lognormal(0.0, 1.0, n),
            "discrete": rng.poisson(3.0, n).astype(float),
            "bimodal": np.where(second_mode, rng.normal(-2.0, 0.5, n), rng.normal(1.0, 1.0, n)),
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["n", "s", "e", "w", "c", "x"], n, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03]),
        }
    )


def one_repetition(seed: int) -> dict[str, bool]:
    """Which statistic would have raised an alarm in this null repetition."""
    from threadpoolctl import threadpool_limits

    from loopwatch.drift import build_profile, compare

    with threadpool_limits(limits=1):
        rng = np.random.default_rng(seed)
        reference, current = draw(rng, N_REFERENCE), draw(rng, N_CURRENT)
        profile = build_profile(reference, numeric=list(NUMERIC), categorical=list(CATEGORICAL), seed=seed)
        report = compare(profile, current, mmd_permutations=199, seed=seed)
    alarms: dict[str, bool] = {}
    for name, feature in report.features.items():
        test = "ks" if feature.kind == "numeric" else "chi2"
        alarms[f"univariate:{test}:{name}"] = feature.statistics[test].p_value < ALPHA
        # each distance against its own calibrated threshold at 5%
        null = replace(profile.univariate.nulls[name], n_reference=feature.n_reference, n_current=feature.n_current)
        for distance in DISTANCES:
            if distance in feature.statistics:
                value = feature.statistics[distance]
                alarms[f"distance:{distance}:{name}"] = value > null.threshold(distance, ALPHA)
    for name, result in report.multivariate.items():
        alarms[f"multivariate_raw:{name}"] = result.p_value < ALPHA
    for name, result in report.outliers.items():
        alarms[f"outliers_raw:{name}"] = result.p_value < ALPHA
    alarms["family:features"] = any(f.drift for f in report.features.values())
    alarms["family:multivariate"] = any(m.drift for m in report.multivariate.values())
    alarms["family:outliers"] = any(o.drift for o in report.outliers.values())
    alarms["dataset_drift"] = report.dataset_drift
    return alarms


def run(seeds: range = SEEDS, workers: int = 2) -> dict[str, int]:
    counts: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold OpenMP threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for alarms in pool.map(one_repetition, seeds, chunksize=5):
            for key, fired in alarms.items():
                counts[key] = counts.get(key, 0) + int(fired)
    return counts


def test_the_bound_is_a_binomial_tail() -> None:
    # a correctly calibrated 5% statistic exceeds the bound in 0.6% of runs ...
    assert 0.005 < stats.binom.sf(BOUND, REPETITIONS, ALPHA) < 0.006
    # ... the plain one-sided 5% bound would be 15
    assert stats.binom.sf(15, REPETITIONS, ALPHA) < 0.05 <= stats.binom.sf(14, REPETITIONS, ALPHA)


def test_false_alarms_under_no_drift() -> None:
    started = time.perf_counter()
    counts = run()
    elapsed = time.perf_counter() - started
    print(f"\nfalse alarms in {REPETITIONS} null repetitions ({elapsed:.0f} s):")
    for key in sorted(counts):
        print(f"  {key:45s} {counts[key]:3d}{'  (above the plain 5% bound, 15)' if counts[key] > 15 else ''}")
    univariate = {k: v for k, v in counts.items() if k.startswith("univariate:")}
    assert len(univariate) == len(NUMERIC) + len(CATEGORICAL)
    assert len([k for k in counts if k.startswith("distance:")]) == 6 * len(NUMERIC) + 4 * len(CATEGORICAL)
    assert {k for k in counts if k.startswith("family:")} == {"family:features", "family:multivariate",
                                                             "family:outliers"}
    # every raw test, every distance at its 5% threshold, every family and the whole report
    too_many = {k: v for k, v in counts.items() if v > BOUND}
    assert not too_many, f"more than {BOUND} alarms in {REPETITIONS} null repetitions: {too_many}"
    # dataset_drift is the union of the three families, each at its share of alpha
    assert counts["dataset_drift"] <= counts["family:features"] + counts["family:multivariate"] + counts["family:outliers"]
