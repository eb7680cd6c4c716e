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
from datetime import timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from loopwatch.errors import InvalidInput, NotFound, echo, require
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


class _Rows:
    """Events converted to the file's columns, a batch at a time."""

    def __init__(self, schemas: Mapping[tuple[str, int], FeatureSchema], *, drop: tuple[str, ...] = ()) -> None:
        layout = layout_of(schemas.values())
        self.kinds = [*((n, k) for n, k in EVENT_COLUMNS if n not in drop), ("prediction", layout.prediction),
                      *((f"probability_{c}", "float64") for c in layout.classes),
                      *((column, kind) for _, column, kind in layout.features)]
        self.event_columns = tuple((n, k) for n, k in EVENT_COLUMNS if n not in drop)
        self.layout = layout
        self.schemas = schemas
        self.class_columns = {c: f"probability_{c}" for c in layout.classes}
        self.labels_of: dict[tuple[str, int], list[str]] = {
            key: [category_label(c) for c in s.classes] for key, s in schemas.items()
        }
        self.unfit = 0

    def arrow_schema(self, pa: Any) -> Any:
        return pa.schema([(name, _arrow_type(pa, kind)) for name, kind in self.kinds])

    def empty(self) -> dict[str, list[Any]]:
        return {name: [] for name, _ in self.kinds}

    def add(self, columns: dict[str, list[Any]], event: PredictionEvent) -> None:
        def put(name: str, kind: str, value: Any) -> None:
            converted, fits = _convert(value, kind)
            self.unfit += not fits
            columns[name].append(converted)

        for name, kind in self.event_columns:
            value = getattr(event, name)
            columns[name].append(dumps(value).decode() if kind == "json" and value is not None else value)
        output = event.prediction[0] if len(event.prediction) == 1 else event.prediction
        put("prediction", self.layout.prediction, output)
        labels = self.labels_of.get((event.model_name, event.model_version)) or []
        probabilities = dict(zip(labels, event.probability or ()))
        for label, column in self.class_columns.items():
            columns[column].append(probabilities.get(label))
        data = event.data or {}
        if (event.model_name, event.model_version) not in self.schemas:
            self.unfit += len(data)  # no schema to type them by: counted, not dropped in silence
            data = {}
        for feature, column, kind in self.layout.features:
            put(column, kind, data.get(feature))


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
    rows = _Rows(schemas)
    schema = rows.arrow_schema(pa)
    written = shadows = 0
    columns = rows.empty()
    with pq.ParquetWriter(str(path), schema) as writer:
        for event in events:
            if event.request_type == SHADOW_REQUEST_TYPE and not include_shadow:
                shadows += 1
                continue
            rows.add(columns, event)
            written += 1
            if written % PARQUET_BATCH_ROWS == 0:
                writer.write_table(pa.table(columns, schema=schema))
                columns = rows.empty()
        if columns["request_id"] or written == 0:
            writer.write_table(pa.table(columns, schema=schema))
    return ParquetExport(events=written, shadow_left_out=shadows, unfit_values=rows.unfit)


#: The partition columns of a partitioned export, in the order of its directories.
PARTITION_COLUMNS = ("model_name", "date")


def write_partitioned_parquet(
    events: Iterable[PredictionEvent],
    directory: str | Path,
    *,
    schemas: Mapping[tuple[str, int], FeatureSchema],
    include_shadow: bool = False,
) -> ParquetExport:
    """Write ``events`` under ``directory`` partitioned by model and UTC date of event time,
    as Hive-style directories (``model_name=NAME/date=YYYY-MM-DD/part-00000.parquet``) that
    Spark, pyarrow and DuckDB read as one dataset with ``model_name`` and ``date`` columns.

    Every file has the same columns (the union of ``schemas``, as :func:`write_typed_parquet`
    writes them) except ``model_name``, which its directory holds. The directory must be
    new or empty: files of an earlier export left in it would be read twice.
    """
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InvalidInput(f"{echo(str(root))} must be a new or empty directory for a partitioned export")
    rows = _Rows(schemas, drop=("model_name",))
    schema = rows.arrow_schema(pa)
    # one open writer per partition: events arrive in time order, so few are open at once
    # beyond the current day of each model, but an out-of-order event still lands right
    open_: dict[tuple[str, str], tuple[Any, dict[str, list[Any]]]] = {}
    written = shadows = 0
    try:
        for event in events:
            if event.request_type == SHADOW_REQUEST_TYPE and not include_shadow:
                shadows += 1
                continue
            key = (event.model_name, event.timestamp.astimezone(timezone.utc).date().isoformat())
            if key not in open_:
                folder = root / f"model_name={_partition_value(key[0])}" / f"date={key[1]}"
                folder.mkdir(parents=True, exist_ok=True)
                open_[key] = (pq.ParquetWriter(str(folder / "part-00000.parquet"), schema), rows.empty())
            writer, columns = open_[key]
            rows.add(columns, event)
            written += 1
            if len(columns["request_id"]) >= PARQUET_BATCH_ROWS:
                writer.write_table(pa.table(columns, schema=schema))
                open_[key] = (writer, rows.empty())
    finally:
        for writer, columns in open_.values():
            if columns["request_id"]:
                writer.write_table(pa.table(columns, schema=schema))
            writer.close()
    root.mkdir(parents=True, exist_ok=True)
    return ParquetExport(events=written, shadow_left_out=shadows, unfit_values=rows.unfit)


def _partition_value(name: str) -> str:
    """A model name as a directory name: Hive escapes the characters a path cannot hold."""
    return "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02X}" for c in name)


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
