"""Practical thresholds on real data (tests/realdata.py), one seed and small sizes each.

The claims, with their measurements over many seeds in benchmarks/practical_realdata.py and
docs/quality.md:

* no shift (the 2013 flights shuffled over the year, 20 windows of 1,000-3,000 rows): at most
  10% of windows alarm;
* window size (trained on January-February, windows drawn from March-December at 1,000, 10,000
  and 50,000 rows): the alarm rate does not grow with the size, every alarm's effect reaches a
  threshold that is the same at every size and never below its floor, and at 50,000 rows a
  p-value alone would have flagged differences the thresholds let pass;
* a selected sub-population (every flight from one airport, 70% of the others), whose effect is
  above its threshold, is flagged in at least 80% of windows.
"""

from __future__ import annotations

import numpy as np
import pytest

from loopwatch.stats.practical import DEFAULT_FLOORS
from tests import practical_cases as cases

SEED = 1


@pytest.fixture(scope="module")
def null() -> tuple[object, list[cases.WindowResult], object]:
    training, windows = cases.null_windows(seed=SEED)
    profile = cases.flights_profile(training)
    rest = cases.shuffled_flights(SEED).iloc[cases.TRAINING_ROWS + 60_000:].reset_index(drop=True)
    return profile, [cases.evaluate(profile, w) for w in windows], rest


def test_no_shift_alarms_in_at_most_a_tenth_of_the_windows(null) -> None:  # type: ignore[no-untyped-def]
    _, results, _ = null
    assert len(results) == 20 and all(1000 <= r.n <= 3000 for r in results)
    assert cases.rate(results) <= 0.10, [r.alarms for r in results]
    # the thresholds are what keeps them quiet where chance effects are large: the hundred
    # destinations reach a Jensen-Shannon distance above the 0.05 floor in every window
    assert all(r.features["dest"][0] > DEFAULT_FLOORS["js_distance"] for r in results)
    assert all(r.features["dest"][0] < r.features["dest"][1] for r in results)


def test_a_selected_sub_population_above_the_threshold_is_flagged(null) -> None:  # type: ignore[no-untyped-def]
    profile, _, rest = null
    sizes = np.random.default_rng(SEED).integers(1000, 3001, 20)
    results = [cases.evaluate(profile, w) for w in cases.selected_windows(rest, sizes=sizes, seed=SEED)]
    effects = [r.features["origin"] for r in results]
    # the selection's effect is above the floor and the threshold, but not by a mile
    assert DEFAULT_FLOORS["js_distance"] <= effects[0][1] < np.mean([e for e, _, _ in effects]) < 2 * effects[0][1]
    flagged = sum("feature:origin" in r.alarms for r in results)
    assert flagged >= 0.8 * len(results), effects


@pytest.fixture(scope="module")
def by_size() -> dict[int, list[cases.WindowResult]]:
    training, later = cases.later_split()
    profile = cases.flights_profile(training)
    counts = {1000: 6, 10_000: 3, 50_000: 2}
    return {size: [cases.evaluate(profile, w) for w in cases.later_windows(later, size=size, n_windows=n, seed=SEED)]
            for size, n in counts.items()}


def test_the_alarm_rate_does_not_grow_with_the_window(by_size) -> None:  # type: ignore[no-untyped-def]
    rates = {size: cases.rate(results) for size, results in by_size.items()}
    assert rates[10_000] <= rates[1000] and rates[50_000] <= rates[1000], rates
    # per feature too: a feature flagged at 50,000 rows is flagged at 1,000
    def flagged(size: int) -> set[str]:
        return {a for r in by_size[size] for a in r.alarms if a.startswith("feature:")}
    assert flagged(50_000) <= flagged(1000)


def test_every_alarm_reaches_a_threshold_that_does_not_shrink(by_size) -> None:  # type: ignore[no-untyped-def]
    for size, results in by_size.items():
        for r in results:
            for name, (effect, threshold) in r.effects.items():
                assert effect >= threshold, (size, name)
            for feature, (_, threshold, _) in r.features.items():
                floor = DEFAULT_FLOORS["wasserstein_normed" if feature in cases.FLIGHTS_NUMERIC else "js_distance"]
                assert threshold >= floor
    def thresholds(size: int) -> dict[str, float]:
        return {f: t for f, (_, t, _) in by_size[size][0].features.items()}
    # beyond N0 rows the thresholds are the same at every size; a column with a few nulls has
    # fewer than 1,000 values in a 1,000-row window, so its threshold there is a little higher
    assert thresholds(50_000) == thresholds(10_000)
    assert all(thresholds(1000)[f] >= t for f, t in thresholds(10_000).items())


def test_at_fifty_thousand_rows_a_p_value_alone_would_flag_more(by_size) -> None:  # type: ignore[no-untyped-def]
    significant_only = {f for r in by_size[50_000] for f, (effect, threshold, significant) in r.features.items()
                        if significant and effect < threshold}
    assert len(significant_only) >= 3, significant_only
