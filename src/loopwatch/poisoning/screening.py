"""Screen training rows before a model learns from them: the poisoning screens' front door.

Retraining on production data closes a loop through the outside world: whoever
can send predictions and labels can shape the next model. Every training from a
table and every retrain (:mod:`loopwatch.application.training`,
:mod:`loopwatch.application.retraining`) therefore calls :func:`screen_training_data`
and reports what it set aside.

First the cheap checks whose verdict is certain:

- ``label_missing``: the label is null;
- ``label_not_a_class``: a classifier's label is not one of the model's classes
  (labels are matched by their text, so ``"1"`` is the class ``1``);
- ``label_not_finite``: a regression target that is not a finite number;
- ``schema``: a feature value the model's schema refuses (a missing column, a
  string where a number belongs, a non-finite number, a null in a feature that
  is not nullable).

Then, on the rows that pass them and given a schema, the poisoning screens
(:mod:`loopwatch.poisoning.compose`; each at a stated false-positive rate on clean
data): ``label_flip``, ``far_from_reference`` (reading ``reference``, the
serving version's trusted training sample), ``source:<id>`` (reading
``sources``, who supplied each row's label, and ``predictions``, the model's
prediction of each row) and ``backdoor:<pattern>``. Each screen that ran
appends its name to ``screened_by``; one that could not run (too few rows, no
reference, a single source) says why in ``skipped``. A row set aside by a
poisoning screen alone may be released (:mod:`loopwatch.application.quarantine`); a row
failing a certain check never trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.schema import FeatureSchema, category_label
from loopwatch.poisoning.compose import POISONING_SCREENS, ScreenSettings, flagged_rows, run_screens

__all__ = ["ALL_SCREENS", "SCREENS", "ScreenSettings", "ScreeningResult", "screen_training_data"]

#: The certain checks, in the order they run; the poisoning screens follow.
SCREENS = ("labels", "schema")
#: Every screen, in the order they run.
ALL_SCREENS = SCREENS + POISONING_SCREENS


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
    #: What each poisoning screen found (threshold, rate, flagged count, evidence).
    screens: list[dict[str, Any]] = field(default_factory=list)
    #: Poisoning screens that did not run, and why.
    skipped: dict[str, str] = field(default_factory=dict)

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
            "screens": list(self.screens),
            "skipped": dict(self.skipped),
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
    predictions: Sequence[Any] | None = None,
    settings: ScreenSettings | None = None,
) -> ScreeningResult:
    """Which rows of ``frame`` may be trained on, and why the others may not.

    ``schema`` is the serving version's feature schema (its classes, its task
    and its features); without one, the classes are those of ``reference``'s
    ``label_column``, features are not checked and the poisoning screens do
    not run. ``sources`` and ``predictions`` (one per row, ``None`` allowed)
    feed the source screen; without predictions it compares the labels with
    cross-validated ones. ``settings`` tunes the poisoning screens
    (``ScreenSettings(screens=())`` turns them off).
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput("training data must be a table")
    if label_column not in frame.columns:
        raise InvalidInput(f"the label column {echo(label_column)} is not in the training data")
    if sources is not None and len(sources) != len(frame):
        raise InvalidInput(f"sources has {len(sources)} entries for {len(frame)} rows")
    if predictions is not None and len(predictions) != len(frame):
        raise InvalidInput(f"predictions has {len(predictions)} entries for {len(frame)} rows")
    problems: list[list[str]] = [[] for _ in range(len(frame))]
    task = schema.task if schema is not None else None
    classes: tuple[Any, ...] = schema.classes if schema is not None else ()
    if schema is None and reference is not None and label_column in reference.columns:
        classes = tuple(pd.unique(reference[label_column].dropna()))
        task = "classification" if classes and not _numeric_target(reference[label_column]) else task
    labels = _check_labels(frame[label_column], task, classes, problems)
    screened_by = list(SCREENS if schema is not None else SCREENS[:1])
    screens: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if schema is not None:
        _check_features(frame, schema, problems)
        rows = np.array([i for i, p in enumerate(problems) if not p], dtype=np.int64)
        run = _poisoning(frame, rows, schema, labels, reference, sources, predictions, settings)
        flagged, why = flagged_rows(run, rows.size)
        for j in np.flatnonzero(flagged):
            problems[int(rows[j])].extend(why[j])
        screened_by += [result.name for result in run.results]
        screens, skipped = [result.to_dict() for result in run.results], dict(run.skipped)
    kept = np.array([not p for p in problems], dtype=bool)
    quarantined = [(index, p) for index, p in zip(frame.index, problems) if p]
    return ScreeningResult(
        kept=kept, quarantined=quarantined, screened_by=screened_by, labels=labels, screens=screens,
        skipped=skipped,
    )


def _poisoning(
    frame: pd.DataFrame, rows: np.ndarray, schema: FeatureSchema, labels: pd.Series | None,
    reference: pd.DataFrame | None, sources: Sequence[Any] | None, predictions: Sequence[Any] | None,
    settings: ScreenSettings | None,
) -> Any:
    from loopwatch.models.training import prepare_features

    features = prepare_features(frame.iloc[rows], schema)
    trusted = prepare_features(reference.reindex(columns=schema.names), schema) if reference is not None else None
    row_labels = None if labels is None else labels.iloc[rows].tolist()
    reference_labels = None
    if reference is not None and schema.target in reference.columns and reference[schema.target].notna().all():
        reference_labels = reference[schema.target].tolist()
    return run_screens(
        features, row_labels, numeric=schema.numeric, categorical=schema.categorical,
        classification=schema.task == "classification", reference=trusted, reference_labels=reference_labels,
        sources_of_rows=None if sources is None else [sources[i] for i in rows],
        predictions=None if predictions is None else [predictions[i] for i in rows], settings=settings,
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
        column = frame[feature.name]
        fast = _typed_check(column, feature.kind, feature.nullable)
        if fast is not None:  # a typed column: checked whole, as the loop below would
            for failed in np.flatnonzero(~fast):
                problems[int(failed)].append(f"schema:{feature.name}")
            continue
        for i, value in enumerate(column.tolist()):
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


def _typed_check(column: pd.Series, kind: str, nullable: bool) -> np.ndarray | None:
    """Which values of a numeric- or integer-typed column pass (``None``: check value by value)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return None if kind == "numeric" else np.ones(len(column), dtype=bool)
    if pd.api.types.is_integer_dtype(column.dtype) and not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        return np.ones(len(column), dtype=bool)
    if pd.api.types.is_float_dtype(column.dtype) and not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        values = column.to_numpy(dtype=np.float64)
        missing, finite = np.isnan(values), np.isfinite(values)
        whole = np.zeros(values.size, dtype=bool)
        whole[finite] = np.mod(values[finite], 1.0) == 0.0
        ok = finite if kind == "numeric" else whole
        passed: np.ndarray = ok | (missing & nullable)
        return passed
    return None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
