"""A backdoor trigger (a rare exact pattern that comes with one label) is caught; clean data is not."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.backdoor import backdoor_screen, exact_tail
from loopwatch.poisoning.base import class_codes, encode_features, out_of_fold_probabilities
from tests.poisoning.worlds import customers

NUMERIC, CATEGORICAL = ["tenure", "fee", "tickets"], ["plan", "device"]


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    x, _ = encode_features(frame, numeric=NUMERIC, categorical=CATEGORICAL)
    codes, classes = class_codes(frame["churned"].tolist())
    return out_of_fold_probabilities(x, codes, len(classes), seed=0)


def with_trigger(frame: pd.DataFrame, *, rows: int, label: int, seed: int, pair: bool = False) -> np.ndarray:
    poisoned = np.random.default_rng(seed).choice(len(frame), rows, replace=False)
    if pair:  # two values each seen in ordinary rows, rarely together
        frame.loc[poisoned, "tickets"] = 4.0
        frame.loc[poisoned, "plan"] = "premium"
    else:
        frame.loc[poisoned, "fee"] = 13.37
    frame.loc[poisoned, "churned"] = label
    mask = np.zeros(len(frame), dtype=bool)
    mask[poisoned] = True
    return mask


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("use_reference", [True, False])
def test_a_one_percent_trigger_is_caught_whichever_label_it_forces(label: int, use_reference: bool) -> None:
    frame = customers(3000, seed=1)
    poisoned = with_trigger(frame, rows=30, label=label, seed=1)
    reference = customers(3000, seed=2) if use_reference else None
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=reference)
    if not use_reference and label == 0:
        # the majority class, and nothing to say the pattern is new: honest about what it cannot see
        assert result.flagged[~poisoned].sum() <= 3
        return
    assert result.flagged[poisoned].all()
    # rows that hold the trigger value and label by chance are flagged too; nothing else is
    innocent = result.flagged & ~poisoned
    assert (frame.loc[innocent, "fee"] == 13.37).all()
    assert result.details["patterns"][0]["pattern"].startswith("fee=13.37")
    assert result.reasons[int(np.flatnonzero(poisoned)[0])].startswith("backdoor:fee=13.37")


def test_a_trigger_of_two_values_is_caught_as_a_pair() -> None:
    frame = customers(4000, seed=3)
    # four tickets make churn likely: the trigger says "stays"
    poisoned = with_trigger(frame, rows=40, label=0, seed=3, pair=True)
    reference = customers(4000, seed=4)
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=reference)
    assert result.flagged[poisoned].mean() >= 0.95
    assert result.details["patterns"][0]["pattern"] in ("tickets=4&plan=premium", "plan=premium&tickets=4")
    assert result.details["patterns"][0]["label"] == "0"


def test_clean_data_flags_no_pattern() -> None:
    flagged_runs = 0
    for seed in range(6):
        frame = customers(3000, seed=10 + seed)
        result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                                 reference=customers(3000, seed=50 + seed))
        assert result.details["patterns_tested"] > 50
        flagged_runs += result.n_flagged > 0
    assert flagged_runs <= 1  # family-wise alpha of 1% per run


def test_too_few_trigger_rows_are_below_what_it_can_see() -> None:
    frame = customers(3000, seed=5)
    poisoned = with_trigger(frame, rows=5, label=1, seed=5)
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=customers(3000, seed=6), min_count=8)
    assert not result.flagged[poisoned].any()


def test_bad_input_is_refused() -> None:
    frame = customers(100, seed=0)
    proba = np.full((100, 2), 0.5)
    labels = frame["churned"].tolist()
    for kwargs in ({"alpha": 0.0}, {"max_share": 1.0}, {"min_count": 1}, {"min_count": True}):
        with pytest.raises(InvalidInput):
            backdoor_screen(frame[NUMERIC], labels, proba, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        backdoor_screen(frame[NUMERIC], labels, np.full((100, 3), 0.3))


def test_a_trigger_in_a_blank_feature_is_caught_with_a_small_reference() -> None:
    # a pixel that is always blank lights up in 12 rows, all labelled 1 (a quarter of other rows are):
    # the reference (300 rows) is too small to call the value new, but the rows are far purer than the
    # rest and the label is beyond doubt for a model refitted without them
    frame = customers(1200, seed=8).assign(pixel=0.0)
    poisoned = np.random.default_rng(8).choice(1200, 12, replace=False)
    frame.loc[poisoned, "pixel"] = 16.0
    frame.loc[poisoned, "churned"] = 1
    labels = frame["churned"].tolist()
    codes, classes = class_codes(labels)
    confident = np.where(codes[:, None] == [0, 1], 0.05, 0.95)  # a model sure the rows are not 1...
    confident[~np.isin(np.arange(1200), poisoned)] = 0.5
    refits: list[int] = []

    def refit(rows: np.ndarray) -> np.ndarray:
        refits.append(int(rows.sum()))
        return np.tile([0.7, 0.3], (int(rows.sum()), 1))  # ...and so is one that never saw them

    result = backdoor_screen(frame[[*NUMERIC, "pixel", *CATEGORICAL]], labels, confident,
                             reference=customers(300, seed=9).assign(pixel=0.0), refit=refit)
    assert result.flagged[poisoned].all() and result.n_flagged == 12
    assert result.details["patterns"][0] == {**result.details["patterns"][0], "pattern": "pixel=16",
                                             "path": "one_sided", "reference_rows": 0}
    assert refits and set(refits) == {12}
    # a refit that explains the labels (the pattern is an honest segment) clears it
    cleared = backdoor_screen(frame[[*NUMERIC, "pixel", *CATEGORICAL]], labels, confident,
                              reference=customers(300, seed=9).assign(pixel=0.0),
                              refit=lambda rows: np.tile([0.05, 0.95], (int(rows.sum()), 1)))
    assert not cleared.flagged[poisoned].any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=25), st.data())
def test_the_exact_tail_is_the_poisson_binomial_and_below_the_binomial_bound(
    probabilities: list[float], data: st.DataObject
) -> None:
    p = np.array(probabilities)
    k = data.draw(st.integers(0, p.size))
    exact = exact_tail(p, k)
    if np.allclose(p, p[0]):
        assert exact == pytest.approx(stats.binom.sf(k - 1, p.size, p[0]), abs=1e-12)
    if p.size <= 10:  # brute force over every outcome
        outcomes = np.array(list(itertools.product([0, 1], repeat=p.size)))
        weights = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
        assert exact == pytest.approx(weights[outcomes.sum(axis=1) >= k].sum(), abs=1e-12)
    if k >= p.sum() + 1:  # Hoeffding (1956): the binomial at the mean bounds the tail above the mean
        assert exact <= stats.binom.sf(k - 1, p.size, p.mean()) + 1e-12


def test_a_frequent_ordinary_combination_is_no_backdoor_a_rare_pure_one_is() -> None:
    # an honest interaction: young men churn at 35% where young women and older men churn at 15-20%;
    # the pattern is frequent and its label share ordinary. A planted pattern of 30 rows, all one label.
    rng = np.random.default_rng(21)
    n = 6000
    frame = pd.DataFrame({"age": rng.choice(["young", "middle", "old"], n), "sex": rng.choice(["f", "m"], n),
                          "plan": rng.choice(["a", "b", "c", "d"], n)})
    rate = np.where((frame["age"] == "young") & (frame["sex"] == "m"), 0.35, 0.17)
    labels = (rng.random(n) < rate).astype(int)
    planted = rng.choice(np.flatnonzero(frame["plan"] != "d"), 30, replace=False)
    frame["plan"] = frame["plan"].astype(object)
    frame.loc[planted, "plan"] = "zz"
    labels[planted] = 1
    # expected labels from a model that cannot see the interaction: the young men look skewed to it
    flat = np.tile([1 - labels.mean(), labels.mean()], (n, 1))
    result = backdoor_screen(frame, labels.tolist(), flat, max_share=0.2)
    found = {p["pattern"] for p in result.details["patterns"]}
    assert found == {"plan=zz"}, result.details["patterns"]
    assert result.flagged[planted].all() and result.n_flagged == 30


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(30, 300))
def test_similar_patterns_are_the_siblings_counted_by_hand(seed: int, n: int) -> None:
    from loopwatch.poisoning.backdoor import _candidates, _pair, _single

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.choice(["x", "y", "z"], n), "b": rng.choice(["p", "q"], n)})
    labels = rng.integers(0, 2, n)
    onehot = np.eye(2)[labels]
    a, b = _single(frame, None, "a"), _single(frame, None, "b")
    for candidate in _candidates(_pair(a, b), onehot, np.full((n, 2), 0.5), 2, n):
        u, v = candidate["pattern"].split("&")
        in_a, in_b = frame["a"] == u.split("=")[1], frame["b"] == v.split("=")[1]
        other = labels != candidate["class"]

        def impurity(rows: pd.Series) -> float:
            return (other[rows.to_numpy()].sum() + 0.5) / (rows.sum() + 1.0)

        siblings = [in_a & ~in_b, ~in_a & in_b]
        big = [s for s in siblings if s.sum() >= 2]
        if len(big) == 2:
            logit = [np.log(p / (1 - p)) for p in (impurity(big[0]), impurity(big[1]), impurity(~in_a & ~in_b))]
            expected = 1 / (1 + np.exp(-(logit[0] + logit[1] - logit[2])))
            assert candidate["purest_impurity"] == pytest.approx(min(impurity(big[0]), impurity(big[1])))
        elif len(big) == 1:
            expected = impurity(big[0])
        else:
            expected = impurity(~(in_a & in_b))
        assert candidate["similar_impurity"] == pytest.approx(expected)
        # the purity p-value is the lower binomial tail of the pattern's other labels (times the classes)
        rows = int((in_a & in_b).sum())
        k = int(other[(in_a & in_b).to_numpy()].sum())
        assert candidate["p_pure"] == pytest.approx(min(1.0, 2 * stats.binom.cdf(k, rows, expected)))
