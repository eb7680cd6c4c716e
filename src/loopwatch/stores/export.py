"""Export events to NDJSON (one event per line, as logged) or Parquet.

Parquet has a typed column per feature, per output and per class probability, typed
by the model versions' schemas (:mod:`loopwatch.stores.parquet`).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

from loopwatch.features.schema import FeatureSchema
from loopwatch.records import PredictionEvent
from loopwatch.records.jsonutil import dumps
from loopwatch.stores.parquet import (
    ParquetExport,
    export_schemas,
    write_partitioned_parquet,
    write_typed_parquet,
)

__all__ = ["ParquetExport", "export_schemas", "ndjson_lines", "write_ndjson", "write_parquet",
           "write_partitioned_parquet"]


def ndjson_lines(events: Iterable[PredictionEvent]) -> Iterator[bytes]:
    for event in events:
        yield dumps(event.to_dict()) + b"\n"


def write_ndjson(events: Iterable[PredictionEvent], out: IO[bytes]) -> int:
    count = 0
    for line in ndjson_lines(events):
        out.write(line)
        count += 1
    return count


def write_parquet(
    events: Iterable[PredictionEvent],
    path: str | Path,
    *,
    schemas: Mapping[tuple[str, int], FeatureSchema] | None = None,
    include_shadow: bool = False,
) -> ParquetExport:
    """Typed Parquet (see :mod:`loopwatch.stores.parquet`); ``schemas`` by (model, version),
    from :func:`~loopwatch.stores.parquet.export_schemas`."""
    return write_typed_parquet(events, path, schemas=schemas or {}, include_shadow=include_shadow)
