"""Versions of models loopwatch did not train: fitted elsewhere, or served elsewhere.

A team arrives with a fitted estimator or pipeline of its own (any scikit-learn
compatible object: XGBoost, LightGBM, its own transformers) or only with the
predictions its own service makes. Either way the version is built from the team's
reference table (and holdout when it has one) with the same pieces a trained version
uses: the schema inferred from the table, the reference profile
(:func:`~loopwatch.drift.profile.build_profile`), the label-free estimator's reference
(:func:`~loopwatch.models.training.performance_reference`), the evasion detector
(:func:`~loopwatch.detectors.adversarial_runtime.fit_for_model`) and the reference
sample that the poisoning screens compare new rows with.

What needs labels is built only when the table has them; what needs the model itself
is built only when there is one. Each part left out is named, with its reason, in the
version's ``params["not_applicable"]``, which ``models show`` prints.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo, listed
from loopwatch.features.schema import FeatureSchema, Task, category_label, infer_schema
from loopwatch.models.training import (
    REFERENCE_SAMPLE_ROWS,
    TrainedModel,
    holdout_metrics,
    model_outputs,
    performance_reference,
    prepare_features,
    summarize_training_data,
)

#: The estimator name recorded for a version that has no model of its own.
MONITOR_ONLY = "monitor-only"
#: Rows whose probabilities sum further than this from 1 are refused.
PROBABILITY_SUM_TOLERANCE = 1e-3
NO_LABELS = "the reference has no target column: nothing to calibrate or measure against"
NO_MODEL = "monitor-only: loopwatch does not have the model"


def fitted_version(
    estimator: Any,
    reference: pd.DataFrame,
    *,
    target: str | None,
    holdout: pd.DataFrame | None = None,
    task: Task | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
    exclude: Sequence[str] = (),
    trusted_types: Sequence[str] = (),
    seed: int = 0,
) -> TrainedModel:
    """A version of ``estimator``, fitted elsewhere, described by ``reference`` (its features
    and, under ``target``, labels) and measured on ``holdout`` when given (else on the reference,
    which flatters it when the reference is its training data)."""
    started = time.perf_counter()
    if not hasattr(estimator, "predict"):
        raise InvalidInput(f"a {type(estimator).__name__} has no predict method: not a fitted estimator")
    chosen: Task = task or ("classification" if hasattr(estimator, "classes_") else "regression")
    classes = tuple(_plain(c) for c in getattr(estimator, "classes_", ())) if chosen == "classification" else ()
    schema = _schema(reference, target=target, task=chosen, classes=classes, categorical=categorical,
                     nullable=nullable, exclude=exclude)
    labelled = target is not None
    features = prepare_features(reference, schema)
    scored = holdout if holdout is not None else reference
    if holdout is not None:
        _require_columns(holdout, [*schema.names, *([target] if target is not None else [])], "holdout")
    x_scored = prepare_features(scored, schema)
    try:
        with np.errstate(over="ignore"):
            outputs = model_outputs(estimator, x_scored, schema)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"the model cannot score the reference's features: {str(exc)[:300]}") from exc
    not_applicable: dict[str, str] = {}
    metrics: dict[str, float] = {}
    known = _known(scored, target)
    y = scored[target].to_numpy()[known] if labelled else None
    if y is not None:
        metrics = holdout_metrics(estimator, x_scored[known], y, schema.task)
    else:
        not_applicable["metrics"] = not_applicable["performance_estimation"] = NO_LABELS
    profile = _profile(features, schema, outputs, x_scored, y, known, seed=seed, not_applicable=not_applicable)
    from loopwatch.detectors.adversarial_runtime import fit_for_model

    try:
        profile.adversarial = fit_for_model(
            estimator, features, x_scored, numeric=schema.numeric, categorical=schema.categorical, seed=seed)
    except (ValueError, TypeError, AttributeError) as exc:
        # a model the probes cannot drive (no predict_proba, a wrapper refusing perturbed rows) is
        # still served and monitored; only its evasion scores are missing, and that is recorded
        profile.adversarial = None
        not_applicable["evasion"] = f"the evasion detector could not be fitted: {str(exc)[:200]}"
    if profile.adversarial is None and "evasion" not in not_applicable:
        not_applicable["evasion"] = "too few rows to calibrate the evasion detector"
    estimator_type = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    params = {
        "registered": True,
        "monitor_only": False,
        "estimator_type": estimator_type,
        "trusted_types": sorted(trusted_types),
        "outputs_from": "holdout" if holdout is not None else "reference",
        "seed": seed,
        "not_applicable": not_applicable,
    }
    return _version(reference, schema, scored_rows=len(scored), labelled=labelled, estimator=estimator,
                    name=estimator_type, metrics=metrics, params=params, profile=profile,
                    started=started, seed=seed)


def monitor_only_version(
    reference: pd.DataFrame,
    *,
    prediction_column: str,
    target: str | None = None,
    probability_columns: Sequence[str] = (),
    probability_prefix: str | None = None,
    classes: Sequence[Any] = (),
    task: Task | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
    exclude: Sequence[str] = (),
    seed: int = 0,
) -> TrainedModel:
    """A version with no model: ``reference`` holds the features the external model saw, the
    predictions it made (``prediction_column``), for a classifier its class probabilities
    (``probability_columns`` in the order of ``classes``, or every column named
    ``<probability_prefix><class>``) and, under ``target``, labels where known."""
    started = time.perf_counter()
    if probability_columns and probability_prefix:
        raise InvalidInput("name the probability columns or their prefix, not both")
    if probability_prefix:
        probability_columns = [c for c in reference.columns if str(c).startswith(probability_prefix)]
        if not probability_columns:
            raise InvalidInput(f"no column of the reference starts with {echo(probability_prefix)}")
        classes = classes or [str(c)[len(probability_prefix):] for c in probability_columns]
    _require_columns(reference, [prediction_column, *probability_columns], "reference")
    chosen: Task = task or ("classification" if probability_columns or classes else
                            _task_of(reference[prediction_column]))
    labelled = target is not None
    if chosen == "classification":
        classes = _classes(reference, prediction_column, target, classes)
        if probability_columns and len(probability_columns) != len(classes):
            raise InvalidInput(f"{len(probability_columns)} probability columns for {len(classes)} classes")
        if not probability_columns:
            _refuse_unnamed_probabilities(reference, classes, exclude=[prediction_column, target, *exclude])
    outputs = _outputs(reference, chosen, prediction_column, probability_columns, tuple(classes))
    schema = _schema(reference, target=target, task=chosen, classes=tuple(classes), categorical=categorical,
                     nullable=nullable, exclude=[*exclude, prediction_column, *probability_columns])
    features = prepare_features(reference, schema)
    not_applicable = {"evasion": NO_MODEL, "shadow": NO_MODEL, "retraining": NO_MODEL, "gate": NO_MODEL}
    metrics: dict[str, float] = {}
    known = _known(reference, target)
    y = reference[target].to_numpy()[known] if labelled else None
    if y is None:
        not_applicable["metrics"] = not_applicable["performance_estimation"] = NO_LABELS
    else:
        metrics = _metrics_of_outputs(outputs[known].reset_index(drop=True), y, schema)
    profile = _profile(features, schema, outputs, features, y, known, seed=seed, not_applicable=not_applicable)
    params = {
        "registered": True,
        "monitor_only": True,
        "trusted_types": [],
        "prediction_column": prediction_column,
        "probability_columns": list(probability_columns),
        "outputs_from": "reference",
        "seed": seed,
        "not_applicable": not_applicable,
    }
    return _version(reference, schema, scored_rows=len(reference), labelled=labelled, estimator=None,
                    name=MONITOR_ONLY, metrics=metrics, params=params, profile=profile, started=started, seed=seed)


def _refuse_unnamed_probabilities(reference: pd.DataFrame, classes: Sequence[Any], *,
                                  exclude: Sequence[str | None]) -> None:
    """Refuse a reference whose columns ``<prefix><class>`` hold a probability per class
    (each row's sum is 1) when no probability option named them: taken as features they
    would be monitored as inputs, and the label-free estimators would go without them."""
    if len(classes) < 2:
        return
    labels = [str(c) for c in classes]
    candidates = [str(c) for c in reference.columns if c not in exclude]
    prefixes = {name[: -len(labels[0])] for name in candidates if name.endswith(labels[0])}
    for prefix in sorted(prefixes):
        columns = [f"{prefix}{label}" for label in labels]
        if not all(c in candidates and pd.api.types.is_numeric_dtype(reference[c]) for c in columns):
            continue
        values = reference[columns].dropna().to_numpy(dtype=float)
        if len(values) and ((values >= 0) & (values <= 1)).all() and np.allclose(values.sum(axis=1), 1.0, atol=0.01):
            how = f"their prefix {echo(prefix)}" if prefix else "the columns"
            raise InvalidInput(
                f"columns {listed(columns)} look like the model's class probabilities (each row sums to 1): "
                f"name them as probabilities (by {how}: --probability-prefix or --probability-columns), "
                "or exclude them if they are not")


def _schema(reference: pd.DataFrame, *, target: str | None, task: Task, classes: tuple[Any, ...],
            categorical: Sequence[str], nullable: Sequence[str], exclude: Sequence[str]) -> FeatureSchema:
    """The features are the reference's columns less the target and ``exclude`` (ids, times,
    the external model's outputs). Without a target the schema records a placeholder name."""
    _require_columns(reference, list(exclude), "reference")
    frame = reference.drop(columns=list(dict.fromkeys(exclude)))
    if target is None:
        target = "label" if "label" not in frame.columns else "__label__"
        frame = frame.assign(**{target: 0})
    elif frame[target].isna().any():
        # labels "where known": the schema is the features', whatever the unlabelled rows' target
        known = frame[target].dropna()
        if known.empty:
            raise InvalidInput(f"target column {echo(target)} has no values; leave it out when there are no labels")
        frame = frame.assign(**{target: frame[target].fillna(known.iloc[0])})
    schema = infer_schema(frame, target, task=task, categorical=categorical, nullable=nullable)
    return FeatureSchema(features=schema.features, target=schema.target, task=task,
                         classes=(classes or schema.classes) if task == "classification" else ())


def _known(frame: pd.DataFrame, target: str | None) -> np.ndarray:
    """Which rows carry a label (all of them when there is no target: never read then)."""
    if target is None:
        return np.ones(len(frame), dtype=bool)
    known: np.ndarray = frame[target].notna().to_numpy()
    return known


def _profile(features: pd.DataFrame, schema: FeatureSchema, outputs: pd.DataFrame, x_scored: pd.DataFrame,
             y: np.ndarray | None, known: np.ndarray, *, seed: int, not_applicable: dict[str, str]) -> Any:
    """The reference profile; the label-free estimators are calibrated on the labelled rows only."""
    from loopwatch.drift.profile import build_profile

    profile = build_profile(features, numeric=schema.numeric, categorical=schema.categorical, outputs=outputs,
                            seed=seed)
    profile.performance = None
    if y is not None:
        profile.performance = performance_reference(
            outputs[known].reset_index(drop=True), x_scored[known].reset_index(drop=True), y, schema, seed=seed)
        if profile.performance is None:
            not_applicable["performance_estimation"] = "a classifier without class probabilities"
    return profile


def _version(reference: pd.DataFrame, schema: FeatureSchema, *, scored_rows: int, labelled: bool,
             estimator: Any, name: str, metrics: dict[str, float], params: dict[str, Any], profile: Any,
             started: float, seed: int) -> TrainedModel:
    rng = np.random.default_rng(seed)
    keep = min(len(reference), REFERENCE_SAMPLE_ROWS)
    sample = reference.iloc[np.sort(rng.choice(len(reference), size=keep, replace=False))]
    columns = [*schema.names, *([schema.target] if labelled else [])]
    if labelled:
        summary = summarize_training_data(reference, schema, n_train=len(reference), n_test=scored_rows)
    else:
        summary = {"shape": [int(len(reference)), len(schema.features)], "n_train": len(reference),
                   "n_holdout": scored_rows, "features": {f.name: f.to_dict() for f in schema.features},
                   "target": None}
    return TrainedModel(pipeline=estimator, schema=schema, estimator=name, metrics=metrics, data_summary=summary,
                        params=params, reference_sample=sample[columns].reset_index(drop=True),
                        duration_ms=(time.perf_counter() - started) * 1000, profile=profile)


def _outputs(reference: pd.DataFrame, task: Task, prediction_column: str, probability_columns: Sequence[str],
             classes: tuple[Any, ...]) -> pd.DataFrame:
    """The external model's outputs as :func:`~loopwatch.models.training.model_outputs` shapes a model's."""
    predictions = reference[prediction_column]
    if predictions.isna().any():
        raise InvalidInput(f"prediction column {echo(prediction_column)} has missing values")
    if task == "regression":
        try:
            values = predictions.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"prediction column {echo(prediction_column)} is not numeric") from exc
        if not np.all(np.isfinite(values)):
            raise InvalidInput(f"prediction column {echo(prediction_column)} has non-finite values")
        return pd.DataFrame({"prediction": values})
    known = {category_label(c) for c in classes}
    labels = [category_label(v) for v in predictions.tolist()]
    strange = sorted(set(labels) - known)
    if strange:
        raise InvalidInput(f"predictions name classes not among {sorted(known)}: {strange[:10]}")
    out: dict[str, Any] = {"prediction": labels}
    if probability_columns:
        try:
            proba = reference[list(probability_columns)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("probability columns must be numeric") from exc
        if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
            raise InvalidInput("probabilities must be finite numbers in [0, 1]")
        worst = float(np.abs(proba.sum(axis=1) - 1).max())
        if worst > PROBABILITY_SUM_TOLERANCE:
            raise InvalidInput(f"each row's probabilities must sum to 1 (one is off by {worst:.3g})")
        for i, label in enumerate(classes):
            out[f"probability_{label}"] = proba[:, i]
    return pd.DataFrame(out)


def _metrics_of_outputs(outputs: pd.DataFrame, y: np.ndarray, schema: FeatureSchema) -> dict[str, float]:
    """Holdout metrics of recorded outputs: what :func:`holdout_metrics` measures of a model."""
    from sklearn import metrics as m

    if schema.task == "regression":
        prediction = outputs["prediction"].to_numpy()
        return {"mae": float(m.mean_absolute_error(y, prediction)),
                "rmse": float(math.sqrt(m.mean_squared_error(y, prediction))),
                "r2": float(m.r2_score(y, prediction)), "n_holdout": float(len(y))}
    truth = [category_label(v) for v in y]
    return {"accuracy": float(m.accuracy_score(truth, outputs["prediction"])),
            "f1_macro": float(m.f1_score(truth, outputs["prediction"], average="macro")),
            "n_holdout": float(len(y))}


def _classes(reference: pd.DataFrame, prediction_column: str, target: str | None,
             named: Sequence[Any]) -> list[Any]:
    """Class labels in the typed form the labels have (``1``, not ``"1"``, for integer labels),
    in the order named (else sorted as the schema sorts them)."""
    seen = reference[prediction_column].tolist() + (reference[target].dropna().tolist() if target else [])
    typed = {category_label(v): _plain(v) for v in seen}
    if not named:
        return [typed[k] for k in sorted(typed, key=str)]
    return [typed.get(category_label(c), _plain(c)) for c in named]


def _task_of(predictions: pd.Series) -> Task:
    from loopwatch.features.schema import infer_task

    return infer_task(predictions)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"columns not in the {what}: {listed(missing, quote=True)}; its columns are: "
                           f"{listed(frame.columns, most=50)}")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
