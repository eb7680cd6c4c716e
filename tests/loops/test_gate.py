"""The promotion gate: paired bootstrap on the same rows, a margin, a latency budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from loopwatch.errors import InvalidInput
from loopwatch.loops.gate import METRICS, metric_values, promotion_gate
from loopwatch.records.jsonutil import dumps, loads


def paired(n: int, accuracy_production: float, accuracy_candidate: float, *, seed: int):  # type: ignore[no-untyped-def]
    """Binary labels and two models right with the given probabilities, independently per row."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    right_a = rng.random(n) < accuracy_production
    right_b = rng.random(n) < accuracy_candidate
    return y, np.where(right_a, y, 1 - y), np.where(right_b, y, 1 - y)


def test_a_clearly_better_candidate_passes() -> None:
    y, a, b = paired(5000, 0.80, 0.86, seed=1)
    decision = promotion_gate(y, a, b, seed=0)
    assert decision.passed
    assert decision.ci_low > 0 and decision.ci_low < decision.difference < decision.ci_high
    assert decision.n == 5000 and decision.n_boot == 1000
    assert decision.production == pytest.approx(skm.accuracy_score(y, a))
    assert decision.candidate == pytest.approx(skm.accuracy_score(y, b))


def test_a_candidate_worse_by_three_points_fails() -> None:
    y, a, b = paired(5000, 0.85, 0.82, seed=2)
    decision = promotion_gate(y, a, b, seed=0)
    assert not decision.passed
    assert decision.ci_high < 0
    # even a margin of one point does not excuse three
    assert not promotion_gate(y, a, b, margin=0.01, seed=0).passed
    assert "does not clear" in decision.reasons[0]


def test_an_equal_candidate_rarely_passes_with_margin_zero_and_usually_within_a_margin() -> None:
    """With margin 0 the gate asks for a better candidate: an equal one passes at about
    (1 - confidence) / 2 of the time. A margin of ten points, 4.3 standard errors of the
    difference here (sd of d_i = sqrt(2 * 0.8 * 0.2) over sqrt(600)), lets it through 99% of the time."""
    passes, passes_with_margin = 0, 0
    runs = 300
    for seed in range(runs):
        y, a, b = paired(600, 0.8, 0.8, seed=100 + seed)
        passes += promotion_gate(y, a, b, n_boot=200, seed=seed).passed
        passes_with_margin += promotion_gate(y, a, b, margin=0.1, n_boot=200, seed=seed).passed
    # expected 2.5%; the binomial 99.9% upper bound for 300 runs is about 6%
    assert passes / runs <= stats.binom.ppf(0.999, runs, 0.025) / runs
    assert passes_with_margin / runs > 0.95


def test_bootstrap_interval_agrees_with_the_normal_approximation_for_accuracy() -> None:
    """For accuracy the paired difference is a mean of d_i in {-1, 0, 1}: its normal
    interval (as in McNemar's test) and the percentile bootstrap must agree closely."""
    y, a, b = paired(5000, 0.80, 0.82, seed=5)
    decision = promotion_gate(y, a, b, n_boot=4000, seed=3)
    d = (b == y).astype(float) - (a == y).astype(float)
    half = stats.norm.ppf(0.975) * d.std(ddof=1) / np.sqrt(d.size)
    width = 2 * half
    assert decision.difference == pytest.approx(d.mean())
    assert decision.ci_low == pytest.approx(d.mean() - half, abs=0.08 * width)
    assert decision.ci_high == pytest.approx(d.mean() + half, abs=0.08 * width)


def test_pairing_makes_the_interval_narrower_than_unpaired_intervals() -> None:
    """Two models that agree on most rows: the paired interval is far narrower than what
    two independent intervals would give."""
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 3000)
    a = np.where(rng.random(3000) < 0.8, y, 1 - y)
    b = np.where(rng.random(3000) < 0.03, 1 - a, a)  # flips 3% of production's answers
    decision = promotion_gate(y, a, b, seed=0)
    p = decision.production
    unpaired = 2 * 1.96 * np.sqrt(2 * p * (1 - p) / 3000)
    assert decision.ci_high - decision.ci_low < unpaired / 2


def test_a_slower_candidate_over_budget_fails() -> None:
    y, a, b = paired(3000, 0.80, 0.88, seed=6)
    rng = np.random.default_rng(0)
    fast, slow = rng.gamma(4, 2, 500), rng.gamma(4, 2, 500) + 30
    over = promotion_gate(y, a, b, latency_production_ms=fast, latency_candidate_ms=slow, latency_budget_ms=25)
    assert not over.passed
    assert over.latency_ms_candidate == pytest.approx(np.percentile(slow, 95))
    assert over.latency_ms_production == pytest.approx(np.percentile(fast, 95))
    assert any("over the budget" in r for r in over.reasons)
    within = promotion_gate(y, a, b, latency_candidate_ms=fast, latency_budget_ms=25)
    assert within.passed
    unmeasured = promotion_gate(y, a, b, latency_budget_ms=25)
    assert not unmeasured.passed and "no candidate latency" in unmeasured.reasons[-1]
    assert promotion_gate(y, a, b, latency_candidate_ms=slow).passed  # no budget: latency only reported


def test_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 4000)
    signal = np.where(y == 1, 0.7, 0.3)
    sharp = np.clip(signal + rng.normal(0, 0.05, 4000), 0.01, 0.99)
    blurred = np.clip(0.5 + (signal - 0.5) * 0.3 + rng.normal(0, 0.05, 4000), 0.01, 0.99)
    decision = promotion_gate(y, None, None, metric="log_loss", proba_production=blurred, proba_candidate=sharp)
    assert decision.passed and not decision.higher_is_better
    assert decision.ci_high < 0
    assert decision.candidate == pytest.approx(skm.log_loss(y, sharp))
    worse = promotion_gate(y, None, None, metric="log_loss", proba_production=sharp, proba_candidate=blurred)
    assert not worse.passed
    target = rng.normal(size=4000)
    close, far = target + rng.normal(0, 0.5, 4000), target + rng.normal(0, 0.7, 4000)
    for metric in ("mae", "rmse"):
        assert promotion_gate(target, far, close, metric=metric).passed
        assert not promotion_gate(target, close, far, metric=metric).passed


def test_swapping_the_models_mirrors_the_interval() -> None:
    y, a, b = paired(1000, 0.8, 0.82, seed=8)
    one = promotion_gate(y, a, b, n_boot=300, seed=2)
    other = promotion_gate(y, b, a, n_boot=300, seed=2)
    assert other.difference == pytest.approx(-one.difference)
    assert other.ci_low == pytest.approx(-one.ci_high) and other.ci_high == pytest.approx(-one.ci_low)


def test_same_seed_same_decision_and_json_ready() -> None:
    y, a, b = paired(800, 0.8, 0.82, seed=3)
    first = promotion_gate(y, a, b, seed=5, latency_candidate_ms=[3.0, 4.0])
    assert first == promotion_gate(y, a, b, seed=5, latency_candidate_ms=[3.0, 4.0])
    assert loads(dumps(first.to_dict()))["metric"] == "accuracy"


def test_identical_models_differ_by_exactly_zero() -> None:
    y, a, _ = paired(500, 0.8, 0.8, seed=4)
    decision = promotion_gate(y, a, a.copy())
    assert (decision.difference, decision.ci_low, decision.ci_high) == (0.0, 0.0, 0.0)
    assert not decision.passed  # margin 0 asks for a better model
    assert promotion_gate(y, a, a.copy(), margin=0.001).passed


# --- each weighted metric equals scikit-learn's on the resampled rows ------------------------


def _resample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.random.default_rng(seed).integers(0, n, n)
    return index, np.bincount(index, minlength=n)


@pytest.mark.parametrize("seed", range(5))
def test_weighted_metrics_match_scikit_learn_on_resampled_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet([1, 1, 1], n)
    proba[np.arange(n), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # ties in scores, which the AUC counts as halves
    proba /= proba.sum(axis=1, keepdims=True)
    predicted = proba.argmax(axis=1)
    index, weights = _resample(n, seed)
    yi, pi, qi = y[index], predicted[index], proba[index]
    assert metric_values("accuracy", y, predicted, weights=weights)[0] == pytest.approx(skm.accuracy_score(yi, pi))
    assert metric_values("f1", y, predicted, weights=weights)[0] == pytest.approx(
        skm.f1_score(yi, pi, average="macro")
    )
    assert metric_values("log_loss", y, None, proba=proba, weights=weights)[0] == pytest.approx(
        skm.log_loss(yi, qi, labels=[0, 1, 2])
    )
    assert metric_values("roc_auc", y, None, proba=proba, weights=weights)[0] == pytest.approx(
        skm.roc_auc_score(yi, qi, multi_class="ovr", average="macro")
    )
    binary = (y == 1).astype(int)
    score = np.round(proba[:, 1], 1)
    assert metric_values("roc_auc", binary, None, proba=score, weights=weights)[0] == pytest.approx(
        skm.roc_auc_score(binary[index], score[index])
    )
    target, estimate = rng.normal(size=n), rng.normal(size=n)
    assert metric_values("mae", target, estimate, weights=weights)[0] == pytest.approx(
        skm.mean_absolute_error(target[index], estimate[index])
    )
    assert metric_values("rmse", target, estimate, weights=weights)[0] == pytest.approx(
        np.sqrt(skm.mean_squared_error(target[index], estimate[index]))
    )


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=40),
    data=st.data(),
)
def test_macro_f1_matches_scikit_learn_on_any_labels(labels: list[str], data: st.DataObject) -> None:
    predicted = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=len(labels), max_size=len(labels)))
    counts = data.draw(st.lists(st.integers(0, 3), min_size=len(labels), max_size=len(labels)))
    if sum(counts) == 0:
        counts[0] = 1
    repeated_y = [lab for lab, c in zip(labels, counts) for _ in range(c)]
    repeated_p = [p for p, c in zip(predicted, counts) for _ in range(c)]
    expected = skm.f1_score(repeated_y, repeated_p, average="macro", zero_division=0)
    assert metric_values("f1", labels, predicted, weights=counts)[0] == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 200))
def test_the_interval_holds_the_difference_and_narrows_with_confidence(seed: int, n: int) -> None:
    y, a, b = paired(n, 0.7, 0.75, seed=seed)
    wide = promotion_gate(y, a, b, confidence=0.99, n_boot=200, seed=seed)
    narrow = promotion_gate(y, a, b, confidence=0.8, n_boot=200, seed=seed)
    assert wide.ci_low <= narrow.ci_low <= narrow.ci_high <= wide.ci_high
    assert -1 <= wide.ci_low <= wide.ci_high <= 1
    assert not (wide.passed and not narrow.passed)  # a wider interval never passes alone


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metric": "precision"},
        {"metric": "roc_auc"},  # no probabilities
        {"confidence": 1.0},
        {"confidence": float("nan")},
        {"margin": float("inf")},
        {"n_boot": 10},
        {"latency_budget_ms": 0},
        {"latency_candidate_ms": [-1.0]},
    ],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:  # type: ignore[type-arg]
    y, a, b = paired(100, 0.8, 0.8, seed=0)
    with pytest.raises(InvalidInput):
        promotion_gate(y, a, b, **kwargs)


def test_bad_rows_are_refused() -> None:
    with pytest.raises(InvalidInput, match="values for"):
        promotion_gate([0, 1, 1], [0, 1], [0, 1, 1])
    with pytest.raises(InvalidInput, match="missing"):
        promotion_gate([0, None, 1], [0, 1, 1], [0, 1, 1])
    with pytest.raises(InvalidInput, match="numbers"):
        promotion_gate([0.5, 1.0], ["a", "b"], [0.5, 1.0], metric="mae")
    with pytest.raises(InvalidInput, match="single class"):
        promotion_gate([1, 1, 1], None, None, metric="roc_auc", proba_production=[0.2, 0.6, 0.9],
                       proba_candidate=[0.3, 0.4, 0.5])
    assert set(METRICS) == {"accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse"}
