"""Bulk ingestion of a file of predictions made elsewhere (``loopwatch ingest``).

A file is read in record batches with pyarrow (CSV, Parquet, NDJSON). Each batch is
checked column by column (:func:`~loopwatch.features.columns.check_column`, the rules
of row validation vectorised), encoded in bulk into the store's ingest rows and
committed in one transaction: a batch is stored whole or not at all.

Re-runs create no duplicates. Without a mapped request id, a batch's events are
named ``file-<chunk>-<hash>``, the hash taken over the batch's content, with the
row's place in the batch as its row index: a re-run after an interruption names
the same events the same way and the store counts them as duplicates.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeAlias, cast

import numpy as np
import orjson

from loopwatch.errors import InvalidInput, SchemaViolation, echo, listed
from loopwatch.features.arrow_json import encode_feature, join_objects, list_texts, numpy_of
from loopwatch.features.validate import MAX_REPORTED_PROBLEMS
from loopwatch.application.ingestion import MAX_LATENCY_MS, PROBABILITY_SUM_TOLERANCE, _valid_id
from loopwatch.records import ModelVersion, software_fingerprint
from loopwatch.records.ingest import INGESTED_REQUEST_TYPE, NO_LATENCY, IngestBatch
from loopwatch.registry import Registry
from loopwatch.stores.base import to_micros

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: Fields a column can be mapped to; the remaining columns are features.
#: The columns pandas adds for a frame's index when it writes Parquet.
PANDAS_INDEX = re.compile(r"__index_level_\d+__")
MAPPABLE = ("request_id", "row_index", "timestamp", "prediction", "probabilities", "entity_id",
            "model_version", "client_version", "latency_ms")
#: Rows per batch (and per transaction).
BATCH_ROWS = 50_000
#: Bytes a CSV or NDJSON reader parses at a time.
_READ_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True, kw_only=True)
class ColumnMap:
    #: Field name -> column name.
    fields: dict[str, str] = field(default_factory=dict)
    #: Probabilities from the columns ``<prefix><class>``, one per class.
    probability_prefix: str | None = None
    #: Columns that are neither fields nor features.
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class IngestReport:
    rows: int
    accepted: int
    duplicates: int
    seconds: float
    versions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": self.accepted, "duplicates": self.duplicates,
                "seconds": round(self.seconds, 3), "rows_per_second": round(self.rows / max(self.seconds, 1e-9)),
                "versions": self.versions}


def read_batches(path: Path, *, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The file's rows in record batches, by its suffix (.csv, .parquet, .ndjson/.jsonl)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
        elif suffix == ".csv":
            # streamed: the file is never held whole; block_size sets how much is parsed at once
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=_READ_BLOCK_BYTES))
            yield from _rebatched(reader, batch_rows)
        elif suffix in (".ndjson", ".jsonl", ".json"):
            reader = pjson.open_json(path, read_options=pjson.ReadOptions(block_size=_READ_BLOCK_BYTES))
            yield from _rebatched(reader, batch_rows)
        else:
            raise InvalidInput(f"cannot read {echo(path.name)}: use .csv, .parquet or .ndjson")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InvalidInput(f"cannot read {echo(path.name)}: {str(exc)[:300]}") from exc


def _rebatched(reader: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The reader's blocks regrouped into batches of exactly ``batch_rows`` rows (the last
    may be shorter): event ids derive from the batches, so they must not depend on how the
    file happened to be split into blocks."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for block in reader:
        pending.append(block)
        held += block.num_rows
        while held >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, batch_rows).combine_chunks().to_batches()[0]
            rest = table.slice(batch_rows)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def ingest_file(registry: Registry, path: Path, *, model: str, mapping: ColumnMap, client_id: str | None = None,
                batch_rows: int = BATCH_ROWS, progress: Callable[[int, float], None] | None = None) -> IngestReport:
    """Check, encode and commit every row of ``path`` as ingested events of ``model``.

    Reading and encoding run in this thread while the previous batch commits in another
    (one writer per database, as ever): the commit waits on the disk and SQLite, the
    encoding on the CPU, so the two overlap.
    """
    base = registry.resolve(model)
    settings = registry.settings(base.name)
    started = time.perf_counter()
    versions: dict[str, int] = {}
    pending: queue.Queue[IngestBatch | None] = queue.Queue(maxsize=2)
    totals = {"rows": 0, "accepted": 0, "duplicates": 0}
    failure: list[BaseException] = []

    def commit() -> None:
        while (batch := pending.get()) is not None:
            if failure:
                continue  # drain: the reader stops at its next put
            try:
                outcome = registry.store.write_ingested(batch)
                if outcome.status == "conflict":
                    first = outcome.conflicts[0]
                    raise InvalidInput(
                        f"rows {totals['rows']}-{totals['rows'] + batch.n_events - 1} name events already stored "
                        f"with other content (first: request {echo(first[0])}, row {first[1]})")
            except BaseException as exc:  # handed to the reading thread, which raises it
                failure.append(exc)
                continue
            totals["rows"] += batch.n_events
            totals["accepted"] += outcome.accepted
            totals["duplicates"] += outcome.duplicates
            if progress is not None:
                progress(totals["rows"], time.perf_counter() - started)

    writer = threading.Thread(target=commit, name="loopwatch-ingest-writer", daemon=True)
    writer.start()
    offset = 0
    try:
        for chunk, record_batch in enumerate(read_batches(path, batch_rows=batch_rows)):
            if failure:
                break
            batch = encode_batch(registry, record_batch, base=base, log_data=settings.log_data, mapping=mapping,
                                 chunk=chunk, offset=offset, client_id=client_id, versions=versions)
            offset += batch.n_events
            pending.put(batch)
    finally:
        pending.put(None)
        writer.join()
    if failure:
        raise failure[0]
    return IngestReport(rows=totals["rows"], accepted=totals["accepted"], duplicates=totals["duplicates"],
                        seconds=time.perf_counter() - started, versions=versions)


def with_named_fields(mapping: ColumnMap, columns: Iterable[str], *, features: Sequence[str]) -> ColumnMap:
    """``mapping`` with every field not mapped read from a column of its own name (``prediction``,
    ``timestamp``...), unless that column is a feature, ignored, or already mapped to a field.

    >>> with_named_fields(ColumnMap(fields={"timestamp": "ts"}), ["x", "prediction", "ts", "timestamp"],
    ...                   features=["x"]).fields
    {'timestamp': 'ts', 'prediction': 'prediction'}
    """
    taken = set(mapping.fields.values()) | set(mapping.ignore) | set(features)
    named = {name: name for name in MAPPABLE
             if name not in mapping.fields and name in set(columns) and name not in taken}
    return mapping if not named else replace(mapping, fields={**mapping.fields, **named})


def encode_batch(registry: Registry, record_batch: pa.RecordBatch, *, base: ModelVersion, log_data: bool,
                 mapping: ColumnMap, chunk: int, offset: int, client_id: str | None,
                 versions: dict[str, int]) -> IngestBatch:
    """One record batch as an :class:`IngestBatch`; :class:`SchemaViolation` lists its problems."""
    n = record_batch.num_rows
    # pandas writes a frame's index as __index_level_N__ columns (after a sort, say): not the user's data
    columns = {name: record_batch.column(i) for i, name in enumerate(record_batch.schema.names)
               if not PANDAS_INDEX.fullmatch(name)}
    names = [f.name for f in base.schema.features]
    mapping = with_named_fields(mapping, columns, features=names)
    mapped = set(mapping.fields.values()) | set(mapping.ignore)
    prefix = mapping.probability_prefix
    classes = [str(c) for c in base.schema.classes]
    proba_columns = [f"{prefix}{c}" for c in classes] if prefix else []
    problems: list[dict[str, Any]] = []
    missing_columns = [c for c in [*mapping.fields.values(), *proba_columns] if c not in columns]
    unknown = [c for c in columns if c not in mapped and c not in proba_columns and c not in names]
    absent = [name for name in names if name not in columns]
    if missing_columns or unknown or absent or "prediction" not in mapping.fields:
        parts = []
        if "prediction" not in mapping.fields:
            parts.append("map the prediction column (--map prediction=COLUMN)")
        if missing_columns:
            parts.append(f"mapped columns not in the file: {listed(missing_columns)}")
        if absent:
            parts.append(f"features missing: {listed(absent)}")
        if unknown:
            parts.append(f"columns that are neither features nor mapped: {listed(unknown)} (--ignore them)")
        raise InvalidInput("; ".join(parts))

    encoded = {}
    for feature in base.schema.features:
        result = encode_feature(feature, columns[feature.name], offset=offset, problems=problems)
        if result is not None:
            encoded[feature.name] = result
    field_of = {name: columns[column] for name, column in mapping.fields.items()}
    prediction = _predictions(field_of["prediction"], base, offset, problems)
    probabilities = None
    if prefix or "probabilities" in field_of:
        matrix = (np.column_stack([numpy_of(columns[c])[0].astype(np.float64) for c in proba_columns]) if prefix
                  else np.asarray(field_of["probabilities"].to_pylist(), dtype=np.float64))
        probabilities = _probabilities(matrix, len(classes), offset, problems)
    stamps = _timestamps(field_of.get("timestamp"), n, offset, problems)
    latency = np.full(n, NO_LATENCY)
    if "latency_ms" in field_of:
        raw, mask = numpy_of(field_of["latency_ms"])
        values = np.where(mask, 0.0, raw.astype(np.float64))
        bad = ~mask & ~(np.isfinite(values) & (values >= 0) & (values <= MAX_LATENCY_MS))
        _refuse(problems, np.flatnonzero(bad), offset, "latency_ms", "must be milliseconds from 0 to a day")
        latency = np.where(mask, NO_LATENCY, values)
    texts = {name: _texts(field_of.get(name), n) for name in ("request_id", "entity_id", "model_version",
                                                              "client_version")}
    if texts["request_id"] is not None:
        bad = np.array([not _valid_id(v) for v in texts["request_id"]], dtype=bool)
        _refuse(problems, np.flatnonzero(bad), offset, "request_id", "must be 1-200 letters, digits, '-_.:'")
    row_index = np.arange(n, dtype=np.int64) + (offset if texts["request_id"] is not None else 0)
    if "row_index" in field_of:
        raw, mask = numpy_of(field_of["row_index"])
        bad = mask | (raw.astype(np.float64) < 0) | (raw.astype(np.float64) >= 2**31)
        _refuse(problems, np.flatnonzero(bad), offset, "row_index", "must be an integer from 0")
        row_index = np.where(bad, 0, raw).astype(np.int64)
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        raise SchemaViolation(f"row {shown[0]['row']}, {shown[0]['feature']}: {shown[0]['problem']}",
                              detail={"problems": shown})
    data: Column = (join_objects([encoded[name] for name in names]).to_pylist() if log_data else _Same(None))
    summaries = _summaries(np.column_stack([encoded[name].missing for name in names]), names, n)
    labels = texts["model_version"]
    if labels is not None:
        for label in sorted({v for v in labels if v is not None} - set(versions)):
            versions[label] = registry.store.resolve_external_version(
                base.name, label, base_version=base.version, created_at=datetime.now(timezone.utc))
    version_of: Column = (_Same(base.version) if labels is None
                          else [base.version if v is None else versions[v] for v in labels])
    client_versions = texts["client_version"]
    fingerprints = {v: software_fingerprint(base.artifact_sha256, v) for v in set(client_versions or [None])}
    fp_ids: Column = (_Same(fingerprints[None].id) if client_versions is None
                      else [fingerprints[v].id for v in client_versions])
    entity: Column = texts["entity_id"] or _Same(None)
    proba_json: Column = (_Same(None) if probabilities is None
                          else list_texts(list(probabilities.T)).to_pylist())
    stamp_list = stamps.tolist()
    latency_values: Column = _Same(NO_LATENCY) if "latency_ms" not in field_of else latency.tolist()
    requests: dict[str, tuple[int, int]] = {}
    request_ids: Column
    hashes: Column
    if texts["request_id"] is None:
        # the ids derive from the batch's content: its hash is every row's content hash
        digest = _batch_digest(record_batch)
        request_id = f"file-{chunk}-{digest[:24]}"
        request_ids, hashes = _Same(request_id), _Same(digest)
        requests[request_id] = (n, int(stamps.min()))
    else:
        # every id passed _valid_id above (a missing one was refused), so each is a str
        given_ids = cast("list[str]", texts["request_id"])
        request_ids = given_ids
        hashes = [
            hashlib.sha256(orjson.dumps(content)).hexdigest()
            for content in zip(*(_each(c, n) for c in (data, prediction, proba_json, stamp_list, entity, version_of,
                                                        client_versions or _Same(None), latency_values)))
        ]
        for rid, ts in zip(given_ids, stamp_list):
            count, first = requests.get(rid, (0, ts))
            requests[rid] = (count + 1, min(first, ts))
    ingest_columns: list[Column] = [  # the store's ingest columns, in order
        request_ids, row_index.tolist(), _Same(base.name), version_of, stamp_list,
        _Same(to_micros(datetime.now(timezone.utc))), latency_values, latency_values, prediction, proba_json,
        summaries, data, _Same(INGESTED_REQUEST_TYPE), _Same(client_id), fp_ids,
        _Same(int("timestamp" in field_of)), entity, hashes,
    ]
    return IngestBatch(model_name=base.name, rows=list(zip(*(_each(c, n) for c in ingest_columns))),
                       fingerprints={f.id: f for f in fingerprints.values()}, requests=requests,
                       unique_keys=texts["request_id"] is None,
                       versions={k: versions[k] for k in sorted({v for v in labels or () if v is not None})},
                       # the store may bind these once per batch rather than once per row
                       constant_columns=frozenset(i for i, c in enumerate(ingest_columns) if isinstance(c, _Same)))


@dataclass(frozen=True)
class _Same:
    """A column whose value is the same in every row of the batch."""

    value: Any


#: A batch's column: one value per row, or one value for every row.
Column: TypeAlias = "list[Any] | _Same"


def _each(column: list[Any] | _Same, n: int) -> Iterable[Any]:
    return repeat(column.value, n) if isinstance(column, _Same) else column


def _refuse(problems: list[dict[str, Any]], rows: np.ndarray, offset: int, what: str, message: str) -> None:
    for row in rows[: max(0, MAX_REPORTED_PROBLEMS - len(problems))]:
        problems.append({"row": int(row) + offset, "feature": what, "problem": message})


def _texts(column: pa.Array | None, n: int) -> list[str | None] | None:
    if column is None:
        return None
    values = column.to_pylist()
    return [None if v is None else str(v)[:200] for v in values]


def _predictions(column: pa.Array, meta: ModelVersion, offset: int, problems: list[dict[str, Any]]) -> list[str]:
    """Each prediction encoded as the log holds it (``[class]`` or ``[number]``).

    A regression's numbers are checked and formatted as a column; a class is encoded
    once per distinct value (Arrow's dictionary encoding) and spread back by index."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if meta.task != "classification" and (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        values, missing = numpy_of(column)
        numbers = values.astype(np.float64)
        bad = missing | ~np.isfinite(np.where(missing, 0.0, numbers))
        _refuse(problems, np.flatnonzero(bad), offset, "prediction", "not one of the model's classes, or not a value")
        return list_texts([np.where(bad, 0.0, numbers)]).to_pylist()
    by_label = {str(c): c for c in meta.schema.classes}
    encoded = column.dictionary_encode()
    texts = [_encode_prediction(value, meta, by_label) for value in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    bad_codes = np.array([text is None for text in texts], dtype=bool)
    missing = indices.is_null().to_numpy(zero_copy_only=False)
    codes = pc.fill_null(indices, 0).to_numpy(zero_copy_only=False)
    bad = missing | (bad_codes[np.where(missing, 0, codes)] if len(texts) else missing)
    _refuse(problems, np.flatnonzero(bad), offset, "prediction", "not one of the model's classes, or not a value")
    spread = pc.take(pa.array([text or "" for text in texts], type=pa.string()), indices)
    return pc.fill_null(spread, pa.scalar("")).to_pylist()


def _encode_prediction(value: Any, meta: ModelVersion, by_label: dict[str, Any]) -> str | None:
    if value is None or isinstance(value, (list, dict)):
        return None
    if meta.task == "classification" and by_label:
        label = ("true" if value else "false") if isinstance(value, bool) else (
            str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
        return None if label not in by_label else orjson.dumps([by_label[label]]).decode()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        return None
    return orjson.dumps([value]).decode()


def _probabilities(matrix: np.ndarray, k: int, offset: int, problems: list[dict[str, Any]]) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[1] != k:
        _refuse(problems, np.array([0]), offset, "probabilities", f"need {k} probabilities per row")
        return matrix
    bad = ~np.isfinite(matrix).all(axis=1) | (matrix < 0).any(axis=1) | (matrix > 1).any(axis=1)
    bad |= np.abs(np.nan_to_num(matrix).sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE
    _refuse(problems, np.flatnonzero(bad), offset, "probabilities", "numbers from 0 to 1 that sum to 1")
    return matrix


def _timestamps(column: pa.Array | None, n: int, offset: int, problems: list[dict[str, Any]]) -> np.ndarray:
    """Event times as UTC microseconds; a time without a zone is read as UTC; now when unmapped."""
    if column is None:
        return np.full(n, to_micros(datetime.now(timezone.utc)), dtype=np.int64)
    import pyarrow as pa

    if pa.types.is_timestamp(column.type):
        # Arrow keeps a zoned time as UTC, and a naive one is read as UTC: the integers are the answer
        micros_column = column.cast(pa.timestamp("us", tz=column.type.tz))
        missing = micros_column.is_null().to_numpy(zero_copy_only=False)
        _refuse(problems, np.flatnonzero(missing), offset, "timestamp", "must be an ISO-8601 time")
        return micros_column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    import pandas as pd

    try:
        parsed = pd.to_datetime(pd.Series(column.to_pandas()), utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        parsed = pd.Series(pd.NaT, index=range(n))
    bad = parsed.isna().to_numpy()
    _refuse(problems, np.flatnonzero(bad), offset, "timestamp", "must be an ISO-8601 time")
    micros = parsed.to_numpy(dtype="datetime64[us]", na_value=np.datetime64(0, "us")).astype(np.int64)
    return micros


def _summaries(missing: np.ndarray, names: list[str], n: int) -> list[str]:
    """Each row's summary as the log holds it; rows that miss nothing share one string."""
    shape = [n, len(names)]
    complete = orjson.dumps({"shape": shape, "n_missing": 0, "missing": []}).decode()
    out = [complete] * n
    rows = np.flatnonzero(missing.any(axis=1))
    if rows.size:
        # one string per distinct pattern of missing features, shared by the rows that have it
        patterns, inverse = np.unique(missing[rows], axis=0, return_inverse=True)
        texts = []
        for pattern in patterns:
            missed = [names[j] for j in np.flatnonzero(pattern).tolist()]
            texts.append(orjson.dumps({"shape": shape, "n_missing": len(missed), "missing": missed}).decode())
        for row, k in zip(rows.tolist(), inverse.reshape(-1).tolist()):
            out[row] = texts[k]
    return out


def _batch_digest(record_batch: pa.RecordBatch) -> str:
    """SHA-256 of the batch's columns as Arrow holds them (names, types and values)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, record_batch.schema) as writer:
        writer.write_batch(record_batch)
    return hashlib.sha256(sink.getvalue()).hexdigest()
