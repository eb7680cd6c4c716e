"""Train a scikit-learn pipeline from a table and a target column.

The pipeline imputes and scales numeric features and one-hot encodes
categorical ones, a missing value being a category of its own (unknown
categories at predict time are encoded as all zeros, never an error), and ends in an estimator chosen by name. Metrics are measured
on a seeded holdout split, and a seeded sample of the training rows is kept as
the version's reference data for monitoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.frames import model_frame
from loopwatch.features.schema import FeatureSchema, Task, infer_schema

#: Rows of training data kept as the reference sample of a version.
REFERENCE_SAMPLE_ROWS = 10_000


def _estimators() -> dict[Task, dict[str, Callable[[int], Any]]]:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    return {
        "classification": {
            "logistic_regression": lambda seed: LogisticRegression(max_iter=1000),
            "random_forest": lambda seed: RandomForestClassifier(
                n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
            ),
            "hist_gradient_boosting": lambda seed: HistGradientBoostingClassifier(random_state=seed),
        },
        "regression": {
            "ridge": lambda seed: Ridge(alpha=1.0),
            "random_forest": lambda seed: RandomForestRegressor(
                n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
            ),
            "hist_gradient_boosting": lambda seed: HistGradientBoostingRegressor(random_state=seed),
        },
    }


#: Estimator names per task; the first is the default.
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": ("logistic_regression", "random_forest", "hist_gradient_boosting"),
    "regression": ("ridge", "random_forest", "hist_gradient_boosting"),
}


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any
    schema: FeatureSchema
    estimator: str
    metrics: dict[str, float]
    data_summary: dict[str, Any]
    params: dict[str, Any]
    reference_sample: pd.DataFrame
    duration_ms: float
    #: What drift monitoring compares production with; ``None`` when not built.
    profile: Any = None


def build_pipeline(schema: FeatureSchema, estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if schema.numeric:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        parts.append(("numeric", numeric, schema.numeric))
    if schema.categorical:
        # a missing category is a category of its own to the encoder; an imputer
        # step in front would only cost time on every prediction
        categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("categorical", categorical, schema.categorical))
    return Pipeline([("features", ColumnTransformer(parts)), ("model", estimator)])


def prepare_features(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The feature columns as the pipeline takes them (categoricals as labels):
    :func:`loopwatch.features.frames.model_frame`."""
    return model_frame(frame, schema)


def train_model(
    frame: pd.DataFrame,
    target: str,
    *,
    task: Task | None = None,
    estimator: str | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
    test_size: float = 0.2,
    seed: int = 0,
    estimator_params: Mapping[str, Any] | None = None,
    profile: bool = True,
    training_only: pd.DataFrame | None = None,
    left_out: Sequence[int] | None = None,
) -> TrainedModel:
    """Fit a pipeline on ``frame`` and measure it on a holdout split.

    ``estimator_params`` override the chosen estimator's defaults (``n_estimators``, say).
    ``training_only`` rows (same columns) join the training split alone: the pipeline is
    fitted on them, but the holdout, the reference profile, its detectors and the reference
    sample are built from ``frame`` only. Adversarial examples go there, so that the holdout
    measures the model on the data it will serve, and no crafted row teaches the evasion
    detector what normal looks like.
    ``left_out`` are positions of rows of ``frame`` that the training split leaves out (rows a
    screen set aside from the training split): the split is made on every row first, so the
    holdout is the same with and without screening. Left-out rows are kept out of the fit and
    the reference profile; given ``left_out`` (even empty), the reference sample is drawn from
    the screened training rows only, never from the unscreened holdout.
    """
    started = time.perf_counter()
    if len(frame) < 10:
        raise InvalidInput(f"training needs at least 10 rows, got {len(frame)}")
    if not 0 < test_size < 1:
        raise InvalidInput("test_size must be between 0 and 1")
    schema = infer_schema(frame, target, task=task, categorical=categorical, nullable=nullable)
    choices = ESTIMATORS[schema.task]
    name = estimator or choices[0]
    if name not in choices:
        raise InvalidInput(
            f"unknown estimator {echo(name)} for {schema.task}; choose one of: {', '.join(choices)}"
        )
    features = prepare_features(frame, schema)
    y = frame[target].to_numpy()
    train_rows, test_rows = split_positions(y, schema.task, target=target, test_size=test_size, seed=seed)
    dropped = np.isin(np.arange(len(frame)), np.asarray(left_out or [], dtype=np.int64))
    train_rows = train_rows[~dropped[train_rows]]
    x_train, x_test, y_train, y_test = features.iloc[train_rows], features.iloc[test_rows], y[train_rows], y[test_rows]
    x_fit, y_fit = x_train, y_train
    if training_only is not None and len(training_only):
        x_fit = pd.concat([x_train, prepare_features(training_only, schema)], ignore_index=True)
        y_fit = np.concatenate([y_train, training_only[target].to_numpy()])
    model = _estimators()[schema.task][name](seed)
    if estimator_params:
        try:
            model.set_params(**dict(estimator_params))
        except ValueError as exc:
            raise InvalidInput(f"bad estimator parameters for {name}: {exc}") from exc
    pipeline = build_pipeline(schema, model)
    pipeline.fit(x_fit, y_fit)
    metrics = holdout_metrics(pipeline, x_test, y_test, schema.task)
    if schema.task == "classification":
        classes = tuple(c.item() if hasattr(c, "item") else c for c in pipeline.classes_)
        schema = FeatureSchema(
            features=schema.features, target=schema.target, task=schema.task, classes=classes
        )
    reference_profile = None
    if profile:
        from loopwatch.drift.profile import build_profile

        outputs = model_outputs(pipeline, x_test, schema)
        reference_profile = build_profile(
            features[~dropped].reset_index(drop=True),
            numeric=schema.numeric,
            categorical=schema.categorical,
            outputs=outputs,
            seed=seed,
        )
        reference_profile.performance = performance_reference(outputs, x_test, y_test, schema, seed=seed)
        from loopwatch.detectors.adversarial_runtime import fit_for_model

        # kept in the profile: built from the same split, stored and verified with it
        reference_profile.adversarial = fit_for_model(
            pipeline, x_train, x_test, numeric=schema.numeric, categorical=schema.categorical, seed=seed
        )
    rng = np.random.default_rng(seed)
    trusted = np.flatnonzero(~dropped) if left_out is None else np.sort(train_rows)
    keep = min(trusted.size, REFERENCE_SAMPLE_ROWS)
    sample_index = trusted if keep == trusted.size else np.sort(rng.choice(trusted, size=keep, replace=False))
    reference = frame.iloc[sample_index].reset_index(drop=True)
    duration_ms = (time.perf_counter() - started) * 1000
    return TrainedModel(
        pipeline=pipeline,
        schema=schema,
        estimator=name,
        metrics=metrics,
        data_summary=summarize_training_data(frame, schema, n_train=len(x_fit), n_test=len(x_test)),
        params={
            "estimator": name,
            "test_size": test_size,
            "seed": seed,
            "estimator_params": dict(estimator_params or {}),
        },
        reference_sample=reference,
        duration_ms=duration_ms,
        profile=reference_profile,
    )


def split_positions(
    y: np.ndarray, task: Task, *, target: str, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training rows and of the holdout rows: a seeded split, stratified by class
    when every class has two rows. Screening splits with it too, so that it screens the training
    rows only and the holdout is the same whether or not rows were set aside."""
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classification":
        _, counts = np.unique(y.astype(str), return_counts=True)
        if len(counts) < 2:
            raise InvalidInput(f"target {echo(target)} has a single class; classification needs two")
        if counts.min() >= 2:
            stratify = y
    train_rows, test_rows = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed,
                                             stratify=stratify)
    return np.asarray(train_rows, dtype=np.int64), np.asarray(test_rows, dtype=np.int64)


def model_outputs(pipeline: Any, x: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The model's outputs as monitoring sees them: ``prediction``, and for
    classifiers ``probability_<class>`` per class."""
    if schema.task == "classification" and hasattr(pipeline, "predict_proba"):
        proba = np.asarray(pipeline.predict_proba(x))
        labels = list(pipeline.classes_)
        out: dict[str, list[str] | np.ndarray] = {"prediction": [str(labels[i]) for i in proba.argmax(axis=1)]}
        for i, label in enumerate(labels):
            out[f"probability_{label}"] = proba[:, i].astype(np.float64)
        return pd.DataFrame(out)
    return pd.DataFrame({"prediction": np.asarray(pipeline.predict(x), dtype=np.float64)})


def performance_reference(
    outputs: pd.DataFrame, x: pd.DataFrame, y: np.ndarray, schema: FeatureSchema, *, seed: int
) -> Any:
    """What performance estimation needs of the holdout, from outputs already computed (no model call)."""
    from loopwatch.performance.reference import classifier_reference, regressor_reference

    if schema.task == "regression":
        return regressor_reference(y, outputs["prediction"].to_numpy(), X=x.reset_index(drop=True), seed=seed)
    columns = [f"probability_{label}" for label in schema.classes]
    if not set(columns) <= set(outputs.columns):  # a classifier without probabilities
        return None
    return classifier_reference(y, outputs[columns].to_numpy(), classes=schema.classes,
                                X=x.reset_index(drop=True), seed=seed)


def holdout_metrics(pipeline: Any, x: pd.DataFrame, y: np.ndarray, task: Task) -> dict[str, float]:
    from sklearn import metrics as m

    prediction = pipeline.predict(x)
    if task == "regression":
        return {
            "mae": float(m.mean_absolute_error(y, prediction)),
            "rmse": float(np.sqrt(m.mean_squared_error(y, prediction))),
            "r2": float(m.r2_score(y, prediction)),
            "n_holdout": float(len(y)),
        }
    out = {
        "accuracy": float(m.accuracy_score(y, prediction)),
        "f1_macro": float(m.f1_score(y, prediction, average="macro")),
        "n_holdout": float(len(y)),
    }
    if hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(x)
        labels = list(pipeline.classes_)
        out["log_loss"] = float(m.log_loss(y, proba, labels=labels))
        if len(set(y.tolist())) == len(labels):
            if len(labels) == 2:
                out["roc_auc"] = float(m.roc_auc_score(y, proba[:, 1]))
            else:
                out["roc_auc"] = float(m.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    return out


def summarize_training_data(
    frame: pd.DataFrame, schema: FeatureSchema, *, n_train: int, n_test: int
) -> dict[str, Any]:
    target = frame[schema.target]
    summary: dict[str, Any] = {
        "shape": [int(frame.shape[0]), len(schema.features)],
        "n_train": n_train,
        "n_holdout": n_test,
        "features": {f.name: f.to_dict() for f in schema.features},
    }
    if schema.task == "classification":
        counts = target.astype(str).value_counts()
        summary["target"] = {"kind": "classes", "counts": {str(k): int(v) for k, v in counts.items()}}
    else:
        values = target.to_numpy(dtype=float)
        summary["target"] = {
            "kind": "numeric",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return summary
