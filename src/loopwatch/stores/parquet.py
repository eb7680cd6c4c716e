"""Export events to Parquet with typed columns: one per feature, per output, per class probability.

The columns come from the feature schemas of the model versions the export may hold
(:func:`export_schemas`), not from the events read, for two reasons: the file's schema
must be fixed before its first row is written (events are streamed, never all held in
memory), and two exports of the same models then have the same columns whatever rows
matched, so that daily exports stack into one dataset.

When the versions differ (a feature added, dropped or retyped, a class added), the file
holds the union of their columns: a feature a version does not have is null in its rows.
A column whose versions disagree on its type is a string column of category labels
(``3``, ``"true"``), which every value can be written as without loss. Numeric features
are float64; a categorical feature keeps the type the training table held
(:attr:`~loopwatch.features.schema.Feature.category_type`: integer codes as int64, flags as
booleans, anything else as strings). A feature whose name is already taken by an event
column (``timestamp``, ``prediction``...) is written as ``feature_<name>``.

A candidate's shadow events are left out unless asked for: they answered no one, and
mixed in they count every request twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from loopwatch.errors import NotFound, require
from loopwatch.features.schema import FeatureSchema, category_label, category_value
from loopwatch.records import PredictionEvent
from loopwatch.records.events import SHADOW_REQUEST_TYPE
from loopwatch.records.jsonutil import dumps
from loopwatch.stores.base import Store

PARQUET_BATCH_ROWS = 50_000

#: The event's own columns, before the features, outputs and probabilities.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "string"), ("row_index", "int32"), ("model_name", "string"), ("model_version", "int32"),
    ("timestamp", "time"), ("logged_at", "time"), ("runtime_ms", "float64"), ("row_runtime_ms", "float64"),
    ("request_type", "string"), ("client_id", "string"), ("fingerprint_id", "string"), ("replayed", "bool"),
    ("entity_id", "string"), ("input_data_summary", "json"),
)
_CATEGORY_TYPES = {"integer": "int64", "boolean": "bool", "string": "string", None: "string"}


@dataclass(frozen=True)
class ParquetExport:
    """What was written: events, shadow events left out, and values that did not fit their
    column's type (written as null; the NDJSON export keeps them as they were logged)."""

    events: int
    shadow_left_out: int = 0
    unfit_values: int = 0


@dataclass(frozen=True)
class Layout:
    """The file's columns: (name, type) for the features, the output's type, the classes."""

    features: tuple[tuple[str, str, str], ...]  # (feature, column, type)
    prediction: str
    classes: tuple[str, ...]


def _common(types: set[str]) -> str:
    if len(types) == 1:
        return next(iter(types))
    return "float64" if types <= {"int64", "float64"} else "string"


def _class_type(schema: FeatureSchema) -> str:
    if schema.task != "classification":
        return "float64"
    kinds = {type(c) for c in schema.classes}
    if kinds == {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int64"
    return "string"


def layout_of(schemas: Iterable[FeatureSchema]) -> Layout:
    """The columns for events of these schemas (the union; see the module's docstring)."""
    feature_types: dict[str, set[str]] = {}
    outputs: set[str] = set()
    classes: dict[str, None] = {}
    for schema in schemas:
        for f in schema.features:
            kind = "float64" if f.kind == "numeric" else _CATEGORY_TYPES.get(f.category_type, "string")
            feature_types.setdefault(f.name, set()).add(kind)
        outputs.add(_class_type(schema))
        if schema.task == "classification":
            classes.update((category_label(c), None) for c in schema.classes)
    taken = {name for name, _ in EVENT_COLUMNS} | {"prediction"} | {f"probability_{c}" for c in classes}
    features = tuple(
        (name, f"feature_{name}" if name in taken else name, _common(kinds)) for name, kinds in feature_types.items()
    )
    return Layout(features=features, prediction=_common(outputs) if outputs else "string", classes=tuple(classes))


def _convert(value: Any, kind: str) -> tuple[Any, bool]:
    """``value`` in the column's type, and whether it fit (a value that does not is null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, True
    if kind == "string":
        return category_label(value), not isinstance(value, (list, dict))
    if kind == "float64":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), True) if ok else (None, False)
    if kind == "bool":
        converted = value if isinstance(value, bool) else category_value(category_label(value), "boolean")
        return (converted, True) if isinstance(converted, bool) else (None, False)
    if kind == "int64":
        if isinstance(value, bool):
            return None, False
        converted = category_value(category_label(value), "integer")
        return (converted, True) if isinstance(converted, int) else (None, False)
    return dumps(value).decode(), True  # json


def _arrow_type(pa: Any, kind: str) -> Any:
    return {
        "string": pa.string(), "json": pa.string(), "int32": pa.int32(), "int64": pa.int64(),
        "float64": pa.float64(), "bool": pa.bool_(), "time": pa.timestamp("us", tz="UTC"),
    }[kind]


def write_typed_parquet(
    events: Iterable[PredictionEvent],
    path: str | Path,
    *,
    schemas: Mapping[tuple[str, int], FeatureSchema],
    include_shadow: bool = False,
) -> ParquetExport:
    """Write ``events`` to ``path`` with the columns of ``schemas`` (by model and version)."""
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    layout = layout_of(schemas.values())
    kinds = [*EVENT_COLUMNS, ("prediction", layout.prediction),
             *((f"probability_{c}", "float64") for c in layout.classes),
             *((column, kind) for _, column, kind in layout.features)]
    schema = pa.schema([(name, _arrow_type(pa, kind)) for name, kind in kinds])
    class_columns = {c: f"probability_{c}" for c in layout.classes}
    labels_of: dict[tuple[str, int], list[str]] = {
        key: [category_label(c) for c in s.classes] for key, s in schemas.items()
    }
    written = shadows = unfit = 0
    columns: dict[str, list[Any]] = {name: [] for name, _ in kinds}

    def put(name: str, kind: str, value: Any) -> None:
        nonlocal unfit
        converted, fits = _convert(value, kind)
        unfit += not fits
        columns[name].append(converted)

    with pq.ParquetWriter(str(path), schema) as writer:
        for event in events:
            if event.request_type == SHADOW_REQUEST_TYPE and not include_shadow:
                shadows += 1
                continue
            for name, kind in EVENT_COLUMNS:
                value = getattr(event, name)
                columns[name].append(dumps(value).decode() if kind == "json" and value is not None else value)
            output = event.prediction[0] if len(event.prediction) == 1 else event.prediction
            put("prediction", layout.prediction, output)
            labels = labels_of.get((event.model_name, event.model_version)) or []
            probabilities = dict(zip(labels, event.probability or ()))
            for label, column in class_columns.items():
                columns[column].append(probabilities.get(label))
            data = event.data or {}
            if (event.model_name, event.model_version) not in schemas:
                unfit += len(data)  # no schema to type them by: counted, not dropped in silence
                data = {}
            for feature, column, kind in layout.features:
                put(column, kind, data.get(feature))
            written += 1
            if written % PARQUET_BATCH_ROWS == 0:
                writer.write_table(pa.table(columns, schema=schema))
                columns = {name: [] for name, _ in kinds}
        if columns["request_id"] or written == 0:
            writer.write_table(pa.table(columns, schema=schema))
    return ParquetExport(events=written, shadow_left_out=shadows, unfit_values=unfit)


def export_schemas(
    store: Store, *, model_name: str | None = None, model_version: int | None = None,
) -> dict[tuple[str, int], FeatureSchema]:
    """The feature schema of every registered version an export filtered by model and version
    may hold (every version of every model without a filter), by (model, version)."""
    names = [model_name] if model_name is not None else [m.name for m in store.list_models()]
    out: dict[tuple[str, int], FeatureSchema] = {}
    for name in names:
        try:
            versions = store.list_versions(name)
        except NotFound:  # a model the registry does not know: its events export without features
            continue
        for v in versions:
            if model_version is None or v.version == model_version:
                out[(v.name, v.version)] = v.schema
    return out
