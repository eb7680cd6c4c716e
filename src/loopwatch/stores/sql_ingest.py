"""Ingested events and external version labels in SQL, for both backends.

Idempotency is per event, on (request_id, row_index), and it is decided inside the
writing transaction: the batch's ids are looked up first, an id stored with the
same content hash is a duplicate, one stored with another hash refuses the whole
batch. Writers of one model take turns for that transaction (SQLite's writers
always do; PostgreSQL takes an advisory lock), so two workers ingesting the same
events agree on which of them stored each.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from operator import itemgetter
from typing import Any, Iterable, Sequence

from loopwatch.errors import NotFound, StoreError, echo
from loopwatch.records.ingest import IngestBatch, IngestOutcome
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import to_micros
from loopwatch.stores.sql import ENTITY_EVENT_COLUMNS, SqlStoreBase, utcnow

#: The columns an ingested event writes, in the order of :attr:`IngestBatch.rows`.
INGEST_EVENT_COLUMNS = ENTITY_EVENT_COLUMNS + ", content_sha256"
_INGEST_PLACEHOLDERS = ", ".join("?" * len(INGEST_EVENT_COLUMNS.split(",")))
#: Request ids looked up per statement (well under SQLite's parameter limit).
_LOOKUP_CHUNK = 500
#: Text that is its own SQL literal between single quotes.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.:-]{0,200}")
_VERSION_COPY_COLUMNS = (
    "task, estimator, artifact_sha256, reference_sha256, feature_schema, metrics, data_summary, profile_sha256"
)


def sql_literal(value: Any) -> str | None:
    """``value`` as an SQL literal that reads back as the same value and type, or None when
    it had better be bound: only integers, finite floats, NULL and plain-word text."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    if type(value) is str and _PLAIN_TEXT.fullmatch(value):
        return f"'{value}'"
    return None


class SqlIngestMixin(SqlStoreBase):
    def _is_unique_violation(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _insert_ingested(self, cur: Any, rows: list[tuple[Any, ...]], constant: frozenset[int] = frozenset()) -> None:
        # A value the batch promises is the same in every row goes into the statement as a
        # literal, when it is one that needs no escaping: binding a parameter costs the
        # sqlite3 module about 0.1 µs, and most of an ingested event's 18 columns are constant.
        inline = {i: literal for i in constant if (literal := sql_literal(rows[0][i])) is not None} if rows else {}
        if not inline:
            cur.executemany(
                self._sql(f"INSERT INTO events ({INGEST_EVENT_COLUMNS}) VALUES ({_INGEST_PLACEHOLDERS})"), rows
            )
            return
        bound = [i for i in range(len(rows[0])) if i not in inline]
        values = ", ".join(inline.get(i, "?") for i in range(len(rows[0])))
        pick = itemgetter(*bound) if len(bound) > 1 else (lambda row: (row[bound[0]],))
        cur.executemany(self._sql(f"INSERT INTO events ({INGEST_EVENT_COLUMNS}) VALUES ({values})"), map(pick, rows))

    def write_ingested(self, batch: IngestBatch) -> IngestOutcome:
        """Commit the batch's new events; count those already stored; refuse it on a conflict."""
        if not batch.rows:
            return IngestOutcome("stored")
        try:
            with self._transaction() as cur:
                self._serialize(cur, f"ingest:{batch.model_name}")
                stored = self._stored_hashes(cur, batch.requests)
                if not stored and batch.unique_keys:  # the bulk path's common case: all new
                    self._write_fingerprints(cur, batch)
                    self._write_request_rows(cur, batch, set(batch.requests))
                    self._insert_ingested(cur, batch.rows, batch.constant_columns)
                    return IngestOutcome("stored", accepted=batch.n_events)
                fresh: list[tuple[Any, ...]] = []
                conflicts: list[tuple[str, int]] = []
                duplicates = 0
                seen: set[tuple[str, int]] = set()
                for row in batch.rows:
                    key = (row[0], row[1])
                    known = stored.get(key)
                    if key in seen:  # the same id twice in one batch: the first one counts
                        duplicates += 1
                    elif known is None:
                        fresh.append(row)
                        seen.add(key)
                    elif known == row[-1]:
                        duplicates += 1
                    else:
                        conflicts.append(key)
                if conflicts:
                    # nothing written: roll the (empty) transaction back through the context
                    raise _Refused(tuple(conflicts[:20]))
                self._write_fingerprints(cur, batch)
                self._write_request_rows(cur, batch, {row[0] for row in fresh})
                if fresh:
                    self._insert_ingested(cur, fresh, batch.constant_columns)
            return IngestOutcome("stored", accepted=len(fresh), duplicates=duplicates)
        except _Refused as refused:
            return IngestOutcome("conflict", conflicts=refused.keys)
        except Exception as exc:
            raise StoreError(f"could not log the ingested events: {exc}") from exc

    def _stored_hashes(self, cur: Any, requests: Iterable[str]) -> dict[tuple[str, int], str | None]:
        ids = list(requests)
        found: dict[tuple[str, int], str | None] = {}
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start:start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            cur.execute(
                self._sql(f"SELECT request_id, row_index, content_sha256 FROM events WHERE request_id IN ({marks})"),
                chunk,
            )
            for request_id, row_index, sha in cur.fetchall():
                # an event loopwatch predicted has no hash: any ingested event on its id conflicts
                found[(request_id, int(row_index))] = sha or ""
        return found

    def _write_fingerprints(self, cur: Any, batch: IngestBatch) -> None:
        now = to_micros(utcnow())
        for fp_id, fp in batch.fingerprints.items():
            if fp_id in self._known_fingerprints:
                continue
            cur.execute(
                self._sql("INSERT INTO fingerprints (id, content, first_seen) VALUES (?, ?, ?) "
                          "ON CONFLICT (id) DO NOTHING"),
                (fp_id, dumps(fp.to_dict()).decode(), now),
            )

    def _write_request_rows(self, cur: Any, batch: IngestBatch, request_ids: set[str]) -> None:
        """One requests row per request id (retention and request look-ups go through it)."""
        if not request_ids:
            return
        first = next(row for row in batch.rows)
        now = to_micros(utcnow())
        rows = [
            (rid, batch.model_name, first[3], batch.requests[rid][1], now, batch.requests[rid][0], 0.0,
             first[12], first[13], first[14], "ingested", "{}", b"{}", 0)
            for rid in sorted(request_ids)
        ]
        cur.executemany(
            self._sql(
                "INSERT INTO requests (request_id, model_name, model_version, ts, logged_at, n_rows, "
                "runtime_ms, request_type, client_id, fingerprint_id, body_sha256, request_summary, "
                "response, replayed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO NOTHING"
            ),
            rows,
        )

    # --- external versions ------------------------------------------------------------
    def external_versions(self, name: str) -> dict[str, int]:
        """Every external label of ``name`` with the integer version it became."""
        found = self._fetchall("SELECT label, version FROM external_versions WHERE model_name = ?", (name,))
        return {label: int(version) for label, version in found}

    def resolve_external_version(self, name: str, label: str, *, base_version: int, created_at: datetime) -> int:
        """The integer version of ``label``; on first sight, the next version of ``name``,
        a copy of ``base_version``'s schema, artifact and reference with the label in its params."""
        for attempt in range(5):
            known = self.external_versions(name).get(label)
            if known is not None:
                return known
            try:
                return self._create_external_version(name, label, base_version=base_version, created_at=created_at)
            except _Refused:
                raise NotFound(f"model {echo(name)} has no version {base_version}") from None
            except Exception as exc:
                # another worker saw the label (or took the number) first: look again
                if self._is_unique_violation(exc) and attempt < 4:
                    continue
                raise StoreError(f"could not record version label {echo(label)} of {echo(name)}: {exc}") from exc
        raise StoreError(f"could not record version label {echo(label)} of {echo(name)}")  # pragma: no cover

    def _create_external_version(self, name: str, label: str, *, base_version: int, created_at: datetime) -> int:
        at = to_micros(created_at)
        with self._transaction() as cur:
            self._serialize(cur, f"versions:{name}")
            cur.execute(self._sql("SELECT version FROM external_versions WHERE model_name = ? AND label = ?"),
                        (name, label))
            row = cur.fetchone()
            if row is not None:
                return int(row[0])
            cur.execute(
                self._sql(f"SELECT {_VERSION_COPY_COLUMNS}, params FROM model_versions WHERE name = ? AND version = ?"),
                (name, base_version),
            )
            base = cur.fetchone()
            if base is None:
                raise _Refused(())
            cur.execute(self._sql("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?"), (name,))
            version = int(cur.fetchone()[0])
            # the base's params carry what the copy is (monitor-only, the types its artifact
            # may hold): a version without them would try to load a model it does not have
            params = {**loads(base[8] or "{}"), "external_version": label, "based_on": base_version}
            cur.execute(
                self._sql(
                    f"INSERT INTO model_versions (name, version, created_at, {_VERSION_COPY_COLUMNS}, params) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (name, version, at, *base[:8], dumps(params).decode()),
            )
            cur.execute(
                self._sql("INSERT INTO external_versions (model_name, label, version, created_at) VALUES (?, ?, ?, ?)"),
                (name, label, version, at),
            )
        return version


class _Refused(Exception):
    def __init__(self, keys: Sequence[tuple[str, int]]) -> None:
        super().__init__("refused")
        self.keys = tuple(keys)
