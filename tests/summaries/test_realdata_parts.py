"""Real flights (skewed columns, nulls, integer-coded categories) through the feature parts.

The reference is January 2013; the current windows are the days of July, summarised one
day at a time and merged as a monitor merges base windows into a longer one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from loopwatch.stats import binned
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.feature_tests import (
    binned_tests,
    categorical_tests,
    ks_from_summaries,
    wasserstein_from_summaries,
)
from loopwatch.summaries.numeric import NumericPart
from tests.realdata import FLIGHTS_CATEGORICAL, codes_as_labels, flights

NUMERIC = ("sched_hour", "distance", "air_time")


@pytest.fixture(scope="module")
def months() -> tuple[object, object]:
    frame = flights()
    month = frame["time"].dt.month
    return frame[month == 1].reset_index(drop=True), frame[month == 7].reset_index(drop=True)


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_days_merge_to_the_month(months: tuple, name: str) -> None:
    ref_frame, cur_frame = months
    ref_values = ref_frame[name].to_numpy(dtype=np.float64)
    summary = NumericSummary.from_values(ref_values)
    edges = binned.quantile_edges(summary.sorted_values, n_bins=10)
    days = [group[name].to_numpy(dtype=np.float64) for _, group in cur_frame.groupby(cur_frame["time"].dt.day)]
    merged = NumericPart.empty(edges=edges)
    for day in days:
        merged = merged.merge(NumericPart.from_values(day, edges=edges))
    whole = cur_frame[name].to_numpy(dtype=np.float64)
    finite = whole[~np.isnan(whole)]
    # exact parts: identical to the month summarised at once, and to the raw rows
    once = NumericPart.from_values(whole, edges=edges)
    assert {k: v for k, v in merged.to_dict().items() if k != "kll"} == \
        {k: v for k, v in once.to_dict().items() if k != "kll"}
    assert merged.n_null == int(np.isnan(whole).sum()) and merged.count == finite.size
    assert merged.total.value == math.fsum(finite)
    assert list(merged.bins) == binned.bin_counts(np.sort(finite), edges).tolist()
    # bins: the same statistics as on the raw rows
    ref_bins = np.asarray(summary.bin_counts(edges), dtype=np.int64)
    tests = binned_tests(reference_edges=edges, reference_bins=ref_bins, current=merged)
    assert tests.psi == binned.psi(ref_bins, merged.bins)
    # sketch statistics: the exact values lie inside the reported intervals
    ref_clean = ref_values[~np.isnan(ref_values)]
    ks = ks_from_summaries(summary, merged)
    exact = sps.ks_2samp(ref_clean, finite)
    assert ks.statistic_low <= exact.statistic <= ks.statistic_high
    assert ks.error_bound <= 0.0047
    w = wasserstein_from_summaries(summary, merged)
    assert w.low <= sps.wasserstein_distance(ref_clean, finite) <= w.high


@pytest.mark.parametrize("name", FLIGHTS_CATEGORICAL)
def test_integer_codes_and_their_labels_give_one_part(months: tuple, name: str) -> None:
    ref_frame, cur_frame = months
    as_text = codes_as_labels(cur_frame)
    days = cur_frame.groupby(cur_frame["time"].dt.day)
    merged = CategoricalPart.empty()
    for _, group in days:
        merged = merged.merge(CategoricalPart.from_values(group[name].tolist()))
    assert merged == CategoricalPart.from_values(as_text[name].tolist())
    assert merged.exact and merged.count == len(cur_frame)
    reference = CategoricalSummary.from_values(ref_frame[name].astype(str).to_numpy())
    t = categorical_tests(reference, merged)
    labels, ref_counts, cur_counts = binned.align_categories(reference, merged.counts or {})
    assert t.hellinger == binned.hellinger(ref_counts, cur_counts)
