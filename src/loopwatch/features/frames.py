"""One way to turn rows from anywhere into the frame a model and the monitors read.

Rows reach loopwatch in many shapes: a training table (integer codes as int64, or as
float64 once a null is in the column), JSON predict rows (``3``, ``3.0`` or ``"3"``),
logged events (labels), a reference sample decoded from the store (the training table's
own types), a CSV read back by pandas. Inside, a categorical value is known by its label
(:func:`~loopwatch.features.schema.category_label`), so ``3``, ``3.0`` and ``"3"`` are one
category wherever the schema says the column is categorical; a numeric feature is float64
with NaN for a null. :func:`model_frame` is that form, and everything that builds a frame
for the model's pipeline or for monitoring goes through it.

:func:`typed_frame` goes the other way: categories back in the type the training table
held them (:attr:`~loopwatch.features.schema.Feature.category_type`), for a training
table rebuilt from logged rows, so that the next version records the same types.

>>> from loopwatch.features.schema import infer_schema
>>> table = pd.DataFrame({"grade": [1, 2, 3] * 4, "x": [0.5] * 12, "y": [0, 1] * 6})
>>> schema = infer_schema(table, "y", categorical=["grade"])
>>> rows = pd.DataFrame({"grade": [3, "3", 3.0, None], "x": [1, 2, None, 4]})
>>> labels_of(model_frame(rows, schema)["grade"])
['3', '3', '3', None]
>>> typed_frame(model_frame(rows, schema), schema)["grade"].tolist()
[3, 3, 3, None]
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from loopwatch.features.schema import Feature, FeatureSchema, accepted_category_type, category_label, category_value


def is_missing(value: Any) -> bool:
    """``None``, NaN and pandas' own missing markers."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(value != value)
    return value is pd.NA or value is pd.NaT


#: Types whose equal values always have one label: labelled once per distinct value.
_LABELLED_ONCE = frozenset({str, int, float, bool, type(None)})


def labels_of(values: Iterable[Any]) -> list[str | None]:
    """Each value's category label, ``None`` for a missing one."""
    vals = list(values)
    if not set(map(type, vals)) <= _LABELLED_ONCE:
        return [None if is_missing(v) else category_label(v) for v in vals]
    # a column holds few distinct values: label each once (keyed with its type, as 1 and True are equal)
    keys = list(zip(map(type, vals), vals))
    labels: dict[tuple[type, Any], str | None] = dict.fromkeys(keys)
    for key in labels:
        labels[key] = None if is_missing(key[1]) else category_label(key[1])
    return list(map(labels.__getitem__, keys))


def model_frame(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The schema's feature columns of ``frame`` as the pipeline and the monitors take them.

    Numeric features as float64 (NaN for a null; a string in a numeric column is the
    caller's error, raised by numpy), categorical features as a column of labels (missing
    for a null: pandas stores it as NaN in a column of strings, as the pipelines were
    always fitted), in schema order, indexed from 0. Other columns are left out.
    """
    out = {f.name: canonical_column(frame[f.name], f) for f in schema.features}
    return pd.DataFrame(out, columns=schema.names)


def with_canonical_features(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """``frame`` (a copy) with each of the schema's features it holds in :func:`model_frame`'s
    form; its other columns (event facts, outputs) and its index are kept."""
    out = frame.copy()
    for feature in schema.features:
        if feature.name in out.columns:
            out[feature.name] = canonical_column(out[feature.name], feature)
    return out


def canonical_column(column: pd.Series, feature: Feature) -> Any:
    """One feature's values in :func:`model_frame`'s form."""
    if feature.kind == "numeric":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.array(labels_of(column.tolist()), dtype=object)


def typed_frame(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """``frame`` with its categorical features in their recorded types; other columns kept.

    Integer codes come back as Python ints in an object column when a null is among them
    (so a null does not turn them into floats), as int64 otherwise; booleans likewise.
    """
    out = frame.copy()
    for feature in schema.features:
        if feature.kind != "categorical" or feature.name not in out.columns:
            continue
        kind = accepted_category_type(feature)
        values = [category_value(label, kind) for label in labels_of(out[feature.name].tolist())]
        out[feature.name] = _column(values, kind)
    return out


def _column(values: list[Any], category_type: str | None) -> Any:
    if values and all(type(v) is bool for v in values) and category_type == "boolean":
        return np.array(values, dtype=bool)
    if values and all(type(v) is int for v in values) and category_type == "integer":
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:  # codes past int64 stay Python ints
            pass
    return pd.array(values, dtype=object)
