"""The feature schema of a model version: names, kinds, categories and ranges.

It is inferred from the training table, stored with the version, and every
predict request is validated against it. The drift monitoring reads the same
schema to know which columns are numeric and which categorical.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo, listed
# the schema's types are records (stored with a version); the inference and category rules are here
from loopwatch.records.schema import CategoryType, Feature, FeatureSchema, Kind, Task

__all__ = ["CategoryType", "Feature", "FeatureSchema", "Kind", "Task", "MAX_INFERRED_CLASSES", "infer_task",
           "infer_schema", "category_label", "accepted_category_type", "category_type_of", "category_value"]

#: A numeric target with at most this many distinct integer values is taken as
#: class labels unless the task is named.
MAX_INFERRED_CLASSES = 20


def infer_task(target: pd.Series) -> Task:
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna()
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if integral and values.nunique() <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    *,
    task: Task | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
) -> FeatureSchema:
    """Infer the schema of ``frame``'s feature columns (all but ``target``).

    Columns with a numeric dtype are numeric unless named in ``categorical``;
    booleans and strings are categorical. A feature is nullable when training
    saw it missing or when it is named in ``nullable``.
    """
    if target not in frame.columns:
        raise InvalidInput(
            f"target column {echo(target)} is not in the data; columns are: {', '.join(map(str, frame.columns))}"
        )
    unknown = (set(categorical) | set(nullable)) - set(frame.columns)
    if unknown:
        raise InvalidInput(f"unknown columns named: {listed(sorted(unknown))}")
    if frame[target].isna().any():
        raise InvalidInput(f"target column {echo(target)} has missing values")
    columns = [c for c in frame.columns if c != target]
    if not columns:
        raise InvalidInput("the data has no feature columns besides the target")
    features = []
    for name in columns:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"feature names must be non-empty strings, got {echo(name)}")
        column = frame[name]
        missing_rate = float(column.isna().mean())
        is_nullable = missing_rate > 0 or name in nullable
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if numeric and name not in categorical:
            values = column.dropna().to_numpy(dtype=float)
            if values.size == 0:
                raise InvalidInput(f"feature {echo(name)} has no values")
            if not np.all(np.isfinite(values)):
                raise InvalidInput(f"feature {echo(name)} has non-finite values")
            features.append(
                Feature(
                    name=name,
                    kind="numeric",
                    nullable=is_nullable,
                    integer=bool(np.all(np.mod(values, 1) == 0)),
                    minimum=float(values.min()),
                    maximum=float(values.max()),
                    mean=float(values.mean()),
                    std=float(values.std()),
                    missing_rate=missing_rate,
                )
            )
        else:
            cats = sorted({category_label(v) for v in column.dropna()})
            features.append(
                Feature(
                    name=name,
                    kind="categorical",
                    nullable=is_nullable,
                    categories=tuple(cats),
                    category_type=category_type_of(column),
                    missing_rate=missing_rate,
                )
            )
    chosen = task or infer_task(frame[target])
    classes: tuple[Any, ...] = ()
    if chosen == "classification":
        classes = tuple(_plain(v) for v in sorted(frame[target].unique(), key=str))
    return FeatureSchema(features=tuple(features), target=target, task=chosen, classes=classes)


def category_label(value: Any) -> str:
    """The string a categorical value is known by (booleans as "true"/"false")."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def accepted_category_type(feature: Feature) -> CategoryType | None:
    """The category type a predict request is held to; ``None``: strings and booleans, as
    schemas stored before the type was recorded accepted.

    A stored schema without a type gets one from its categories when they leave no doubt
    (all integer labels like ``"3"``, or only ``"true"``/``"false"``), so that a model
    trained on integer codes before the type was recorded takes them as numbers too.

    >>> old = Feature(name="grade", kind="categorical", categories=("1", "2", "10"))
    >>> accepted_category_type(old), accepted_category_type(Feature(name="c", kind="categorical", categories=("01",)))
    ('integer', None)
    """
    if feature.category_type is not None or not feature.categories:
        return feature.category_type
    if set(feature.categories) <= {"true", "false"}:
        return "boolean"
    if all(_is_integer_label(c) for c in feature.categories):
        return "integer"
    return None


def _is_integer_label(label: str) -> bool:
    try:
        return str(int(label)) == label
    except ValueError:
        return False


def category_type_of(column: pd.Series) -> CategoryType:
    """How ``column`` holds its categories: integer codes, booleans or strings.

    An object column counts by its values, so integer codes with nulls (a column of Python
    ints and ``None``) are integer codes too; any string in a column makes it strings.

    >>> category_type_of(pd.Series([3, None, 1], dtype=object)), category_type_of(pd.Series([1.0, None]))
    ('integer', 'integer')
    >>> category_type_of(pd.Series([True, None], dtype=object)), category_type_of(pd.Series(["a", 1], dtype=object))
    ('boolean', 'string')
    """
    values = column.dropna()
    if pd.api.types.is_bool_dtype(column) or (
        len(values) and all(isinstance(v, (bool, np.bool_)) for v in values)
    ):
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        numbers = values.to_numpy(dtype=float)
        if np.all(np.isfinite(numbers)) and np.all(np.mod(numbers, 1) == 0):
            return "integer"
    elif len(values) and all(_is_code(v) for v in values):
        return "integer"
    return "string"


def _is_code(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def category_value(label: str | None, category_type: CategoryType | None) -> Any:
    """A category label given back in the feature's own type (the inverse of :func:`category_label`).

    >>> category_value("3", "integer"), category_value("true", "boolean"), category_value("3", "string")
    (3, True, '3')
    """
    if label is None:
        return None
    if category_type == "integer":
        try:
            return int(label)
        except ValueError:
            return label
    if category_type == "boolean" and label in ("true", "false"):
        return label == "true"
    return label


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
