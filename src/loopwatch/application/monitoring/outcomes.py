"""What a window's outcomes are worth and how they are distributed: business value (realized and
expected), target drift of the labels, and realized performance per segment."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import LoopwatchError
from loopwatch.loops.monitoring_config import MonitoringConfig

#: Least labelled rows of a segment before its realized metric is reported.
MIN_SEGMENT_LABELS = 100


def window_value(context: Any, rows: pd.DataFrame, labelled: pd.DataFrame, config: MonitoringConfig) -> dict[str, Any]:
    """The business value of a window's predictions: expected from the probabilities (known at
    once) and realized on the labelled rows (known when labels arrive)."""
    out: dict[str, Any] = {}
    task = context.version.task
    try:
        if task == "classification" and config.value_matrix is not None:
            from loopwatch.feedback.value import ValueMatrix, classification_value, expected_classification_value

            matrix = ValueMatrix(values=config.value_matrix)
            proba = context.probabilities(rows)
            if proba is not None:
                out["expected"] = expected_classification_value(
                    proba, rows["prediction"].to_numpy(), matrix, classes=context.classes
                ).to_dict()
            if len(labelled):
                out["realized"] = classification_value(
                    labelled["label"].to_numpy(), labelled["prediction"].to_numpy(), matrix,
                    classes=context.classes, n_boot=100, seed=0,
                ).to_dict()
        elif task == "regression" and config.cost_function is not None and len(labelled):
            from loopwatch.feedback.value import CostFunction, regression_cost

            cost = CostFunction(**config.cost_function)
            out["realized"] = regression_cost(
                labelled["label"].to_numpy(dtype=np.float64), labelled["prediction"].to_numpy(dtype=np.float64),
                cost, n_boot=100, seed=0,
            ).to_dict()
    except Exception as exc:  # a value matrix that does not fit the classes is reported, not fatal
        out["error"] = str(exc)[:300]
    return out


def target_drift_of(context: Any, labelled: pd.DataFrame, config: MonitoringConfig) -> dict[str, Any] | None:
    """Whether the window's labels are distributed like the holdout's."""
    reference = context.reference
    if reference is None or len(labelled) < config.min_labels:
        return None
    from loopwatch.performance.concept import target_drift

    try:
        current = labelled["label"].to_numpy()
        if context.version.task == "classification":
            names = {str(c): c for c in context.classes}
            current = np.asarray([names.get(str(v), v) for v in current], dtype=object)
        result = target_drift(reference.y_true, current, task=context.version.task, alpha=config.drift_alpha)
    except (LoopwatchError, ValueError, TypeError) as exc:
        # labels of the wrong kind make the test meaningless, not the evaluation fail: the
        # window says why it has no target-drift test
        return {"unmeasured": f"the labels could not be compared with the holdout's: {str(exc)[:200]}"}
    return result.to_dict()


def segment_performance(
    context: Any, labelled: pd.DataFrame, segment: str | None, realized: Any
) -> dict[str, Any]:
    """Realized performance per value of the segment feature, with intervals."""
    if segment is None or segment not in labelled.columns:
        return {}
    from loopwatch.performance.unmeasured import unrealized

    out: dict[str, Any] = {}
    missing: dict[str, Any] = {}
    for value, rows in labelled.groupby(labelled[segment].astype(str), sort=True):
        found = realized(context, rows) if len(rows) >= MIN_SEGMENT_LABELS else None
        if found is not None:
            out[str(value)] = found
        else:  # a segment without a value says why (most often: too few labels yet)
            missing[str(value)] = unrealized(
                metric=context.metric, labels=rows["label"].tolist(), min_labels=MIN_SEGMENT_LABELS,
                classification=context.version.task == "classification",
            ).to_dict()
    if not out:
        return {}
    return {"feature": segment, "metric": context.metric, "values": out, "missing": missing}


def window_value_of_sums(context: Any, sums: Any, config: MonitoringConfig) -> dict[str, Any]:
    """:func:`window_value` from a window's label sums (``LabelSums``): a classifier's realized
    value is exact from its confusion counts, with the row path's bootstrap (it resamples the
    counts). The expected value needs each prediction's probabilities and a regressor's cost
    each error: from sums they are not measured (``performance.not_measured``)."""
    if context.version.task != "classification" or config.value_matrix is None or sums is None or sums.n == 0:
        return {}
    from loopwatch.feedback.value import ValueMatrix, classification_value_of_counts
    from loopwatch.summaries.label_intervals import confusion_matrix

    try:
        k = len(context.classes)
        counts = confusion_matrix(sums, n_classes=k)
        if counts.shape != (k, k):
            raise ValueError(f"the labels hold {len(counts)} classes, the model {k}")
        value = classification_value_of_counts(counts, ValueMatrix(values=config.value_matrix),
                                               classes=context.classes, n_boot=100, seed=0)
    except Exception as exc:  # as on rows: a value matrix that does not fit the classes is reported
        return {"error": str(exc)[:300]}
    return {"realized": value.to_dict()}


def target_drift_of_sums(context: Any, sums: Any, config: MonitoringConfig) -> dict[str, Any] | None:
    """:func:`target_drift_of` from a window's label sums: a classifier's labels are its confusion
    counts per true class, so the chi-square test is the rows'. A regressor's KS test needs the
    labels themselves: ``None`` (not measured from sums)."""
    reference = context.reference
    if reference is None or sums is None or sums.n < config.min_labels or context.version.task != "classification":
        return None
    from loopwatch.performance.concept import class_target_drift

    per_class: dict[int, int] = {}
    for (true, _), n in sums.confusion.items():
        per_class[true] = per_class.get(true, 0) + n
    try:
        counts = {context.classes[i]: n for i, n in per_class.items()}
        result = class_target_drift(reference.y_true, counts, alpha=config.drift_alpha)
    except (LoopwatchError, ValueError, TypeError, IndexError) as exc:
        return {"unmeasured": f"the labels could not be compared with the holdout's: {str(exc)[:200]}"}
    return result.to_dict()
