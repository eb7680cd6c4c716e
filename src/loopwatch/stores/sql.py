"""The SQL written once for both backends: connections, migrations, the log.

Statements use ``?`` placeholders; the PostgreSQL store turns them into
``%s``. Each thread gets its own connection (SQLite connections must not be
shared across threads, nor survive a ``fork()``: a worker process that
inherits a store opens fresh connections).
"""

from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import orjson

from loopwatch.errors import StoreError
from loopwatch.records import (
    Fingerprint,
    LoggedRequest,
    PredictionEvent,
    RequestOutcome,
)
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import (
    EventPage,
    EventQuery,
    StoredRequest,
    decode_cursor,
    encode_cursor,
    from_micros,
    to_micros,
)
from loopwatch.stores.migrations import MIGRATIONS, statements_for

#: The columns every logged row writes.
EVENT_COLUMNS = (
    "request_id, row_index, model_name, model_version, ts, logged_at, runtime_ms, "
    "row_runtime_ms, prediction, probability, input_summary, data, request_type, "
    "client_id, fingerprint_id, replayed"
)
_EVENT_PLACEHOLDERS = ", ".join("?" * len(EVENT_COLUMNS.split(",")))
#: Rows of requests that name entities write one column more. The others leave it
#: out rather than bind a NULL: binding it cost about a tenth of the insert.
ENTITY_EVENT_COLUMNS = EVENT_COLUMNS + ", entity_id"
_ENTITY_EVENT_PLACEHOLDERS = _EVENT_PLACEHOLDERS + ", ?"
#: What an event reads back.
EVENT_READ_COLUMNS = ENTITY_EVENT_COLUMNS


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SqlStoreBase:
    """Connection handling, transactions and migrations; dialects fill in the rest."""

    dialect: str = ""
    url: str = ""

    def __init__(self) -> None:
        self._local = threading.local()
        self._pid = os.getpid()
        self._all_connections: list[Any] = []
        self._lock = threading.Lock()
        self._known_fingerprints: set[str] = set()

    # --- to be provided by a dialect -------------------------------------------------
    def _connect(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _begin(self, conn: Any, *, write: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        return statement

    def _serialize(self, cur: Any, key: str) -> None:
        """Make writers of ``key`` take turns until this transaction ends.

        SQLite's writers already take turns on the whole database; PostgreSQL takes
        an advisory lock.
        """

    def _insert_events(self, cur: Any, rows: list[tuple[Any, ...]], *, entities: bool = False) -> None:
        columns, placeholders = (
            (ENTITY_EVENT_COLUMNS, _ENTITY_EVENT_PLACEHOLDERS) if entities else (EVENT_COLUMNS, _EVENT_PLACEHOLDERS)
        )
        cur.executemany(self._sql(f"INSERT INTO events ({columns}) VALUES ({placeholders})"), rows)

    # --- connections ----------------------------------------------------------------
    def _conn(self) -> Any:
        if os.getpid() != self._pid:
            # a forked child: the parent's connections are not ours to use
            self._local = threading.local()
            self._all_connections = []
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all_connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing a connection another thread holds may fail
                pass
        self._local = threading.local()

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Any]:
        conn = self._conn()
        try:
            self._begin(conn, write=write)
            cur = conn.cursor()
            yield cur
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                self._drop_connection()
            raise
        finally:
            self._end(write=write)

    def _end(self, *, write: bool) -> None:
        """Called after every transaction, committed or not."""

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(statement), tuple(params))
            return list(cur.fetchall())

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._transaction() as cur:
            cur.execute(self._sql(statement), tuple(params))
            return int(cur.rowcount or 0)

    def ping(self) -> None:
        try:
            self._fetchall("SELECT 1")
        except Exception as exc:
            self._drop_connection()
            raise StoreError(f"database is not reachable: {exc}") from exc

    # --- migrations -----------------------------------------------------------------
    def _ensure_migrations_table(self, cur: Any) -> None:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        )

    def applied_migrations(self) -> list[int]:
        with self._transaction() as cur:
            self._ensure_migrations_table(cur)
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [int(r[0]) for r in cur.fetchall()]

    def migrate(self) -> list[int]:
        """Apply what is missing, each migration in its own transaction; return what ran."""
        ran = []
        for version, name, statements in MIGRATIONS:
            with self._transaction() as cur:
                self._ensure_migrations_table(cur)
                cur.execute(
                    self._sql("SELECT 1 FROM schema_migrations WHERE version = ?"), (version,)
                )
                if cur.fetchone():
                    continue
                for statement in statements_for(self.dialect, statements):
                    cur.execute(statement)
                cur.execute(
                    self._sql(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
                    ),
                    (version, name, to_micros(utcnow())),
                )
                ran.append(version)
        return ran


class SqlLogMixin(SqlStoreBase):
    """The prediction log, rejections and training events."""

    def write_requests(self, requests: Sequence[LoggedRequest]) -> list[RequestOutcome]:
        """Commit the requests together; each is stored whole or not at all.

        A request id already stored is not written again: with the same body the
        stored response is returned, with another body it is a conflict.

        When a request of a batch cannot be stored, the others are still
        committed (each alone) before :class:`StoreError` is raised; a retry of
        one of them then finds it stored (``duplicate``).
        """
        if not requests:
            return []
        try:
            with self._transaction() as cur:
                outcomes, new_fps = self._write_requests(cur, requests)
            self._known_fingerprints.update(new_fps)
            return outcomes
        except Exception as exc:
            if len(requests) == 1:
                raise StoreError(f"could not log the request: {exc}") from exc
        # A batch failed: write each alone so one bad request cannot sink the others;
        # each caller then learns its own request's fate.
        outcomes = []
        for request in requests:
            try:
                outcomes.extend(self.write_requests([request]))
            except StoreError as exc:
                outcomes.append(RequestOutcome("failed", error=exc.message))
        return outcomes

    def _write_requests(
        self, cur: Any, requests: Sequence[LoggedRequest]
    ) -> tuple[list[RequestOutcome], set[str]]:
        now = to_micros(utcnow())
        new_fps: set[str] = set()
        for request in requests:
            fp = request.fingerprint
            fp_id = fp.id
            if fp_id in self._known_fingerprints or fp_id in new_fps:
                continue
            cur.execute(
                self._sql(
                    "INSERT INTO fingerprints (id, content, first_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                (fp_id, dumps(fp.to_dict()).decode(), now),
            )
            new_fps.add(fp_id)
        outcomes: list[RequestOutcome] = []
        rows: list[tuple[Any, ...]] = []
        entity_rows: list[tuple[Any, ...]] = []
        insert_request = self._sql(
            "INSERT INTO requests (request_id, model_name, model_version, ts, logged_at, n_rows, "
            "runtime_ms, request_type, client_id, fingerprint_id, body_sha256, request_summary, "
            "response, replayed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        for request in requests:
            fp_id = request.fingerprint.id
            cur.execute(
                insert_request,
                (
                    request.request_id,
                    request.model_name,
                    request.model_version,
                    to_micros(request.received_at),
                    now,
                    request.n_rows,
                    request.runtime_ms,
                    request.request_type,
                    request.client_id,
                    fp_id,
                    request.body_sha256,
                    dumps(request.request_summary).decode(),
                    request.response,
                    int(request.replayed),
                ),
            )
            if cur.rowcount == 0:
                cur.execute(
                    self._sql("SELECT body_sha256, response FROM requests WHERE request_id = ?"),
                    (request.request_id,),
                )
                body_sha, response = cur.fetchone()
                same = body_sha == request.body_sha256
                outcomes.append(
                    RequestOutcome("duplicate" if same else "conflict", bytes(response))
                )
                continue
            outcomes.append(RequestOutcome("stored", request.response))
            if request.entity_ids is None:
                rows.extend(_event_rows(request, fp_id, now))
            else:
                entity_rows.extend(_event_rows(request, fp_id, now))
        if rows:
            self._insert_events(cur, rows)
        if entity_rows:
            self._insert_events(cur, entity_rows, entities=True)
        return outcomes, new_fps

    def get_request(self, request_id: str) -> StoredRequest | None:
        found = self._fetchall(
            "SELECT request_id, model_name, model_version, body_sha256, response, n_rows "
            "FROM requests WHERE request_id = ?",
            (request_id,),
        )
        if not found:
            return None
        r = found[0]
        return StoredRequest(r[0], r[1], int(r[2]), r[3], bytes(r[4]), int(r[5]))

    def query_events(self, query: EventQuery) -> EventPage:
        where, params = _event_filters(query)
        if query.cursor:
            ts, rid, row = decode_cursor(query.cursor)
            where.append("(ts, request_id, row_index) > (?, ?, ?)")
            params.extend([ts, rid, row])
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        limit = max(1, int(query.limit))
        found = self._fetchall(
            f"SELECT {EVENT_READ_COLUMNS} FROM events {clause} "
            "ORDER BY ts, request_id, row_index LIMIT ?",
            [*params, limit + 1],
        )
        more = len(found) > limit
        found = found[:limit]
        events = [_event_from_row(r) for r in found]
        cursor = None
        if more and found:
            last = found[-1]
            cursor = encode_cursor(int(last[4]), last[0], int(last[1]))
        return EventPage(events, cursor)

    def iter_events(self, query: EventQuery) -> Iterator[PredictionEvent]:
        page_query = query
        while True:
            page = self.query_events(page_query)
            yield from page.events
            if page.next_cursor is None:
                return
            page_query = EventQuery(**{**page_query.__dict__, "cursor": page.next_cursor})

    def count_events(self, model_name: str | None = None) -> int:
        if model_name is None:
            return int(self._fetchall("SELECT COUNT(*) FROM events")[0][0])
        return int(
            self._fetchall("SELECT COUNT(*) FROM events WHERE model_name = ?", (model_name,))[0][0]
        )

    def delete_request(self, request_id: str) -> int:
        """Erase a request: its events, their labels (with every revision) and the request."""
        with self._transaction() as cur:
            cur.execute(self._sql("DELETE FROM events WHERE request_id = ?"), (request_id,))
            deleted = int(cur.rowcount or 0)
            for table in ("labels", "label_revisions", "requests"):
                cur.execute(self._sql(f"DELETE FROM {table} WHERE request_id = ?"), (request_id,))
            return deleted

    def apply_retention(self, now: datetime) -> dict[str, int]:
        """Delete the requests each model logged longer ago than its retention period,
        with their events and labels; return the deleted events per model.

        Age is counted from ``logged_at`` (when the store committed the request), not
        from the event time: a backfill of last year's traffic replayed today is data
        the user just brought in, and is kept for the whole period like any other.
        """
        out: dict[str, int] = {}
        models = self._fetchall(
            "SELECT name, retention_days FROM models WHERE retention_days IS NOT NULL"
        )
        expired = "SELECT request_id FROM requests WHERE model_name = ? AND logged_at < ?"
        for name, days in models:
            cutoff = to_micros(now) - int(days) * 86_400_000_000
            with self._transaction() as cur:
                # a label whose prediction is gone goes with it
                for table in ("labels", "label_revisions"):
                    cur.execute(self._sql(f"DELETE FROM {table} WHERE request_id IN ({expired})"), (name, cutoff))
                cur.execute(self._sql(f"DELETE FROM events WHERE request_id IN ({expired})"), (name, cutoff))
                out[name] = int(cur.rowcount or 0)
                cur.execute(self._sql("DELETE FROM requests WHERE model_name = ? AND logged_at < ?"), (name, cutoff))
        return out

    def get_fingerprint(self, fingerprint_id: str) -> Fingerprint | None:
        found = self._fetchall("SELECT content FROM fingerprints WHERE id = ?", (fingerprint_id,))
        return Fingerprint(**loads(found[0][0])) if found else None


def _event_rows(request: LoggedRequest, fp_id: str, logged_at: int) -> list[tuple[Any, ...]]:
    # This runs once per logged row while holding the interpreter lock that the
    # request threads need too, so it calls orjson directly and encodes each row
    # summary object once (rows that miss nothing share one object).
    encode = orjson.dumps
    n = request.n_rows
    row_runtime = request.runtime_ms / n
    base_ts = to_micros(request.received_at)
    stamps = request.timestamps
    probabilities = request.probabilities
    data = request.data
    predictions = request.predictions
    summary_json: dict[int, str] = {}
    summaries = []
    for summary in request.row_summaries:
        key = id(summary)
        text = summary_json.get(key)
        if text is None:
            text = summary_json[key] = encode(summary).decode()
        summaries.append(text)
    head = (request.request_id,)
    model = (request.model_name, request.model_version)
    tail = (request.request_type, request.client_id, fp_id, int(request.replayed))
    rows: list[tuple[Any, ...]] = [
        (
            *head,
            i,
            *model,
            to_micros(stamps[i]) if stamps is not None else base_ts,
            logged_at,
            request.runtime_ms,
            row_runtime,
            encode(predictions[i]).decode(),
            encode(probabilities[i]).decode() if probabilities is not None else None,
            summaries[i],
            encode(data[i]).decode() if data is not None else None,
            *tail,
        )
        for i in range(n)
    ]
    if request.entity_ids is not None:  # one column more: ENTITY_EVENT_COLUMNS
        rows = [(*row, entity) for row, entity in zip(rows, request.entity_ids)]
    return rows


def _event_filters(query: EventQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("model_name", query.model_name),
        ("model_version", query.model_version),
        ("request_id", query.request_id),
        ("client_id", query.client_id),
        ("request_type", query.request_type),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        where.append("ts >= ?")
        params.append(to_micros(query.since))
    if query.until is not None:
        where.append("ts < ?")
        params.append(to_micros(query.until))
    return where, params


def _event_from_row(r: Sequence[Any]) -> PredictionEvent:
    return PredictionEvent(
        request_id=r[0],
        row_index=int(r[1]),
        model_name=r[2],
        model_version=int(r[3]),
        timestamp=from_micros(int(r[4])),
        logged_at=from_micros(int(r[5])),
        # an ingested event whose sender reported no latency: not measured, not fast
        runtime_ms=float(r[6]) if r[6] >= 0 else math.nan,
        row_runtime_ms=float(r[7]) if r[7] >= 0 else math.nan,
        prediction=loads(r[8]),
        probability=loads(r[9]) if r[9] is not None else None,
        input_data_summary=loads(r[10]),
        data=loads(r[11]) if r[11] is not None else None,
        request_type=r[12],
        client_id=r[13],
        fingerprint_id=r[14],
        replayed=bool(r[15]),
        entity_id=r[16],
    )
