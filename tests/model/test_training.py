"""The model: training, holdout metrics checked against scikit-learn, schema inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from loopwatch.errors import InvalidInput
from loopwatch.features.schema import infer_schema, infer_task
from loopwatch.models.training import ESTIMATORS, prepare_features, train_model


def _regression_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "z": rng.normal(size=n), "city": rng.choice(["a", "b", "c"], n)}
    )
    frame["price"] = 3 * frame.x - frame.z + (frame.city == "b") * 2 + rng.normal(scale=0.3, size=n)
    return frame


@pytest.mark.parametrize("estimator", ESTIMATORS["classification"])
def test_classifiers_learn_the_churn_world(churn_training: pd.DataFrame, estimator: str) -> None:
    trained = train_model(churn_training, "churned", estimator=estimator, seed=3)
    assert trained.schema.task == "classification"
    assert trained.schema.classes == (0, 1)
    assert 0.65 < trained.metrics["roc_auc"] < 0.95
    assert trained.metrics["n_holdout"] == pytest.approx(0.2 * len(churn_training), abs=1)


def test_holdout_metrics_match_scikit_learn_on_the_same_split(churn_training: pd.DataFrame) -> None:
    trained = train_model(churn_training, "churned", seed=5)
    features = prepare_features(churn_training, trained.schema)
    y = churn_training["churned"].to_numpy()
    _, x_test, _, y_test = train_test_split(features, y, test_size=0.2, random_state=5, stratify=y)
    proba = trained.pipeline.predict_proba(x_test)[:, 1]
    assert trained.metrics["roc_auc"] == pytest.approx(roc_auc_score(y_test, proba), abs=1e-12)
    assert trained.metrics["accuracy"] == pytest.approx(
        accuracy_score(y_test, trained.pipeline.predict(x_test)), abs=1e-12
    )


@pytest.mark.parametrize("estimator", ESTIMATORS["regression"])
def test_regressors(estimator: str) -> None:
    trained = train_model(_regression_frame(), "price", estimator=estimator)
    assert trained.schema.task == "regression"
    assert trained.metrics["r2"] > 0.8
    assert trained.metrics["rmse"] >= trained.metrics["mae"] > 0


def test_unknown_categories_and_missing_values_are_tolerated(churn_training: pd.DataFrame) -> None:
    trained = train_model(churn_training, "churned")
    row = prepare_features(churn_training.head(1), trained.schema)
    row.loc[0, "country"] = "Atlantis"
    row.loc[0, "age"] = np.nan
    proba = trained.pipeline.predict_proba(row)
    assert proba.shape == (1, 2) and np.isfinite(proba).all()


def test_training_is_reproducible_for_a_seed(churn_training: pd.DataFrame) -> None:
    a = train_model(churn_training, "churned", estimator="random_forest", seed=1)
    b = train_model(churn_training, "churned", estimator="random_forest", seed=1)
    assert a.metrics == b.metrics
    pd.testing.assert_frame_equal(a.reference_sample, b.reference_sample)


def test_estimator_params_reach_the_estimator(churn_training: pd.DataFrame) -> None:
    trained = train_model(
        churn_training, "churned", estimator="random_forest", estimator_params={"n_estimators": 7}
    )
    assert len(trained.pipeline.named_steps["model"].estimators_) == 7
    with pytest.raises(InvalidInput):
        train_model(churn_training, "churned", estimator_params={"no_such_param": 1})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "nope"}, "target column"),
        ({"target": "churned", "estimator": "ridge"}, "unknown estimator"),
        ({"target": "churned", "categorical": ["nope"]}, "unknown columns"),
        ({"target": "churned", "test_size": 1.5}, "test_size"),
    ],
)
def test_bad_training_requests_are_clear(churn_training: pd.DataFrame, kwargs: dict, message: str) -> None:
    target = kwargs.pop("target")
    with pytest.raises(InvalidInput, match=message):
        train_model(churn_training, target, **kwargs)


def test_single_class_and_tiny_tables_are_refused(churn_training: pd.DataFrame) -> None:
    one_class = churn_training.assign(churned=0)
    with pytest.raises(InvalidInput, match="single class"):
        train_model(one_class, "churned")
    with pytest.raises(InvalidInput, match="at least 10 rows"):
        train_model(churn_training.head(5), "churned")


def test_schema_inference(churn_training: pd.DataFrame) -> None:
    schema = infer_schema(churn_training, "churned")
    assert set(schema.categorical) == {"plan", "device", "country"}
    assert set(schema.numeric) == {"tenure_months", "monthly_fee", "watch_hours", "support_tickets", "age"}
    age = schema.feature("age")
    assert age.nullable and 0 < age.missing_rate < 0.1
    fee = schema.feature("monthly_fee")
    assert fee.minimum == churn_training.monthly_fee.min()
    assert fee.maximum == churn_training.monthly_fee.max()
    assert not fee.nullable
    assert schema.feature("country").categories == tuple(sorted(churn_training.country.unique()))
    forced = infer_schema(churn_training, "churned", categorical=["support_tickets"])
    assert forced.feature("support_tickets").kind == "categorical"
    assert type(schema).from_dict(schema.to_dict()) == schema


def test_task_inference() -> None:
    assert infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert infer_task(pd.Series(["yes", "no"])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 100))) == "regression"
    assert infer_task(pd.Series(np.arange(100))) == "regression"
