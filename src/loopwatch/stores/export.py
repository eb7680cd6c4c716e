"""Export events to NDJSON (one event per line) or Parquet.

Parquet keeps the event's scalar fields as typed columns (times as UTC
timestamps) and the nested ones (prediction, probability, input summary, data)
as JSON strings, so that one file schema serves every model version.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from loopwatch.errors import require
from loopwatch.records import PredictionEvent
from loopwatch.records.jsonutil import dumps

NESTED_FIELDS = ("prediction", "probability", "input_data_summary", "data")
PARQUET_BATCH_ROWS = 50_000


def ndjson_lines(events: Iterable[PredictionEvent]) -> Iterator[bytes]:
    for event in events:
        yield dumps(event.to_dict()) + b"\n"


def write_ndjson(events: Iterable[PredictionEvent], out: IO[bytes]) -> int:
    count = 0
    for line in ndjson_lines(events):
        out.write(line)
        count += 1
    return count


def _parquet_schema() -> Any:
    pa = require("pyarrow", "parquet")
    return pa.schema(
        [
            ("request_id", pa.string()),
            ("row_index", pa.int32()),
            ("model_name", pa.string()),
            ("model_version", pa.int32()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("logged_at", pa.timestamp("us", tz="UTC")),
            ("runtime_ms", pa.float64()),
            ("row_runtime_ms", pa.float64()),
            ("prediction", pa.string()),
            ("probability", pa.string()),
            ("input_data_summary", pa.string()),
            ("data", pa.string()),
            ("request_type", pa.string()),
            ("client_id", pa.string()),
            ("fingerprint_id", pa.string()),
            ("replayed", pa.bool_()),
            ("entity_id", pa.string()),
        ]
    )


def write_parquet(events: Iterable[PredictionEvent], path: str | Path) -> int:
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    schema = _parquet_schema()
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        for event in events:
            for name in schema.names:
                value = getattr(event, name)
                if name in NESTED_FIELDS:
                    value = None if value is None else dumps(value).decode()
                columns[name].append(value)
            count += 1
            if len(columns["request_id"]) >= PARQUET_BATCH_ROWS:
                writer.write_table(pa.table(columns, schema=schema))
                columns = {name: [] for name in schema.names}
        if columns["request_id"] or count == 0:
            writer.write_table(pa.table(columns, schema=schema))
    return count
