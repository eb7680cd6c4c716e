"""The labelling queue: a uniform random share, the most informative rest, the budget kept."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.loops.labelling import (
    novelty_percentiles,
    over_represented_bins,
    over_represented_categories,
    select_for_labelling,
    uncertainty_from_probabilities,
)


def candidates(n: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 0.5, size=n)
    return pd.DataFrame(
        {
            "request_id": [f"r{i // 4}" for i in range(n)],
            "row_index": [i % 4 for i in range(n)],
            "entity_id": [f"e{i}" for i in range(n)],
            "uncertainty": 1 - np.abs(2 * p - 1),
            "novelty": rng.uniform(size=n),
            "drifted_segment": rng.uniform(size=n) < 0.1,
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
        }
    )


def keys(items) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(i.request_id, i.row_index) for i in items]


def test_informative_picks_are_more_uncertain_than_random_ones() -> None:
    frame = candidates(2000)
    items = select_for_labelling(frame, budget=200, random_share=0.5, seed=3, weights={"novelty": 0, "drifted_segment": 0})
    by_key = frame.set_index(["request_id", "row_index"])["uncertainty"]
    informative = [by_key[k] for k in keys([i for i in items if not i.random])]
    random = [by_key[k] for k in keys([i for i in items if i.random])]
    assert len(informative) == len(random) == 100
    # the top 100 of 2000 by uncertainty, against a uniform sample of the pool
    assert np.mean(informative) > np.mean(random) + 0.2
    assert min(informative) >= np.quantile(frame["uncertainty"], 0.94)
    # the random picks look like the pool (a two-sample KS test does not tell them apart)
    assert stats.ks_2samp(random, frame["uncertainty"]).pvalue > 0.01


def test_the_random_share_is_uniform_over_candidates() -> None:
    """Over many seeds every candidate is drawn into the random share equally often,
    whatever its score (chi-square goodness of fit against uniform)."""
    frame = candidates(40)
    counts = pd.Series(0, index=pd.MultiIndex.from_frame(frame[["request_id", "row_index"]]))
    for seed in range(1500):
        for item in select_for_labelling(frame, budget=8, random_share=0.5, seed=seed):
            if item.random:
                counts[(item.request_id, item.row_index)] += 1
    assert counts.sum() == 1500 * 4
    assert stats.chisquare(counts.to_numpy()).pvalue > 0.001
    # scores do not sway the draw: the most and least uncertain halves are drawn alike
    high = frame["uncertainty"].to_numpy() > frame["uncertainty"].median()
    assert abs(counts.to_numpy()[high].sum() / counts.sum() - 0.5) < 0.03


@pytest.mark.parametrize(
    ("budget", "share", "n_random"),
    [(10, 0.2, 2), (5, 0.5, 3), (7, 0.0, 0), (7, 1.0, 7), (1, 0.4, 0), (1, 0.5, 1), (0, 0.5, 0)],
)
def test_budget_and_random_count(budget: int, share: float, n_random: int) -> None:
    items = select_for_labelling(candidates(100), budget=budget, random_share=share, seed=1)
    assert len(items) == budget
    assert sum(i.random for i in items) == n_random
    assert all(i.reasons == ["random"] for i in items if i.random)


def test_a_budget_over_the_candidates_takes_each_row_once() -> None:
    frame = candidates(12)
    doubled = pd.concat([frame, frame], ignore_index=True)
    items = select_for_labelling(doubled, budget=50, random_share=0.3, seed=0)
    assert sorted(keys(items)) == sorted(zip(frame["request_id"], frame["row_index"]))


def test_deterministic_per_seed() -> None:
    frame = candidates(300)
    first = [i.to_dict() for i in select_for_labelling(frame, budget=30, seed=7)]
    assert first == [i.to_dict() for i in select_for_labelling(frame, budget=30, seed=7)]
    assert first != [i.to_dict() for i in select_for_labelling(frame, budget=30, seed=8)]


def test_reasons_name_the_signals_that_stand_out() -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "row_index": [0, 0, 0, 0],
            "entity_id": [None, "x", None, None],
            "uncertainty": [0.9, 0.1, 0.1, 0.0],
            "novelty": [0.2, 0.99, 0.1, 0.0],
            "drifted_segment": [False, False, True, False],
        }
    )
    items = select_for_labelling(frame, budget=4, random_share=0.0)
    reasons = {i.request_id: i.reasons for i in items}
    assert reasons == {"a": ["uncertain"], "b": ["novel"], "c": ["drifted_segment"], "d": ["highest_score"]}
    # scores 1.1, 1.09, 0.7 and 0, in decreasing order
    assert [i.request_id for i in items] == ["a", "b", "c", "d"]
    np.testing.assert_allclose([i.score for i in items], [1.1, 1.09, 0.7, 0.0])
    assert {i.request_id: i.entity_id for i in items}["b"] == "x"


def test_weights_decide_what_informative_means() -> None:
    frame = candidates(500)
    items = select_for_labelling(
        frame, budget=20, random_share=0.0, weights={"uncertainty": 0, "novelty": 0, "drifted_segment": 1}
    )
    drifted = set(map(tuple, frame.loc[frame["drifted_segment"], ["request_id", "row_index"]].to_numpy()))
    assert len(drifted) >= 20 and set(keys(items)) <= drifted


def test_missing_optional_signals_count_as_nothing() -> None:
    frame = candidates(50)[["request_id", "row_index", "uncertainty"]].assign(novelty=np.nan)
    items = select_for_labelling(frame, budget=5, random_share=0.0)
    top = frame.nlargest(5, "uncertainty")
    assert sorted(keys(items)) == sorted(zip(top["request_id"], top["row_index"]))
    assert all(i.entity_id is None for i in items)


@pytest.mark.parametrize(
    ("change", "kwargs"),
    [
        (lambda f: f.drop(columns=["uncertainty"]), {}),
        (lambda f: f.assign(uncertainty=1.5), {}),
        (lambda f: f.assign(novelty=-0.1), {}),
        (lambda f: f.assign(uncertainty="high"), {}),
        (lambda f: f, {"budget": -1}),
        (lambda f: f, {"budget": 2.5}),
        (lambda f: f, {"random_share": 1.2}),
        (lambda f: f, {"weights": {"loss": 1.0}}),
        (lambda f: f, {"weights": {"novelty": math.inf}}),
    ],
)
def test_bad_input_is_refused(change, kwargs) -> None:  # type: ignore[no-untyped-def]
    options = {"budget": 3} | kwargs
    with pytest.raises(InvalidInput):
        select_for_labelling(change(candidates(10)), **options)


def test_uncertainty_from_probabilities() -> None:
    p = np.linspace(0, 1, 11)
    binary = uncertainty_from_probabilities(np.column_stack([1 - p, p]))
    np.testing.assert_allclose(binary, 1 - np.abs(2 * p - 1), atol=1e-12)
    three = uncertainty_from_probabilities([[1 / 3] * 3, [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(three, [1.0, 0.0, 0.75])
    with pytest.raises(InvalidInput):
        uncertainty_from_probabilities([0.2, 0.8])
    with pytest.raises(InvalidInput):
        uncertainty_from_probabilities([[np.nan, 1.0]])


rows = st.integers(min_value=0, max_value=60)


@settings(max_examples=60, deadline=None)
@given(
    n=rows,
    budget=st.integers(min_value=0, max_value=80),
    share=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    duplicates=st.booleans(),
)
def test_properties(n: int, budget: int, share: float, seed: int, duplicates: bool) -> None:
    frame = candidates(n, seed=seed % 1000)
    if duplicates:
        frame = pd.concat([frame, frame.head(n // 2)], ignore_index=True)
    items = select_for_labelling(frame, budget=budget, random_share=share, seed=seed)
    picked = keys(items)
    assert len(picked) == len(set(picked)) == min(budget, n)
    # when there are fewer rows than the budget, the share applies to what can be labelled
    expected_random = math.floor(min(budget, n) * share + 0.5)
    assert sum(i.random for i in items) == expected_random
    # the informative picks are the best of what the random draw left
    scores = (frame["uncertainty"] + frame["novelty"] + 0.5 * frame["drifted_segment"]).to_numpy()
    by_key = dict(zip(zip(frame["request_id"], frame["row_index"]), scores))
    informative = [i.score for i in items if not i.random]
    left = [by_key[k] for k in set(by_key) - set(picked)]
    if informative and left:
        assert min(informative) >= max(left) - 1e-12
    assert all(0 <= i.score <= 2.5 for i in items)


def test_novelty_percentiles_match_scipy() -> None:
    rng = np.random.default_rng(2)
    reference, scores = rng.normal(size=500), np.r_[rng.normal(size=50), 10.0, -10.0]
    expected = [stats.percentileofscore(reference, s, kind="strict") / 100 for s in scores]
    np.testing.assert_allclose(novelty_percentiles(scores, reference), expected)
    with pytest.raises(InvalidInput):
        novelty_percentiles([1.0], [])


def test_over_represented_bins_and_categories() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=10_000)
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=10)
    same = over_represented_bins(rng.normal(size=5000), edges, counts)
    assert same.mean() < 0.01  # no shift: no bin holds 1.5 times its share
    shifted = rng.normal(1.5, 1, size=5000)
    flags = over_represented_bins(np.r_[shifted, np.nan], edges, counts)
    assert not flags[-1] and flags[:-1][shifted > 1.5].all() and not flags[:-1][shifted < -0.5].any()
    labels = ["a"] * 70 + ["b"] * 20 + ["new"] * 10 + [None]
    flagged = over_represented_categories(labels, {"a": 300, "b": 700})
    assert flagged[:70].all() and not flagged[70:90].any() and flagged[90:100].all() and not flagged[100]
