"""The performance reference: built at training from outputs already computed, stored in the profile,
loaded back (old profiles too), and turned into a fitted estimator at monitor time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from loopwatch.drift.profile import ReferenceProfile
from loopwatch.errors import InvalidInput
from loopwatch.models.training import prepare_features, train_model
from loopwatch.performance import (
    ConfidenceBasedEstimator,
    DirectLossEstimator,
    PerformanceReference,
    classification_metrics,
    classifier_reference,
    fit_estimator,
    performance_reference_of,
    regression_metrics,
    regressor_reference,
)
from loopwatch.records.jsonutil import dumps, loads


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure": rng.gamma(2.0, 10.0, size=n),
        "fee": rng.normal(30, 8, size=n),
        "plan": rng.choice(["basic", "plus", "pro"], size=n),
    })
    logit = 0.05 * frame["tenure"] - 0.08 * (frame["fee"] - 30) + (frame["plan"] == "pro") - 1
    frame["churned"] = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame["spend"] = 3 * frame["tenure"] + rng.normal(size=n) * (1 + (frame["plan"] == "basic") * 4)
    return frame


@pytest.fixture(scope="module")
def classifier():
    return train_model(_table(1500, 0).drop(columns="spend"), "churned", seed=3)


@pytest.fixture(scope="module")
def regressor():
    return train_model(_table(5000, 1).drop(columns="churned"), "spend", task="regression", seed=3)


def test_a_classifier_keeps_its_holdout_labels_and_probabilities(classifier) -> None:
    reference = classifier.profile.performance
    assert reference.task == "classification" and reference.classes == ("no", "yes")
    assert reference.n == reference.n_holdout == classifier.metrics["n_holdout"] == 300
    assert reference.y_proba.shape == (300, 2) and set(reference.y_true) <= {"no", "yes"}
    # the holdout metrics are the training's own, under the names realized metrics use
    assert reference.holdout_metrics["accuracy"] == pytest.approx(classifier.metrics["accuracy"])
    assert reference.holdout_metrics["roc_auc"] == pytest.approx(classifier.metrics["roc_auc"])
    assert reference.holdout_metrics["log_loss"] == pytest.approx(classifier.metrics["log_loss"])
    realized = classification_metrics(reference.y_true, reference.y_pred, reference.y_proba,
                                      classes=reference.classes, n_boot=0)
    assert {k: v.value for k, v in realized.items()} == pytest.approx(reference.holdout_metrics)


def test_the_profile_round_trips_with_its_performance_reference(classifier, regressor) -> None:
    for model in (classifier, regressor):
        original = model.profile.performance
        loaded = performance_reference_of(ReferenceProfile.from_bytes(model.profile.to_bytes()))
        assert isinstance(loaded, PerformanceReference)
        assert (loaded.task, loaded.classes, loaded.n_holdout) == (original.task, original.classes, original.n_holdout)
        assert list(loaded.y_true) == list(original.y_true) and list(loaded.y_pred) == list(original.y_pred)
        assert loaded.holdout_metrics == pytest.approx(original.holdout_metrics, nan_ok=True)
    loaded = performance_reference_of(ReferenceProfile.from_bytes(classifier.profile.to_bytes()))
    np.testing.assert_array_equal(loaded.y_proba, classifier.profile.performance.y_proba)
    # a classifier keeps its holdout's inputs too, for calibration by segment
    pd.testing.assert_frame_equal(loaded.X, classifier.profile.performance.X, check_dtype=False)
    assert list(loaded.X.columns) == ["tenure", "fee", "plan"]
    loaded = performance_reference_of(ReferenceProfile.from_bytes(regressor.profile.to_bytes()))
    pd.testing.assert_frame_equal(loaded.X, regressor.profile.performance.X, check_dtype=False)


def test_a_profile_stored_before_performance_references_still_loads(classifier) -> None:
    payload = sio.loads(classifier.profile.to_bytes(), trusted=sio.get_untrusted_types(data=classifier.profile.to_bytes()))
    light = loads(payload.pop("light"))
    light.pop("performance")
    payload.pop("performance")
    payload["light"] = dumps(light).decode()
    old = ReferenceProfile.from_bytes(sio.dumps(payload))
    assert old.performance is None and performance_reference_of(old) is None
    assert old.univariate.columns == classifier.profile.univariate.columns
    assert performance_reference_of(object()) is None


def test_fit_estimator_gives_a_cbpe_that_estimates_production_windows(classifier) -> None:
    reference = performance_reference_of(ReferenceProfile.from_bytes(classifier.profile.to_bytes()))
    cbpe = fit_estimator(reference, task="classification", classes=["no", "yes"], seed=0)
    assert isinstance(cbpe, ConfidenceBasedEstimator)
    window = _table(2000, 7).drop(columns=["spend", "churned"])
    labels = _table(2000, 7)["churned"]
    proba = classifier.pipeline.predict_proba(prepare_features(window, classifier.schema))
    assert cbpe.segments_ is not None  # fitted with the holdout's inputs
    estimated = cbpe.estimate(proba, X=window)
    realized = classification_metrics(labels, np.array(["no", "yes"])[proba.argmax(axis=1)], proba,
                                      classes=["no", "yes"], n_boot=0)
    for name in ("accuracy", "roc_auc"):
        assert estimated[name].contains(realized[name].value), name
        assert estimated[name].value == cbpe.estimate(proba)[name].value  # the inputs widen, never move
    with pytest.raises(InvalidInput, match="classes"):
        fit_estimator(reference, classes=["yes", "no"])
    with pytest.raises(InvalidInput, match="regression"):
        fit_estimator(reference, task="regression")


def test_fit_estimator_gives_a_dle_that_reads_raw_feature_rows(regressor) -> None:
    reference = performance_reference_of(ReferenceProfile.from_bytes(regressor.profile.to_bytes()))
    assert list(reference.X.columns) == ["tenure", "fee", "plan"]
    dle = fit_estimator(reference, task="regression")
    assert isinstance(dle, DirectLossEstimator)
    table = _table(2000, 8)
    window = table[table["plan"] == "basic"]  # the noisy plan only: a covariate shift
    features = prepare_features(window, regressor.schema)
    prediction = regressor.pipeline.predict(features)
    estimated = dle.estimate(window[["tenure", "fee", "plan"]], prediction)
    realized = regression_metrics(window["spend"].to_numpy(), prediction, n_boot=0)
    assert estimated["mae"].value > 1.2 * reference.holdout_metrics["mae"]
    assert estimated["mae"].contains(realized["mae"].value)


def test_large_holdouts_are_sampled_after_their_metrics_are_measured() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p).astype(int)
    reference = classifier_reference(y, np.c_[1 - p, p], classes=[0, 1], max_rows=1000, seed=1)
    assert (reference.n, reference.n_holdout) == (1000, 5000)
    assert reference.holdout_metrics["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))
    regression = regressor_reference(y.astype(float), p, X=rng.normal(size=(5000, 2)), max_rows=1000)
    assert regression.X.shape == (1000, 2) and math.isnan(regression.holdout_metrics["mape"]) is False
    with pytest.raises(InvalidInput, match="rows"):
        regressor_reference(y.astype(float), p, X=np.zeros((10, 2)))
