"""Confidence-based performance estimation: exact formulas, then known answers on a synthetic world.

The world: two standard-normal inputs, P(y = 1 | x) = sigmoid(1.5 x0 - x1 + 0.3). The model's score is
sigmoid(temperature * true logit): temperature 1 is a perfectly calibrated model, 1.6 an overconfident one.
Covariate shift moves the mean (and spread) of the inputs; concept drift changes the rule that makes the labels.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from loopwatch.errors import InvalidInput
from loopwatch.performance import (
    ConfidenceBasedEstimator,
    classification_metrics,
    departures,
    estimation_error,
)
from loopwatch.performance.calibration import MIN_SIDE_ROWS, Sigmoid, _logit, fit_sided

RULE = np.array([1.5, -1.0])
DRIFTED_RULE = np.array([0.5, -1.8])


def world(rng: np.random.Generator, n: int, *, mean=(0.0, 0.0), scale=1.0, rule=RULE, temperature=1.0):
    x = rng.normal(mean, scale, size=(n, 2))
    model_logit = x @ RULE + 0.3
    p_true = 1 / (1 + np.exp(-(x @ rule + 0.3)))
    y = (rng.uniform(size=n) < p_true).astype(int)
    score = 1 / (1 + np.exp(-temperature * model_logit))
    return np.c_[1 - score, score], y


def realized(proba: np.ndarray, y: np.ndarray) -> dict:
    return classification_metrics(y, proba.argmax(axis=1), proba, classes=[0, 1], n_boot=0)


@pytest.fixture(scope="module")
def calibrated_cbpe() -> ConfidenceBasedEstimator:
    proba, y = world(np.random.default_rng(0), 10_000)
    return ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y)


def _track(cbpe, rng, windows: int, **shift) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Share of windows whose realized value fell inside the interval, mean estimate, mean realized value."""
    inside: dict[str, list[bool]] = {}
    estimated: dict[str, list[float]] = {}
    actual: dict[str, list[float]] = {}
    for _ in range(windows):
        proba, y = world(rng, 500, **shift)
        est, real = cbpe.estimate(proba), realized(proba, y)
        for name, departed in departures(est, real).items():
            inside.setdefault(name, []).append(not departed)
            estimated.setdefault(name, []).append(est[name].value)
            actual.setdefault(name, []).append(real[name].value)
    mean = lambda d: {k: float(np.mean(v)) for k, v in d.items()}  # noqa: E731
    return mean(inside), mean(estimated), mean(actual)


def test_no_shift_the_realized_value_falls_in_the_interval(calibrated_cbpe) -> None:
    inside, est, real = _track(calibrated_cbpe, np.random.default_rng(1), 200)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert inside[name] >= 0.90, (name, inside)
        assert abs(est[name] - real[name]) < 0.01, name
    # and no more than about 1 - confidence of windows depart
    assert max(1 - v for v in inside.values()) <= 0.10


@pytest.mark.parametrize("shift", [{"mean": (-0.2, 0.0), "scale": 0.5}, {"mean": (1.0, -0.5)}])
def test_covariate_shift_moves_the_estimate_with_the_realized_value(calibrated_cbpe, shift) -> None:
    """Inputs crowd around the decision boundary (accuracy falls) or move away from it (accuracy rises)."""
    inside, est, real = _track(calibrated_cbpe, np.random.default_rng(2), 200, **shift)
    reference = calibrated_cbpe.reference_metrics_
    # the shift changes accuracy a lot, and the estimate follows it
    assert abs(real["accuracy"] - reference["accuracy"].value) > 0.04
    assert abs(est["accuracy"] - real["accuracy"]) < 0.01
    for name in ("accuracy", "f1", "roc_auc"):
        assert inside[name] >= 0.90, (name, inside)


def test_concept_drift_is_a_departure(calibrated_cbpe) -> None:
    rng = np.random.default_rng(3)
    detected = []
    for _ in range(60):
        proba, y = world(rng, 500, rule=DRIFTED_RULE)
        gone = departures(calibrated_cbpe.estimate(proba), realized(proba, y))
        detected.append(gone["accuracy"] or gone["roc_auc"])
    assert np.mean(detected) >= 0.9


def test_expected_confusion_matrix_by_hand() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(size=300)
    cbpe = ConfidenceBasedEstimator(classes=[0, 1], calibration="none").fit(np.c_[1 - p, p], rng.integers(0, 2, 300))
    q = rng.uniform(size=500)
    est = cbpe.estimate(np.c_[1 - q, q])
    positive = q > 0.5
    tp, fp, fn = q[positive].sum(), (1 - q[positive]).sum(), q[~positive].sum()
    assert est["accuracy"].value == pytest.approx(np.maximum(q, 1 - q).mean(), rel=1e-12)
    assert est["precision"].value == pytest.approx(tp / positive.sum(), rel=1e-12)
    assert est["recall"].value == pytest.approx(tp / q.sum(), rel=1e-12)
    assert est["f1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)


def test_soft_auc_is_the_expected_pair_count_over_distinct_pairs() -> None:
    rng = np.random.default_rng(5)
    score = rng.choice(np.linspace(0.05, 0.95, 12), size=40)  # ties on purpose
    cbpe = ConfidenceBasedEstimator(classes=[0, 1], calibration="none").fit(np.c_[1 - score, score], rng.integers(0, 2, 40))
    wins = pairs = 0.0
    for i, j in itertools.permutations(range(40), 2):
        weight = score[i] * (1 - score[j])
        pairs += weight
        wins += weight * (1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0)
    assert cbpe.estimate(np.c_[1 - score, score])["roc_auc"].value == pytest.approx(wins / pairs, rel=1e-12)


def test_accuracy_interval_is_the_poisson_binomial_spread() -> None:
    rng = np.random.default_rng(6)
    p = rng.uniform(size=500)
    cbpe = ConfidenceBasedEstimator(classes=[0, 1], calibration="none", n_sim=4000, calibration_resamples=0)
    cbpe.fit(np.c_[1 - p, p], rng.integers(0, 2, 500))
    q = rng.beta(2, 2, size=600)
    est = cbpe.estimate(np.c_[1 - q, q], confidence=0.6827)  # +-1 sd for a normal
    right = np.maximum(q, 1 - q)
    sd = math.sqrt(float(np.sum(right * (1 - right)))) / len(q)
    assert (est["accuracy"].ci_high - est["accuracy"].ci_low) / 2 == pytest.approx(sd, rel=0.1)


def test_auto_calibration_repairs_an_overconfident_model() -> None:
    rng = np.random.default_rng(7)
    proba, y = world(rng, 10_000, temperature=1.6)
    auto = ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y)
    assert auto.calibration_ == "sigmoid"
    assert auto.calibration_scores_["sigmoid"] < auto.calibration_scores_["none"]
    raw = ConfidenceBasedEstimator(classes=[0, 1], calibration="none").fit(proba, y)
    window, labels = world(rng, 20_000, temperature=1.6, mean=(1.0, -0.5))
    truth = realized(window, labels)["accuracy"].value
    assert abs(auto.estimate(window)["accuracy"].value - truth) < 0.01
    assert raw.estimate(window)["accuracy"].value - truth > 0.02  # the raw scores promise too much


def test_sigmoid_calibrator_is_maximum_likelihood_platt_scaling() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0.01, 0.99, size=3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-0.6 * _logit(p) + 0.2))).astype(float)
    ours = Sigmoid().fit(p, y)
    reference = LogisticRegression(C=1e10, max_iter=1000).fit(_logit(p)[:, None], y)
    assert ours.slope == pytest.approx(reference.coef_[0, 0], abs=2e-3)
    assert ours.intercept == pytest.approx(reference.intercept_[0], abs=2e-3)
    side = p >= 0.5  # an intercept per side of the served label: logistic regression on (logit, side)
    sided = Sigmoid().fit(p, y, side)
    reference = LogisticRegression(C=1e10, max_iter=1000).fit(np.c_[_logit(p), side], y)
    expected = (reference.coef_[0, 0], reference.coef_[0, 1], reference.intercept_[0])
    # (the side is nearly collinear with the logit, so the pseudo-row's pull shows a little more)
    assert (sided.slope, sided.shift, sided.intercept) == pytest.approx(expected, abs=5e-3)
    separated = Sigmoid().fit(np.array([0.2, 0.3, 0.7, 0.8]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert math.isfinite(separated.slope) and separated.slope > 1


def test_multiclass_estimates_track_realized_values() -> None:
    rng = np.random.default_rng(9)
    weights = np.array([[1.0, -0.5], [-1.0, -0.5], [0.0, 1.0]])
    classes = ["red", "green", "blue"]

    def draw(n: int, mean=(0.0, 0.0)):
        logits = rng.normal(mean, 1.0, size=(n, 2)) @ weights.T * 1.5
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.uniform(size=(n, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
        return proba, np.array(classes)[np.minimum(y, 2)]

    cbpe = ConfidenceBasedEstimator(classes=classes).fit(*draw(6000))
    inside = []
    for _ in range(40):
        proba, y = draw(800, mean=(0.8, 0.3))
        real = classification_metrics(y, np.array(classes)[proba.argmax(axis=1)], proba, classes=classes, n_boot=0)
        gone = departures(cbpe.estimate(proba), real)
        inside.append([not gone[m] for m in ("accuracy", "f1", "roc_auc")])
    assert np.mean(inside, axis=0).min() >= 0.85


def test_estimates_are_seeded_and_validated(calibrated_cbpe) -> None:
    proba, y = world(np.random.default_rng(10), 500)
    assert calibrated_cbpe.estimate(proba) == calibrated_cbpe.estimate(proba)
    errors = estimation_error(calibrated_cbpe.estimate(proba), realized(proba, y))
    assert set(errors) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    empty = calibrated_cbpe.estimate(np.empty((0, 2)))
    assert all(m.n == 0 and math.isnan(m.value) for m in empty.values())
    with pytest.raises(InvalidInput, match="not fitted"):
        ConfidenceBasedEstimator(classes=[0, 1]).estimate(proba)
    with pytest.raises(InvalidInput, match="shape"):
        calibrated_cbpe.estimate(proba[:, :1])
    with pytest.raises(InvalidInput, match="calibration"):
        ConfidenceBasedEstimator(classes=[0, 1], calibration="platt").fit(proba, y)
    with pytest.raises(InvalidInput, match="two classes"):
        ConfidenceBasedEstimator(classes=[0, 1, 2], threshold=0.3).fit(np.full((4, 3), 1 / 3), [0, 1, 2, 0])


def test_a_threshold_changes_what_counts_as_predicted_positive() -> None:
    rng = np.random.default_rng(11)
    proba, y = world(rng, 5000)
    low = ConfidenceBasedEstimator(classes=[0, 1], threshold=0.3).fit(proba, y)
    window, labels = world(rng, 20_000)
    est = low.estimate(window)
    real = classification_metrics(labels, (window[:, 1] >= 0.3).astype(int), window, classes=[0, 1], n_boot=0)
    assert est["recall"].value == pytest.approx(real["recall"].value, abs=0.01)
    assert est["recall"].value > realized(window, labels)["recall"].value + 0.05
    # served labels given outright are the same thing
    served = (window[:, 1] >= 0.3).astype(int)
    plain = ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y, y_pred_reference=(proba[:, 1] >= 0.3).astype(int))
    given = plain.estimate(window, y_pred=served)
    assert {k: v.value for k, v in given.items()} == pytest.approx({k: v.value for k, v in est.items()})
    assert plain.reference_metrics_["recall"].value == pytest.approx(low.reference_metrics_["recall"].value)
    with pytest.raises(InvalidInput, match="y_pred"):
        plain.estimate(window, y_pred=served[:10])


def test_the_sigmoid_fit_does_not_run_off_on_scores_far_more_confident_than_their_outcomes() -> None:
    """Naive Bayes' way: a cluster of scores near 0.998 whose rows are positive a third of the time."""
    rng = np.random.default_rng(12)
    p = np.r_[rng.uniform(0.05, 0.6, size=3000), rng.uniform(0.996, 0.999, size=300)]
    truth = np.r_[rng.uniform(size=3000) < p[:3000] * 0.8, rng.uniform(size=300) < 0.35].astype(float)
    ours = Sigmoid().fit(p, truth)
    reference = LogisticRegression(C=1e10, max_iter=1000).fit(_logit(p)[:, None], truth)
    assert ours.slope == pytest.approx(reference.coef_[0, 0], abs=2e-3)
    assert ours.intercept == pytest.approx(reference.intercept_[0], abs=2e-3)


def step_world(rng: np.random.Generator, n: int, *, low: float = 0.0):
    """A score whose truth is a staircase, no sigmoid of its logit: P(y | p) is 0.15 below 0.4,
    0.5 up to 0.6 and 0.85 above (scores uniform on [low, 1])."""
    score = rng.uniform(low, 1.0, size=n)
    truth_p = np.select([score < 0.4, score < 0.6], [0.15, 0.5], 0.85)
    y = (rng.uniform(size=n) < truth_p).astype(int)
    return np.c_[1 - score, score], y


def test_auto_calibration_is_chosen_on_the_estimates_and_picks_isotonic_for_a_staircase() -> None:
    rng = np.random.default_rng(13)
    proba, y = step_world(rng, 10_000)
    auto = ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y)
    assert auto.calibration_ == "isotonic"
    assert auto.calibration_scores_["isotonic"] < min(auto.calibration_scores_["sigmoid"], auto.calibration_scores_["none"])
    # the choice is the better estimate where it matters: a window leaning to high scores
    sigmoid = ConfidenceBasedEstimator(classes=[0, 1], calibration="sigmoid").fit(proba, y)
    window, labels = step_world(rng, 20_000, low=0.35)
    truth = realized(window, labels)
    for name in ("accuracy", "roc_auc"):
        assert abs(auto.estimate(window)[name].value - truth[name].value) < 0.01, name
    assert abs(sigmoid.estimate(window)["accuracy"].value - truth["accuracy"].value) > 0.02


def segment_world(rng: np.random.Generator, n: int, *, shop_share: float = 0.1):
    """A model nearly calibrated on the holdout's mix and not by segment: in the 'shop' channel
    (a tenth of the holdout) the truth is much closer to a coin toss than the score says."""
    x = rng.normal(size=n)
    channel = np.where(rng.uniform(size=n) < shop_share, "shop", "web")
    score = 1 / (1 + np.exp(-(1.5 * x)))
    truth = np.where(channel == "shop", 0.5 + 0.3 * (score - 0.5), score)
    y = (rng.uniform(size=n) < truth).astype(int)
    return pd.DataFrame({"x": x, "channel": channel}), np.c_[1 - score, score], y


def test_a_window_of_a_miscalibrated_segment_gets_the_interval_it_needs() -> None:
    rng = np.random.default_rng(14)
    table, proba, y = segment_world(rng, 10_000)
    with_inputs = ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y, X_reference=table)
    scores_only = ConfidenceBasedEstimator(classes=[0, 1]).fit(proba, y)
    assert with_inputs.segments_ is not None and scores_only.segments_ is None
    inside: dict[str, list[bool]] = {"inputs": [], "scores": []}
    widths: dict[str, list[float]] = {"inputs": [], "scores": [], "mix": [], "mix_scores": []}
    for _ in range(30):
        window, p, labels = segment_world(rng, 2000, shop_share=0.8)  # the shop, mostly
        truth = realized(p, labels)["accuracy"].value
        for name, estimate in (("inputs", with_inputs.estimate(p, X=window)), ("scores", scores_only.estimate(p))):
            inside[name].append(estimate["accuracy"].contains(truth))
            widths[name].append(estimate["accuracy"].ci_high - estimate["accuracy"].ci_low)
        window, p, _ = segment_world(rng, 2000)  # the holdout's own mix
        for name, estimate in (("mix", with_inputs.estimate(p, X=window)), ("mix_scores", scores_only.estimate(p))):
            widths[name].append(estimate["accuracy"].ci_high - estimate["accuracy"].ci_low)
    assert np.mean(inside["scores"]) < 0.5  # the scores alone cannot see the segment's miscalibration
    assert np.mean(inside["inputs"]) >= 0.9
    assert np.median(widths["inputs"]) > 1.5 * np.median(widths["scores"])
    # a window with the holdout's mix keeps about the interval it had
    assert np.median(widths["mix"]) < 1.15 * np.median(widths["mix_scores"])
    # without the window's inputs, the estimate is what it was
    assert with_inputs.estimate(p)["accuracy"] == scores_only.estimate(p)["accuracy"]
    with pytest.raises(InvalidInput, match="lack"):
        with_inputs.estimate(p, X=window[["x"]])


def dip_world(rng: np.random.Generator, n: int):
    """Scores whose truth is not monotone across the threshold (naive Bayes' way): P(y | p) is p,
    except 0.6 on [0.3, 0.5), just below the threshold, and 0.35 on [0.5, 0.7), just above it."""
    score = rng.uniform(size=n)
    truth_p = np.select([(score >= 0.3) & (score < 0.5), (score >= 0.5) & (score < 0.7)], [0.6, 0.35], score)
    y = (rng.uniform(size=n) < truth_p).astype(int)
    return np.c_[1 - score, score], y


def test_two_classes_are_calibrated_on_each_side_of_the_served_label() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(15)
    proba, y = dip_world(rng, 10_000)
    isotonic = ConfidenceBasedEstimator(classes=[0, 1], calibration="isotonic").fit(proba, y)
    # pool-adjacent-violators keeps each side's sum of outcomes: on its own holdout the estimated
    # accuracy is the realized one, to rounding
    holdout = realized(proba, y)["accuracy"].value
    assert isotonic.estimate(proba)["accuracy"].value == pytest.approx(holdout, abs=1e-9)
    window, labels = dip_world(rng, 20_000)
    truth = realized(window, labels)["accuracy"].value
    errors = {}
    for calibration in ("auto", "isotonic", "sigmoid"):
        cbpe = ConfidenceBasedEstimator(classes=[0, 1], calibration=calibration).fit(proba, y)
        errors[calibration] = abs(cbpe.estimate(window)["accuracy"].value - truth)
    assert errors["isotonic"] < 0.015 and max(errors.values()) < 0.02, errors
    # one monotone map over both sides pools the dip with the rise and is off on both sides at once
    pooled = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(proba[:, 1], y).predict(window[:, 1])
    pooled_error = np.mean(np.where(window[:, 1] >= 0.5, pooled, 1 - pooled)) - truth
    assert pooled_error > 0.04, pooled_error
    # the served labels decide the sides: by a threshold of 0.3, the rows on [0.3, 0.5) are served positive
    served = (window[:, 1] >= 0.3).astype(int)
    sided = ConfidenceBasedEstimator(classes=[0, 1], threshold=0.3, calibration="isotonic").fit(proba, y)
    truth = float(np.mean(served == labels))
    assert abs(sided.estimate(window)["accuracy"].value - truth) < 0.015
    assert sided.estimate(window, y_pred=served)["accuracy"].value == sided.estimate(window)["accuracy"].value


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(120, 400), slope=st.floats(0.2, 3.0), dip=st.floats(-0.3, 0.3))
def test_sided_calibrators_keep_each_sides_outcomes(seed: int, n: int, slope: float, dip: float) -> None:
    """In sample, what is estimated adds up side by side: isotonic keeps each side's sum of outcomes
    (pool adjacent violators preserves sums), and the sided sigmoid's score equations leave each
    side short by exactly what the pseudo-row's pull toward the identity holds back."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, size=n)
    side = p >= 0.5
    truth_p = np.clip(1 / (1 + np.exp(-slope * _logit(p))) + dip * side, 0.01, 0.99)
    y = (rng.uniform(size=n) < truth_p).astype(float)
    isotonic = fit_sided("isotonic", p, y, side)
    sigmoid = Sigmoid().fit(p, y, side)
    q = sigmoid.predict(p, side)
    for rows in (side, ~side):
        if rows.sum() >= MIN_SIDE_ROWS and 0 < y[rows].sum() < rows.sum():
            assert isotonic.predict(p[rows], side[rows]).sum() == pytest.approx(y[rows].sum(), abs=1e-9)
    assert np.sum(y - q) == pytest.approx(sigmoid.intercept, abs=1e-6)  # the intercept's equation
    assert np.sum((y - q)[side]) == pytest.approx(sigmoid.shift, abs=1e-6)  # the shift's
