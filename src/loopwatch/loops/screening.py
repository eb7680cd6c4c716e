"""Screen training rows before a retrain: the hook every retraining goes through.

Retraining on production data closes a loop through the outside world: whoever
can send predictions and labels can shape the next model. Every retrain
therefore calls :func:`screen_training_data` and reports what it set aside.

Today it applies only cheap checks whose verdict is certain:

- ``label_missing``: the label is null;
- ``label_not_a_class``: a classifier's label is not one of the model's classes
  (labels are matched by their text, so ``"1"`` is the class ``1``);
- ``label_not_finite``: a regression target that is not a finite number;
- ``schema``: a feature value the model's schema refuses (a missing column, a
  string where a number belongs, a non-finite number, a null in a feature that
  is not nullable).

The security work (issue: poisoning) adds its screens here, reading
``reference`` (the current version's training sample) and ``sources`` (who
supplied each row's label); each screen appends its name to ``screened_by``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput
from loopwatch.features.schema import FeatureSchema, category_label

#: The checks this module applies, in the order they run.
SCREENS = ("labels", "schema")


@dataclass(frozen=True, kw_only=True)
class ScreeningResult:
    #: One flag per input row, in order: True when the row may be trained on.
    kept: np.ndarray
    #: (index label, reasons) of every row set aside.
    quarantined: list[tuple[Any, list[str]]] = field(default_factory=list)
    #: The screens that ran.
    screened_by: list[str] = field(default_factory=list)
    #: Labels as the model's class values (classification), aligned with the rows.
    labels: pd.Series | None = None

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    def to_dict(self, *, max_rows: int = 100) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _, why in self.quarantined:
            for reason in why:
                reasons[reason] = reasons.get(reason, 0) + 1
        return {
            "n_rows": int(self.kept.size),
            "n_kept": self.n_kept,
            "n_quarantined": len(self.quarantined),
            "reasons": reasons,
            "screened_by": list(self.screened_by),
            "quarantined": [
                {"index": _plain(index), "reasons": why} for index, why in self.quarantined[:max_rows]
            ],
        }


def screen_training_data(
    frame: pd.DataFrame,
    *,
    label_column: str,
    schema: FeatureSchema | None = None,
    reference: pd.DataFrame | None = None,
    sources: Sequence[Any] | None = None,
) -> ScreeningResult:
    """Which rows of ``frame`` may be trained on, and why the others may not.

    ``schema`` is the serving version's feature schema (its classes, its task
    and its features); without one, the classes are those of ``reference``'s
    ``label_column`` and features are not checked. ``sources`` (one per row)
    is accepted for the poisoning screens to come.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput("training data must be a table")
    if label_column not in frame.columns:
        raise InvalidInput(f"the label column {label_column!r} is not in the training data")
    if sources is not None and len(sources) != len(frame):
        raise InvalidInput(f"sources has {len(sources)} entries for {len(frame)} rows")
    problems: list[list[str]] = [[] for _ in range(len(frame))]
    task = schema.task if schema is not None else None
    classes: tuple[Any, ...] = schema.classes if schema is not None else ()
    if schema is None and reference is not None and label_column in reference.columns:
        classes = tuple(pd.unique(reference[label_column].dropna()))
        task = "classification" if classes and not _numeric_target(reference[label_column]) else task
    labels = _check_labels(frame[label_column], task, classes, problems)
    if schema is not None:
        _check_features(frame, schema, problems)
    kept = np.array([not p for p in problems], dtype=bool)
    quarantined = [(index, p) for index, p in zip(frame.index, problems) if p]
    return ScreeningResult(
        kept=kept, quarantined=quarantined, screened_by=list(SCREENS if schema is not None else SCREENS[:1]),
        labels=labels,
    )


def _numeric_target(column: pd.Series) -> bool:
    from loopwatch.features.schema import infer_task

    return infer_task(column.dropna()) == "regression"


def _check_labels(
    column: pd.Series, task: str | None, classes: tuple[Any, ...], problems: list[list[str]]
) -> pd.Series | None:
    by_text = {category_label(c): c for c in classes}
    mapped: list[Any] = []
    for i, value in enumerate(column.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            problems[i].append("label_missing")
            mapped.append(None)
        elif task == "regression":
            number = _finite_number(value)
            if number is None:
                problems[i].append("label_not_finite")
            mapped.append(number)
        elif by_text:
            key = category_label(value) if isinstance(value, (str, int, float, bool, np.generic)) else None
            if key is None or key not in by_text:
                problems[i].append("label_not_a_class")
                mapped.append(None)
            else:
                mapped.append(by_text[key])
        else:
            mapped.append(value)
    return pd.Series(mapped, index=column.index, dtype=object)


def _finite_number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_features(frame: pd.DataFrame, schema: FeatureSchema, problems: list[list[str]]) -> None:
    for feature in schema.features:
        if feature.name not in frame.columns:
            for p in problems:
                p.append(f"schema:{feature.name}:missing")
            continue
        for i, value in enumerate(frame[feature.name].tolist()):
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            if missing:
                ok = feature.nullable
            elif feature.kind == "numeric":
                ok = _finite_number(value) is not None
            else:
                ok = isinstance(value, (str, bool, np.bool_, int, np.integer)) or (
                    isinstance(value, float) and value.is_integer()
                )
            if not ok:
                problems[i].append(f"schema:{feature.name}")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
