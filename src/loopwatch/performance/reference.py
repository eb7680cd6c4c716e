"""What a model version keeps of its holdout so that its performance can be estimated later.

Built at training time from outputs the training already computed (no extra
model fit), stored inside the version's reference profile, and turned into a
fitted estimator only when a monitor needs one (:func:`fit_estimator`:
isotonic or sigmoid fits for a classifier, two gradient-boosted trees for a
regressor, a fraction of a second to a few seconds on a holdout of 20,000 rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import IntegrityError, InvalidInput, echo
from loopwatch.performance.estimation import ConfidenceBasedEstimator, DirectLossEstimator
from loopwatch.performance.inputs import InputEncoder
from loopwatch.performance.labels import check_classes, check_proba, check_values, encode_labels
from loopwatch.performance.realized import classification_metrics, regression_metrics

#: Most holdout rows kept (a seeded sample); holdout metrics are measured on all of them first.
MAX_ROWS = 20_000
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class PerformanceReference:
    """A model's holdout as performance estimation needs it.

    Classifiers: ``y_true`` labels, ``y_pred`` the served (most probable)
    labels, ``y_proba`` one column per class in ``classes`` order. Regressors:
    ``y_true`` and ``y_pred`` values. Both: ``X``, the holdout's feature table as
    the model takes it (a window's rows are passed to the fitted estimator
    the same way), a numeric matrix, or ``None`` (classifier references stored
    before they kept their inputs have none). A table is stored encoded
    (:class:`~loopwatch.performance.inputs.InputEncoder`: numbers, and category
    codes with the category names), which also caps each categorical
    column at its 250 most frequent categories.
    ``holdout_metrics`` are the realized metrics on the whole holdout
    (``n_holdout`` rows), under the names of
    :func:`~loopwatch.performance.realized.classification_metrics` and
    :func:`~loopwatch.performance.realized.regression_metrics`, so they
    compare with a window's directly (:func:`~loopwatch.performance.realized.overfitting_gap`).
    """

    task: str
    y_true: np.ndarray
    y_pred: np.ndarray
    classes: tuple[Any, ...] = ()
    y_proba: np.ndarray | None = None
    X: pd.DataFrame | np.ndarray | None = None
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    n_holdout: int = 0

    @property
    def n(self) -> int:
        """Rows kept (at most ``MAX_ROWS`` of the ``n_holdout``)."""
        return len(self.y_true)

    def to_payload(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready facts and numpy arrays, for a skops payload (labels stored as class indices)."""
        light = {
            "task": self.task,
            "classes": list(self.classes),
            "holdout_metrics": {k: (v if math.isfinite(v) else None) for k, v in self.holdout_metrics.items()},
            "n_holdout": self.n_holdout,
        }
        if self.task == "classification":
            arrays = {
                "y_true": encode_labels(self.y_true, self.classes, name="y_true"),
                "y_pred": encode_labels(self.y_pred, self.classes, name="y_pred"),
            }
        else:
            arrays = {"y_true": np.asarray(self.y_true, np.float64), "y_pred": np.asarray(self.y_pred, np.float64)}
        if self.y_proba is not None:
            arrays["y_proba"] = np.asarray(self.y_proba, np.float64)
        if isinstance(self.X, pd.DataFrame):
            encoder = InputEncoder.fit(self.X)
            light["inputs"] = encoder.to_dict()
            arrays["X"] = encoder.transform(self.X)
        elif self.X is not None:
            arrays["X"] = np.asarray(self.X, np.float64)
        return light, arrays

    @classmethod
    def from_payload(cls, light: dict[str, Any], arrays: dict[str, Any]) -> PerformanceReference:
        try:
            task = light["task"]
            classes = tuple(light["classes"])
            y_true, y_pred = np.asarray(arrays["y_true"]), np.asarray(arrays["y_pred"])
            if task == "classification":
                labels = np.asarray(classes, dtype=object)
                y_true, y_pred = labels[y_true.astype(np.int64)], labels[y_pred.astype(np.int64)]
            metrics = {k: (float("nan") if v is None else float(v)) for k, v in light["holdout_metrics"].items()}
            inputs = arrays.get("X")
            if inputs is not None:
                inputs = np.asarray(inputs, dtype=np.float64)
                if light.get("inputs") is not None:
                    inputs = InputEncoder.from_dict(light["inputs"]).inverse(inputs)
            return cls(
                task=task,
                y_true=y_true,
                y_pred=y_pred,
                classes=classes,
                y_proba=None if arrays.get("y_proba") is None else np.asarray(arrays["y_proba"]),
                X=inputs,
                holdout_metrics=metrics,
                n_holdout=int(light["n_holdout"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise IntegrityError("the stored performance reference is malformed") from exc


def _keep(n: int, max_rows: int, seed: int) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def classifier_reference(
    y_true: Any, y_proba: Any, *, classes: Sequence[Any], X: Any = None, max_rows: int = MAX_ROWS, seed: int = 0
) -> PerformanceReference:
    """A classifier's holdout: its true labels and probabilities (the served label is the most
    probable), and its inputs (a table, a numeric matrix or None), with which a two-class
    estimate measures its calibration segment by segment."""
    classes = check_classes(classes)
    truth = encode_labels(y_true, classes, name="y_true")
    proba = check_proba(y_proba, n=len(truth), k=len(classes))
    labels = np.asarray(classes, dtype=object)
    y_true_labels, y_pred_labels = labels[truth], labels[proba.argmax(axis=1)]
    metrics = classification_metrics(y_true_labels, y_pred_labels, proba, classes=classes, n_boot=0)
    keep = _keep(len(truth), max_rows, seed)
    return PerformanceReference(
        task="classification",
        y_true=y_true_labels[keep],
        y_pred=y_pred_labels[keep],
        classes=classes,
        y_proba=proba[keep],
        X=_kept_inputs(X, keep, len(truth)),
        holdout_metrics={name: m.value for name, m in metrics.items()},
        n_holdout=len(truth),
    )


def _kept_inputs(X: Any, keep: np.ndarray, n: int) -> pd.DataFrame | np.ndarray | None:
    if isinstance(X, pd.DataFrame):
        if len(X) != n:
            raise InvalidInput(f"X has {len(X)} rows, y_true {n}")
        return X.iloc[keep].reset_index(drop=True)
    if X is None:
        return None
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or len(matrix) != n:
        raise InvalidInput(f"X must be a matrix of {n} rows, got shape {matrix.shape}")
    return matrix[keep]


def regressor_reference(
    y_true: Any, y_pred: Any, *, X: Any = None, max_rows: int = MAX_ROWS, seed: int = 0
) -> PerformanceReference:
    """A regressor's holdout: true values, predictions and inputs (a table, a numeric matrix or None)."""
    truth = check_values(y_true, name="y_true")
    predicted = check_values(y_pred, name="y_pred", n=len(truth))
    metrics = regression_metrics(truth, predicted, n_boot=0)
    keep = _keep(len(truth), max_rows, seed)
    return PerformanceReference(
        task="regression",
        y_true=truth[keep],
        y_pred=predicted[keep],
        X=_kept_inputs(X, keep, len(truth)),
        holdout_metrics={name: m.value for name, m in metrics.items()},
        n_holdout=len(truth),
    )


def performance_reference_of(profile: Any) -> PerformanceReference | None:
    """The performance reference a reference profile holds; ``None`` for profiles built without one
    (versions trained before loopwatch kept one)."""
    reference = getattr(profile, "performance", None)
    return reference if isinstance(reference, PerformanceReference) else None


def fit_estimator(
    reference: PerformanceReference,
    *,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
    seed: int = 0,
) -> ConfidenceBasedEstimator | DirectLossEstimator:
    """A CBPE (classifiers) or DLE (regressors) fitted on the stored holdout.

    ``task`` and ``classes`` default to the reference's own; when given they
    must agree with it (a guard against pairing a profile with the wrong model).
    """
    if task is not None and task != reference.task:
        raise InvalidInput(f"the reference is of a {reference.task} model, not {task}")
    if reference.task == "classification":
        if classes is not None and check_classes(classes) != reference.classes:
            raise InvalidInput(f"the reference's classes are {echo(list(reference.classes))}, not {echo(list(classes))}")
        if reference.y_proba is None:
            raise InvalidInput("the reference holds no probabilities: a confidence-based estimate needs them")
        estimator = ConfidenceBasedEstimator(classes=reference.classes, positive=positive, seed=seed)
        return estimator.fit(reference.y_proba, reference.y_true, X_reference=reference.X)
    if reference.task == "regression":
        return DirectLossEstimator(seed=seed).fit(reference.X, reference.y_pred, reference.y_true)
    raise InvalidInput(f"unknown task {echo(reference.task)}; expected one of {TASKS}")
