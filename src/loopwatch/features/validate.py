"""Validate predict rows against a feature schema, strictly.

No silent coercion of numbers: a string is never read as a number, a boolean is
never a number, and non-finite numbers are refused. A categorical feature takes
what its recorded type allows and is known by its label from here on
(:func:`~loopwatch.features.schema.category_label`): integer codes as JSON
integers, integral floats (``3.0``, what a CSV with nulls gives) or the label
``"3"``; boolean flags as booleans or ``"true"``/``"false"``; any category as
its label string, and a number or a boolean whose label is one of a string
column's categories.

A null is accepted for a feature the schema declares nullable (training saw it
missing), for one the model's settings declare nullable, and for one the
model's pipeline fills in itself (``imputes``: loopwatch's own pipelines impute
numbers with the training median and encode a missing category as no category);
the event counts it as missing, and the monitor reports nulls in a feature that
neither the schema nor the settings declare. Elsewhere a null is refused. Every
problem found is reported, up to a limit, with its row and feature, so a client
can fix the whole request at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import PayloadTooLarge, SchemaViolation, echo
from loopwatch.features.schema import Feature, FeatureSchema, accepted_category_type, category_label

#: How many problems one error response lists.
MAX_REPORTED_PROBLEMS = 20
#: Longest string accepted as a category.
MAX_CATEGORY_LENGTH = 1_000


@dataclass(frozen=True)
class ValidatedRows:
    #: The rows as the model's pipeline takes them, columns in schema order.
    frame: pd.DataFrame
    #: Per row, the names of the features sent as null.
    missing: list[list[str]]
    #: The rows as they will be logged (schema order, nulls kept).
    rows: list[dict[str, Any]]

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def request_summary(self) -> dict[str, Any]:
        """Facts about the feature matrix as a whole."""
        counts: dict[str, int] = {}
        for names in self.missing:
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        return {
            "shape": [self.n_rows, self.frame.shape[1]],
            "n_missing": sum(counts.values()),
            "missing_by_feature": counts,
        }

    def row_summaries(self) -> list[dict[str, Any]]:
        """Cheap facts per row; the shape is repeated so each event stands alone."""
        shape = [self.n_rows, self.frame.shape[1]]
        complete: dict[str, Any] = {"shape": shape, "n_missing": 0, "missing": []}
        # rows that miss nothing share one (read-only) summary, so it is encoded once
        return [{"shape": shape, "n_missing": len(m), "missing": m} if m else complete for m in self.missing]


def validate_rows(
    schema: FeatureSchema,
    rows: Sequence[Any],
    *,
    max_rows: int | None = None,
    nullable: Collection[str] = (),
    imputes: Collection[str] = (),
) -> ValidatedRows:
    """Check ``rows`` against ``schema``; ``nullable`` names the features the model's settings
    declare nullable, ``imputes`` those the model's pipeline fills in when null."""
    if not isinstance(rows, (list, tuple)):
        raise SchemaViolation("rows must be a list of objects, one per row")
    if len(rows) == 0:
        raise SchemaViolation("rows must hold at least one row")
    if max_rows is not None and len(rows) > max_rows:
        raise PayloadTooLarge(f"{len(rows)} rows sent; at most {max_rows} rows per request")
    features = schema.features
    names = [f.name for f in features]
    known = set(names)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    missing: list[list[str]] = []
    problems: list[dict[str, Any]] = []
    category_sets: dict[str, frozenset[str]] = {}
    # once per request: a schema stored without types gets its type from its categories
    kinds = {f.name: accepted_category_type(f) for f in features if f.kind == "categorical"}

    def categories_of(feature: Feature) -> frozenset[str]:
        if feature.name not in category_sets:  # built once per request, and only when asked
            category_sets[feature.name] = frozenset(feature.categories)
        return category_sets[feature.name]

    def problem(row: int, feature: str | None, message: str) -> None:
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append({"row": row, "feature": feature, "problem": message})
        else:
            raise _TooMany

    try:
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                problem(index, None, "row must be a JSON object mapping feature names to values")
                missing.append([])
                continue
            extra = [key for key in row if key not in known]
            for key in extra:
                # a name is echoed back: never at length (a hostile key can be megabytes)
                name = str(key)
                problem(index, name if len(name) <= 100 else name[:100] + "...", "unknown feature")
            row_missing: list[str] = []
            for feature in features:
                name = feature.name
                if name not in row:
                    problem(index, name, "missing feature")
                    columns[name].append(None)
                    continue
                value = row[name]
                if value is None:
                    if not (feature.nullable or name in nullable or name in imputes):
                        problem(index, name, "null is not allowed: the feature is not nullable and the model "
                                "cannot fill it in")
                    row_missing.append(name)
                    columns[name].append(None)
                elif feature.kind == "numeric":
                    columns[name].append(_number(value, index, name, problem))
                else:
                    columns[name].append(_category(value, index, feature, kinds[name], problem, categories_of))
            missing.append(row_missing)
    except _TooMany:
        pass
    if problems:
        raise SchemaViolation(_headline(problems), detail={"problems": problems})

    frame = pd.DataFrame(
        {
            f.name: (
                np.array(
                    [np.nan if v is None else v for v in columns[f.name]], dtype=np.float64
                )
                if f.kind == "numeric"
                else pd.array(columns[f.name], dtype=object)
            )
            for f in features
        },
        columns=names,
    )
    logged = [{name: columns[name][i] for name in names} for i in range(len(rows))]
    return ValidatedRows(frame=frame, missing=missing, rows=logged)


class _TooMany(Exception):
    """Raised inside validation to stop once enough problems are listed."""


def _number(value: Any, row: int, name: str, problem: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        problem(row, name, f"expected a number, got {json_type(value)}")
        return None
    try:
        number = float(value)
    except OverflowError:
        problem(row, name, "number out of range")
        return None
    if not math.isfinite(number):
        problem(row, name, "number must be finite")
        return None
    return number


def _category(
    value: Any, row: int, feature: Feature, kind: str | None, problem: Any, categories_of: Any
) -> str | None:
    """The category's label, or ``None`` after reporting why ``value`` is refused."""
    name = feature.name
    if type(value) is int and kind == "integer" and -(2**63) <= value < 2**64:  # the common case, first
        return str(value)
    if isinstance(value, str):
        if len(value) > MAX_CATEGORY_LENGTH:
            problem(row, name, f"category longer than {MAX_CATEGORY_LENGTH} characters")
            return None
        return value
    if isinstance(value, (bool, np.bool_)):
        if kind in ("boolean", None):  # a schema without a type took booleans in any category
            return "true" if value else "false"
    elif kind == "integer" and isinstance(value, (int, np.integer)):
        if int(value).bit_length() > 64:
            problem(row, name, "integer category code out of range")
            return None
        return str(int(value))
    elif kind == "integer" and isinstance(value, (float, np.floating)):
        if math.isfinite(value) and float(value).is_integer() and abs(float(value)) < 2.0**64:
            return str(int(value))
        problem(row, name, f"expected an integer category code, got {echo(float(value))}")
        return None
    if kind in ("string", None) and isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)) and not (
        isinstance(value, (int, np.integer)) and int(value).bit_length() > 64  # no label that long is known
    ):
        # a number or a flag whose label is one of the column's categories is that category
        # (``3`` where training held the string "3"); any other would be an unknown category
        # by a type mistake, and is refused
        label = category_label(value)
        if label in categories_of(feature):
            return label
    expected = {"integer": "an integer category code", "boolean": "a boolean category"}.get(kind or "")
    wanted = f"{expected} or its label as a string" if expected else "a string category"
    problem(row, name, f"expected {wanted}, got {json_type(value)}")
    return None


def json_type(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _headline(problems: list[dict[str, Any]]) -> str:
    first = problems[0]
    where = f"row {first['row']}" + (f", feature {first['feature']!r}" if first["feature"] else "")
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where}: {first['problem']}{more}"
