"""Realized metrics: values checked against scikit-learn, bootstrap intervals checked for coverage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from loopwatch.errors import InvalidInput
from loopwatch.performance import MetricValue, classification_metrics, overfitting_gap, regression_metrics


def _binary_window(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated scores p ~ U(0, 1), labels ~ Bernoulli(p), the label predicted at 0.5."""
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, (p > 0.5).astype(int), np.c_[1 - p, p]


@pytest.mark.parametrize("classes,positive", [((0, 1), None), (("no", "yes"), "no"), ((False, True), True)])
def test_binary_metrics_match_scikit_learn(classes: tuple, positive: object) -> None:
    rng = np.random.default_rng(1)
    y, pred, proba = _binary_window(rng, 700)
    labels = np.asarray(classes)
    y_l, pred_l = labels[y], labels[pred]
    got = classification_metrics(y_l, pred_l, proba, classes=classes, positive=positive, n_boot=0)
    pos = classes[1] if positive is None else positive
    pos_column = list(classes).index(pos)
    is_pos = (y_l == pos).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(y_l, pred_l),
        "precision": skm.precision_score(y_l, pred_l, pos_label=pos),
        "recall": skm.recall_score(y_l, pred_l, pos_label=pos),
        "f1": skm.f1_score(y_l, pred_l, pos_label=pos),
        "roc_auc": skm.roc_auc_score(is_pos, proba[:, pos_column]),
        "log_loss": skm.log_loss(y, proba),
        "brier": skm.brier_score_loss(is_pos, proba[:, pos_column]),
    }
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, rel=1e-12, abs=1e-12), name
        assert got[name].n == 700


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    classes = ["a", "b", "c", "d"]
    proba = rng.dirichlet(np.ones(4) * 0.7, size=900)
    y = np.array(classes)[(rng.uniform(size=(900, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)]
    pred = np.array(classes)[proba.argmax(axis=1)]
    got = classification_metrics(y, pred, proba, classes=classes, n_boot=0)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average="macro", labels=classes),
        "recall": skm.recall_score(y, pred, average="macro", labels=classes),
        "f1": skm.f1_score(y, pred, average="macro", labels=classes),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes),
        "log_loss": skm.log_loss(y, proba, labels=classes),
        "brier": skm.brier_score_loss(y, proba, labels=classes),
    }
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, rel=1e-12), name


def test_a_class_never_predicted_is_left_out_of_the_macro_average_as_scikit_learn_does() -> None:
    y, pred = [0, 0, 1, 2], [0, 0, 0, 1]
    got = classification_metrics(y, pred, classes=[0, 1, 2], n_boot=0)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name].value == pytest.approx(fn(y, pred, labels=[0, 1, 2], average="macro", zero_division=np.nan))


@pytest.mark.parametrize("multiclass", [False, True])
def test_ece_matches_the_calibration_curve(multiclass: bool) -> None:
    rng = np.random.default_rng(3)
    if multiclass:
        proba = rng.dirichlet(np.ones(3), size=2000)
        y = (rng.uniform(size=(2000, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
        confidence, outcome = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(int)
        classes = [0, 1, 2]
    else:
        p = rng.beta(2, 2, size=2000)
        y = (rng.uniform(size=2000) < p**1.3).astype(int)  # miscalibrated on purpose
        proba, confidence, outcome, classes = np.c_[1 - p, p], p, y, [0, 1]
    got = classification_metrics(y, proba.argmax(axis=1), proba, classes=classes, n_boot=0)["ece"].value
    observed, predicted = calibration_curve(outcome, confidence, n_bins=10, strategy="uniform")
    counts = np.histogram(confidence, bins=np.linspace(0, 1, 11))[0]
    counts = counts[counts > 0]
    assert got == pytest.approx(float(np.sum(counts / counts.sum() * np.abs(observed - predicted))), rel=1e-9)


def test_regression_metrics_match_scikit_learn_and_mape_skips_zero_truths() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(3, 2, size=600)
    y[:25] = 0.0
    pred = y + rng.normal(0, 1, size=600)
    got = regression_metrics(y, pred, n_boot=0)
    assert got["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert got["rmse"].value == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-12)
    kept = y != 0
    assert got["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y[kept], pred[kept]), rel=1e-12)
    assert (got["mae"].n, got["mape"].n) == (600, 575)


def test_undefined_metrics_are_nan_not_errors() -> None:
    one_class = classification_metrics([1, 1, 1], [1, 0, 1], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], classes=[0, 1])
    assert math.isnan(one_class["roc_auc"].value) and math.isnan(one_class["roc_auc"].ci_low)
    assert one_class["accuracy"].value == pytest.approx(2 / 3)
    nothing_positive = classification_metrics([0, 1, 0], [0, 0, 0], classes=[0, 1], n_boot=50)
    assert math.isnan(nothing_positive["precision"].value) and nothing_positive["recall"].value == 0
    assert math.isnan(regression_metrics([0.0, 0.0], [1.0, 2.0])["mape"].value)
    empty = classification_metrics([], [], np.empty((0, 2)), classes=[0, 1])
    assert all(math.isnan(m.value) and m.n == 0 for m in empty.values()) and len(empty) == 8
    assert all(m.n == 0 for m in regression_metrics([], []).values())


def test_intervals_are_seeded_and_to_dict_is_strict_json() -> None:
    y, pred, proba = _binary_window(np.random.default_rng(5), 300)
    first = classification_metrics(y, pred, proba, classes=[0, 1], seed=7)
    assert first == classification_metrics(y, pred, proba, classes=[0, 1], seed=7)
    assert first["roc_auc"].ci_low != classification_metrics(y, pred, proba, classes=[0, 1], seed=8)["roc_auc"].ci_low
    for metric in first.values():
        assert metric.ci_low <= metric.value <= metric.ci_high or metric.name == "ece"
    nan = classification_metrics([1, 1], [1, 1], [[0.1, 0.9], [0.2, 0.8]], classes=[0, 1])["roc_auc"]
    assert json.loads(json.dumps(nan.to_dict(), allow_nan=False))["value"] is None


def test_bootstrap_intervals_cover_the_population_value() -> None:
    """200 seeded windows of 400 rows: each 95% interval should hold the population value 90-99% of the time.

    With p ~ U(0, 1) and y ~ Bernoulli(p), predicting p > 0.5: accuracy, precision, recall and F1 are 3/4, AUC is
    P(p_positive > p_negative) = 5/6, log loss is 2 * integral(-p log p) = 1/2 and the Brier score E[p(1-p)] = 1/6.
    (ECE is left out: it is biased upward on a finite window, so no interval of it covers the population's 0.)
    """
    truth = {"accuracy": 0.75, "precision": 0.75, "recall": 0.75, "f1": 0.75, "roc_auc": 5 / 6,
             "log_loss": 0.5, "brier": 1 / 6}
    rng = np.random.default_rng(11)
    hits = {name: 0 for name in truth}
    for i in range(200):
        got = classification_metrics(*_binary_window(rng, 400), classes=[0, 1], n_boot=200, seed=i)
        for name, value in truth.items():
            hits[name] += got[name].contains(value)
    for name, count in hits.items():
        assert 0.90 <= count / 200 <= 0.99, (name, count)


def test_regression_bootstrap_intervals_cover_the_population_value() -> None:
    # errors ~ N(0, 1): MAE = sqrt(2 / pi), RMSE = 1
    rng = np.random.default_rng(12)
    hits = {"mae": 0, "rmse": 0}
    for i in range(200):
        y = rng.normal(5, 1, size=300)
        got = regression_metrics(y, y + rng.normal(size=300), seed=i)
        hits["mae"] += got["mae"].contains(math.sqrt(2 / math.pi))
        hits["rmse"] += got["rmse"].contains(1.0)
    assert all(0.90 <= c / 200 <= 0.99 for c in hits.values()), hits


def test_bad_input_is_a_clear_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not one of the classes"):
        classification_metrics([0, 3], [0, 1], classes=[0, 1])
    with pytest.raises(InvalidInput, match="shape"):
        classification_metrics([0, 1], [0, 1], [[0.5, 0.5]], classes=[0, 1])
    with pytest.raises(InvalidInput, match="probabilities"):
        classification_metrics([0, 1], [0, 1], [[0.5, 0.5], [np.nan, 1]], classes=[0, 1])
    with pytest.raises(InvalidInput, match="confidence"):
        classification_metrics([0, 1], [0, 1], classes=[0, 1], confidence=1.5)
    with pytest.raises(InvalidInput, match="macro"):
        classification_metrics([0, 1], [0, 1], classes=[0, 1, 2], positive=1)
    with pytest.raises(InvalidInput, match="finite"):
        regression_metrics([1.0, np.inf], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="expected 2"):
        regression_metrics([1.0, 2.0], [1.0])


def test_labels_logged_as_text_match_their_classes() -> None:
    got = classification_metrics(["1", "0", 1], [1, 0, 0], classes=[0, 1], n_boot=0)
    assert got["accuracy"].value == pytest.approx(2 / 3)
    got = classification_metrics(["true", "false"], [True, True], classes=[False, True], n_boot=0)
    assert got["accuracy"].value == 0.5


def test_overfitting_gap_signs_and_interval() -> None:
    realized = {
        "accuracy": MetricValue("accuracy", 0.80, 0.77, 0.83, 500),
        "log_loss": MetricValue("log_loss", 0.45, 0.41, 0.49, 500),
        "roc_auc": MetricValue("roc_auc", float("nan"), float("nan"), float("nan"), 500),
    }
    gap = overfitting_gap(realized, {"accuracy": 0.88, "log_loss": 0.43, "roc_auc": 0.9, "mae": 1.0})
    assert set(gap) == {"accuracy", "log_loss", "roc_auc"}
    assert gap["accuracy"]["gap"] == pytest.approx(0.08) and gap["accuracy"]["outside_ci"] is True
    assert gap["log_loss"]["gap"] == pytest.approx(0.02) and gap["log_loss"]["outside_ci"] is False
    assert gap["roc_auc"]["outside_ci"] is False


labels = st.lists(st.integers(0, 2), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), y=labels)
def test_properties_of_classification_metrics(data: st.DataObject, y: list[int]) -> None:
    n = len(y)
    pred = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    raw = np.asarray(data.draw(st.lists(st.floats(0.01, 1.0), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    proba = raw / raw.sum(axis=1, keepdims=True)
    got = classification_metrics(y, pred, proba, classes=[0, 1, 2], n_boot=20)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "brier", "ece"):
        value = got[name].value
        assert math.isnan(value) or -1e-12 <= value <= (2 if name == "brier" else 1) + 1e-12, name
    # permutation invariance of the point values
    order = np.random.default_rng(n).permutation(n)
    shuffled = classification_metrics(np.asarray(y)[order], np.asarray(pred)[order], proba[order],
                                      classes=[0, 1, 2], n_boot=0)
    for name, metric in got.items():
        assert shuffled[name].value == pytest.approx(metric.value, nan_ok=True, abs=1e-12), name
    # perfect predictions, certain and right, are ideal
    perfect = classification_metrics(y, y, np.eye(3)[y], classes=[0, 1, 2], n_boot=0)
    assert perfect["accuracy"].value == 1 and perfect["brier"].value == 0 and perfect["ece"].value == 0
    assert perfect["log_loss"].value < 1e-12
    assert perfect["f1"].value == 1 and (math.isnan(perfect["roc_auc"].value) or perfect["roc_auc"].value == 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=60))
def test_properties_of_regression_metrics(pairs: list[tuple[float, float]]) -> None:
    y, pred = np.array(pairs).T
    got = regression_metrics(y, pred, n_boot=20)
    assert 0 <= got["mae"].value <= got["rmse"].value * (1 + 1e-12) + 1e-12
    order = np.random.default_rng(len(y)).permutation(len(y))
    again = regression_metrics(y[order], pred[order], n_boot=0)
    assert again["mae"].value == pytest.approx(got["mae"].value, rel=1e-9, abs=1e-12)
    perfect = regression_metrics(y, y, n_boot=0)
    assert perfect["mae"].value == 0 and perfect["rmse"].value == 0
    assert perfect["mape"].value == 0 or math.isnan(perfect["mape"].value)
