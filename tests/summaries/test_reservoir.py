"""The row sample: bottom-k by keyed hash, mergeable, deterministic, uniform, and deletion-safe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.summaries.reservoir import ROW_TESTS, RowSample, row_priority
from tests.realdata import fertility


def batch(ids: list[int], *, k: int = 5, seed: int = 3) -> RowSample:
    return RowSample.from_rows([f"q{i}" for i in ids], [i % 3 for i in ids], [{"x": i} for i in ids], k=k, seed=seed)


# disjoint batches of distinct row ids, as a window's events arrive
batches = st.lists(st.integers(0, 400), unique=True, max_size=60).flatmap(
    lambda ids: st.lists(st.integers(0, 3), min_size=len(ids), max_size=len(ids)).map(
        lambda parts: [[i for i, p in zip(ids, parts) if p == j] for j in range(4)]
    )
)


@settings(max_examples=60, deadline=None)
@given(batches, st.integers(1, 8))
def test_merge_is_associative_commutative_with_identity_and_equals_one_batch(parts: list[list[int]], k: int) -> None:
    a, b, c, d = (batch(p, k=k) for p in parts)
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(RowSample.empty(k=k, seed=3)) == a == RowSample.empty(k=k, seed=3).merge(a)
    whole = batch([i for p in parts for i in p], k=k)
    assert a.merge(b).merge(c).merge(d) == whole
    assert whole.n == sum(map(len, parts)) and len(whole.rows) == min(k, whole.n)


@settings(max_examples=40, deadline=None)
@given(batches, st.integers(1, 8), st.sets(st.integers(0, 400), max_size=30))
def test_deleting_requests_keeps_exactly_the_remaining_rows_below_the_threshold(
    parts: list[list[int]], k: int, deleted: set[int]
) -> None:
    ids = [i for p in parts for i in p]
    sample = batch(ids, k=k)
    gone = [i for i in ids if i in deleted]
    after = sample.without_requests([f"q{i}" for i in deleted], n_rows_removed=len(gone))
    remaining = [i for i in ids if i not in deleted]
    # what one pass over the remaining rows below the old threshold would keep
    expected = sorted(
        (row_priority(f"q{i}", i % 3, seed=3), f"q{i}", i % 3) for i in remaining
    )
    if sample.threshold is not None:
        expected = [e for e in expected if e < sample.threshold]
    assert [r.order() for r in after.rows] == expected[:k]
    assert after.n == len(remaining)
    # merging after a delete never refills above the threshold
    other = batch([1000 + i for i in range(20)], k=k)
    assert all(r.order() < sample.threshold for r in after.merge(other).rows) if sample.threshold else True


def test_the_sample_is_the_same_on_rebuild_and_changes_with_the_seed() -> None:
    ids = list(range(500))
    assert batch(ids, k=20) == batch(list(reversed(ids)), k=20)
    assert {r.request_id for r in batch(ids, k=20).rows} != {r.request_id for r in batch(ids, k=20, seed=4).rows}


def test_every_row_is_equally_likely_to_be_sampled_and_stays_so_after_deletion() -> None:
    # 40 rows, k = 10, over 2,000 seeds: each row's inclusion count is Binomial(2000, 1/4)
    n, k, seeds = 40, 10, 2000
    ids = [f"r{i}" for i in range(n)]
    rows = [{"i": i} for i in range(n)]
    counts, after_counts, sizes = np.zeros(n), np.zeros(n), []
    for seed in range(seeds):
        sample = RowSample.from_rows(ids, [0] * n, rows, k=k, seed=seed)
        counts[[r.values["i"] for r in sample.rows]] += 1
        after = sample.without_requests(ids[:10], n_rows_removed=10)
        after_counts[[r.values["i"] for r in after.rows]] += 1
        sizes.append(len(after.rows))
    assert stats.chisquare(counts).pvalue > 1e-3
    assert after_counts[:10].sum() == 0
    # the remaining 30 rows: still equally likely, and the sample lost k * 10/40 rows on average
    assert stats.chisquare(after_counts[10:]).pvalue > 1e-3
    assert np.mean(sizes) == pytest.approx(k * 30 / 40, abs=0.2)


def test_round_trip_through_json() -> None:
    sample = batch(list(range(50)), k=7)
    assert RowSample.from_dict(json.loads(json.dumps(sample.to_dict()))) == sample
    no_data = RowSample.from_rows(["a", "b"], [0, 0], None, k=7, seed=3)
    assert RowSample.from_dict(json.loads(json.dumps(no_data.to_dict()))) == no_data


def test_a_model_logged_without_data_keeps_no_rows_and_names_the_tests_it_cannot_run() -> None:
    no_data = RowSample.from_rows(["a", "b", "c"], [0, 1, 2], None, k=5, seed=0)
    assert no_data.rows == () and no_data.n == 3 and not no_data.has_data
    assert no_data.unavailable_tests() == ROW_TESTS
    # a window where the setting changed: uniform among the rows that carried data
    mixed = no_data.merge(batch([1, 2, 3], k=5, seed=0))
    assert mixed.has_data and mixed.unavailable_tests() == () and mixed.n == 6 and len(mixed.rows) == 3
    assert RowSample.empty().unavailable_tests() == ()


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(InvalidInput, match="k or seed"):
        batch([1], k=3).merge(batch([2], k=4))
    with pytest.raises(InvalidInput, match="k >= 1"):
        RowSample.empty(k=0)
    with pytest.raises(InvalidInput, match="one entry per row"):
        RowSample.from_rows(["a"], [0, 1], None)
    with pytest.raises(InvalidInput, match="cannot remove"):
        batch([1, 2]).without_requests(["q1"], n_rows_removed=3)


def test_a_sample_of_real_rows_describes_its_window() -> None:
    # the 1980 census mothers, summarised in 8 batches and merged: the sample's mean age and
    # share of working mothers lie within sampling error of the whole table's
    table = fertility().iloc[:40_000]
    records = table[["age", "work", "afam"]].to_dict("records")
    ids = [f"m{i}" for i in range(len(table))]
    k = 2000
    parts = [
        RowSample.from_rows(ids[lo:lo + 5000], [0] * 5000, records[lo:lo + 5000], k=k, seed=11)
        for lo in range(0, len(table), 5000)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged == RowSample.from_rows(ids, [0] * len(ids), records, k=k, seed=11)
    sampled = np.array([r["age"] for r in merged.values()], dtype=float)
    se = table["age"].std() / np.sqrt(k) * np.sqrt(1 - k / len(table))
    assert abs(sampled.mean() - table["age"].mean()) < 4 * se
    worked = np.array([r["work"] > 0 for r in merged.values()], dtype=float)
    share = float((table["work"] > 0).mean())
    assert abs(worked.mean() - share) < 4 * np.sqrt(share * (1 - share) / k)


@settings(max_examples=40, deadline=None)
@given(batches, st.integers(1, 8), st.integers(0, 4))
def test_a_cut_sample_is_still_every_row_below_its_threshold_and_merges_exactly(
    parts: list[list[int]], k: int, m: int
) -> None:
    a, b = batch(parts[0], k=k), batch(parts[1], k=k)
    cut_a, cut_b = a.truncated(m), b.truncated(m)
    assert cut_a.n == a.n and cut_a.rows == a.rows[:m] and cut_a.k == k
    merged = cut_a.merge(cut_b)
    assert merged == cut_b.merge(cut_a)
    # exactly the rows of both below both thresholds, up to k: a uniform sample of the union
    every = sorted((row_priority(f"q{i}", i % 3, seed=3), f"q{i}", i % 3) for i in parts[0] + parts[1])
    limits = [t for t in (cut_a.threshold, cut_b.threshold) if t is not None]
    below = [e for e in every if not limits or e < min(limits)]
    assert [r.order() for r in merged.rows] == below[:k]
