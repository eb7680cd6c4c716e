"""Window summaries in SQL (migration 12): one row per model, kind of window, start and version,
and per model the watermark of the log summarised so far.

**Encoding.** A payload is the summary's :meth:`~loopwatch.summaries.window.WindowSummary.to_dict`
as compact JSON, compressed with zlib (``encoding = 'json+zlib/1'``; the ``1`` is the dict's
own ``format``). JSON because every part already serialises to JSON-safe values (sketches as
base64 of DataSketches' own portable binary form), so any language can read a payload with a
JSON parser and zlib; zlib because it is in every standard library and the JSON of counts,
sums and row samples compresses about four to one. The encoding column lets a later form be
read beside this one.

**Writers.** Summary writes are small transactions of their own: in SQLite they take the same
write lock every writer of the database takes (the file lock and ``BEGIN IMMEDIATE``, see
:mod:`loopwatch.stores.sqlite`), so they take turns with the group-commit writer's batches
rather than run beside them; in PostgreSQL a per-model advisory lock makes two summarisers
of one model take turns. :meth:`merge_window_summaries` reads, merges and writes in one
transaction, and advances the watermark in the same one, so a crash leaves either both or
neither.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from loopwatch.errors import Conflict, InvalidInput, StoreError
from loopwatch.records import EventColumns, PredictionEvent
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import EVENT_READ_COLUMNS, SqlStoreBase, _event_from_row, utcnow
from loopwatch.summaries.window import HOUR_SAMPLE_ROWS, WindowSummary, merge_all

ENCODING = "json+zlib/1"
#: The kinds of stored window: the base window, and days rolled up from it.
KINDS = ("hour", "day")
_COLUMNS = "model_name, model_version, kind, window_start, window_end, layout_id, encoding, payload, n_rows, built_at"


def encode_summary(summary: WindowSummary) -> bytes:
    """A summary as stored: its dict as compact JSON, zlib-compressed."""
    # level 1: about as small on this JSON (digits and base64) as the default, several times faster
    return zlib.compress(dumps(summary.to_dict()), 1)


def decode_summary(payload: bytes, encoding: str = ENCODING) -> WindowSummary:
    if encoding != ENCODING:
        raise StoreError(f"a window summary is stored as {encoding!r}, which this version cannot read")
    try:
        data = loads(zlib.decompress(bytes(payload)))
    except (zlib.error, ValueError) as exc:
        raise StoreError(f"a stored window summary is damaged: {exc}") from exc
    return WindowSummary.from_dict(data)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"a summary's kind of window is one of {', '.join(KINDS)}, got {kind!r}")
    return kind


class SqlSummariesMixin(SqlStoreBase):
    def _summary_row(self, summary: WindowSummary, kind: str, now: int) -> tuple[Any, ...]:
        # hours keep a short sample (days merged from them fill it again); days keep all of it
        kept = summary.stored(HOUR_SAMPLE_ROWS if kind == "hour" else None)
        return (summary.model, summary.version, kind, to_micros(summary.start), to_micros(summary.end),
                summary.layout_id, ENCODING, encode_summary(kept), summary.n, now)

    def _merge_into(self, cur: Any, model_name: str, summaries: Sequence[WindowSummary], kind: str, now: int) -> None:
        """Merge each summary into the stored window of its kind, start and version (or store it)."""
        for summary in summaries:
            cur.execute(
                self._sql("SELECT payload, encoding FROM window_summaries WHERE model_name = ? AND kind = ? "
                          "AND window_start = ? AND model_version = ?"),
                (model_name, kind, to_micros(summary.start), summary.version),
            )
            found = cur.fetchone()
            merged = summary if found is None else \
                replace(decode_summary(found[0], found[1]), model=model_name).merge(summary)
            self._upsert_summary(cur, self._summary_row(merged, kind, now))

    def _upsert_summary(self, cur: Any, row: tuple[Any, ...]) -> None:
        cur.execute(
            self._sql(
                f"INSERT INTO window_summaries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (model_name, kind, window_start, model_version) DO UPDATE SET "
                "window_end = excluded.window_end, layout_id = excluded.layout_id, encoding = excluded.encoding, "
                "payload = excluded.payload, n_rows = excluded.n_rows, built_at = excluded.built_at"
            ),
            row,
        )

    def merge_window_summaries(
        self, model_name: str, summaries: Sequence[WindowSummary], *, kind: str = "hour",
        logged_through: int | None = None, check_watermark: bool = False, watermark: int | None = None,
    ) -> int:
        """Merge ``summaries`` into the stored ones of the same window (stored as they are where
        there is none), and advance the model's watermark to ``logged_through`` (microseconds of
        ``logged_at``; never backwards), all in one transaction. Returns the windows written.
        A stored window on another layout (an older reference) is refused: rebuild the version.

        ``check_watermark``: write only if the watermark is still ``watermark`` (what the caller
        read the events after), else raise :class:`~loopwatch.errors.Conflict` and write nothing:
        two summarisers of one model (two service workers) never count a batch twice."""
        key_text(model_name, "model")
        _kind(kind)
        if any(s.model != model_name for s in summaries):
            raise InvalidInput("every summary must be of the model it is stored under")
        now = to_micros(utcnow())
        with self._transaction() as cur:
            self._serialize(cur, f"summaries:{model_name}")
            if check_watermark:
                cur.execute(self._sql("SELECT logged_through FROM summary_watermarks WHERE model_name = ?"),
                            (model_name,))
                row = cur.fetchone()
                current = None if row is None else int(row[0])
                if current != watermark:
                    raise Conflict(f"the summaries of {model_name!r} moved on (another summariser ran)")
            self._merge_into(cur, model_name, summaries, kind, now)
            if logged_through is not None:
                self._advance_watermark(cur, model_name, logged_through, now)
        return len(summaries)

    def roll_up_hours(self, model_name: str, days: Sequence[WindowSummary],
                      hours: Sequence[tuple[int, datetime]]) -> int:
        """Merge ``days`` into the stored daily windows and delete the hourly windows they were
        merged from (``hours``: version and start), in one transaction: a reader sees each hour
        either as an hour or inside its day, never both and never neither. Returns the hours
        deleted."""
        key_text(model_name, "model")
        if any(s.model != model_name for s in days):
            raise InvalidInput("every summary must be of the model it is stored under")
        now = to_micros(utcnow())
        with self._transaction() as cur:
            self._serialize(cur, f"summaries:{model_name}")
            self._merge_into(cur, model_name, days, "day", now)
            deleted = 0
            for version, start in hours:
                cur.execute(
                    self._sql("DELETE FROM window_summaries WHERE model_name = ? AND kind = 'hour' "
                              "AND window_start = ? AND model_version = ?"),
                    (model_name, to_micros(start), int(version)),
                )
                deleted += max(cur.rowcount, 0)
        return deleted

    def window_parts(
        self, model_name: str, *, start: datetime, end: datetime, version: int,
    ) -> list[tuple[str, WindowSummary]]:
        """The stored hourly and daily windows of one version that start in ``[start, end)``,
        with their kind, read in one statement: one snapshot, so an hour rolled up meanwhile is
        read once, as an hour or inside its day."""
        where, params = _window_filter(model_name, "hour", version, (start, "start"), (end, "end"))
        where[1] = "kind IN ('hour', 'day')"
        params.pop(1)
        rows = self._fetchall(
            f"SELECT kind, payload, encoding FROM window_summaries WHERE {' AND '.join(where)} "
            "ORDER BY window_start, kind", params)
        return [(str(kind), replace(decode_summary(payload, encoding), model=model_name))
                for kind, payload, encoding in rows]

    def put_window_summaries(self, model_name: str, summaries: Sequence[WindowSummary], *, kind: str = "hour") -> int:
        """Store ``summaries`` in place of whatever their windows held (a rebuilt window, a window
        whose label join was rebuilt, a window after a deletion)."""
        key_text(model_name, "model")
        _kind(kind)
        if any(s.model != model_name for s in summaries):
            raise InvalidInput("every summary must be of the model it is stored under")
        now = to_micros(utcnow())
        with self._transaction() as cur:
            self._serialize(cur, f"summaries:{model_name}")
            for summary in summaries:
                self._upsert_summary(cur, self._summary_row(summary, kind, now))
        return len(summaries)

    def window_summaries(
        self, model_name: str, *, kind: str = "hour", start: datetime | None = None, end: datetime | None = None,
        version: int | None = None,
    ) -> list[WindowSummary]:
        """The stored windows of ``kind`` that start in ``[start, end)``, by start then version."""
        where, params = _window_filter(model_name, kind, version, (start, "start"), (end, "end"))
        rows = self._fetchall(
            f"SELECT payload, encoding FROM window_summaries WHERE {' AND '.join(where)} "
            "ORDER BY window_start, model_version", params)
        return [replace(decode_summary(payload, encoding), model=model_name) for payload, encoding in rows]

    def summary_spans(
        self, model_name: str, *, kind: str = "hour", start: datetime | None = None, end: datetime | None = None,
        version: int | None = None,
    ) -> list[tuple[int, datetime, datetime]]:
        """(version, start, end) of the stored windows :meth:`window_summaries` would return, read
        from their columns: which windows there are, without decoding one."""
        where, params = _window_filter(model_name, kind, version, (start, "start"), (end, "end"))
        rows = self._fetchall(
            f"SELECT model_version, window_start, window_end FROM window_summaries WHERE {' AND '.join(where)} "
            "ORDER BY window_start, model_version", params)
        return [(int(v), from_micros(int(a)), from_micros(int(b))) for v, a, b in rows]

    def summary_layouts(self, model_name: str) -> dict[int, set[str]]:
        """Each version's layout ids among its stored hourly windows, read from their column (no
        payload is decoded: the summariser checks them on every run)."""
        rows = self._fetchall(
            "SELECT DISTINCT model_version, layout_id FROM window_summaries WHERE model_name = ? AND kind = ?",
            [model_name, "hour"])
        out: dict[int, set[str]] = {}
        for version, layout in rows:
            out.setdefault(int(version), set()).add(str(layout))
        return out

    def read_window(
        self, model_name: str, *, version: int, start: datetime, end: datetime,
    ) -> WindowSummary | None:
        """One version's events over ``[start, end)``, merged on read from its stored windows:
        the days wholly inside it and every hour (a day or a week, or any span of whole hours).
        An hour still stored as an hour is in no day (a roll-up deletes the hours it merges), so
        the events that arrived for a rolled-up day later are read from their hours. ``None``
        when nothing is stored."""
        parts = [part for kind, part in self.window_parts(model_name, start=start, end=end, version=version)
                 if kind == "hour" or part.end <= end]
        return merge_all(sorted(parts, key=lambda s: s.start)) if parts else None

    def delete_window_summaries(
        self, model_name: str, *, kind: str = "hour", before: datetime | None = None, version: int | None = None,
        since: datetime | None = None,
    ) -> int:
        """Delete the stored windows of ``kind`` that start in ``[since, before)`` (either end open
        when not given), of one version or all: retention, and a rebuild's first step."""
        where, params = _window_filter(model_name, kind, version, (since, "since"), (before, "before"))
        return self._execute(f"DELETE FROM window_summaries WHERE {' AND '.join(where)}", params)

    def summarised_models(self) -> list[str]:
        """The models with stored summaries or a watermark."""
        rows = self._fetchall("SELECT model_name FROM summary_watermarks UNION SELECT DISTINCT model_name "
                              "FROM window_summaries ORDER BY 1")
        return [str(r[0]) for r in rows]

    # --- the watermark ----------------------------------------------------------------

    def summary_watermark(self, model_name: str) -> int | None:
        """The ``logged_at`` (microseconds) through which the model's log is summarised, if any."""
        rows = self._fetchall("SELECT logged_through FROM summary_watermarks WHERE model_name = ?", (model_name,))
        return int(rows[0][0]) if rows else None

    def set_summary_watermark(self, model_name: str, logged_through: int | None) -> None:
        """Set the watermark (``None`` removes it: the next run summarises the log from its start)."""
        key_text(model_name, "model")
        with self._transaction() as cur:
            self._serialize(cur, f"summaries:{model_name}")
            if logged_through is None:
                cur.execute(self._sql("DELETE FROM summary_watermarks WHERE model_name = ?"), (model_name,))
            else:
                cur.execute(self._sql("DELETE FROM summary_watermarks WHERE model_name = ?"), (model_name,))
                self._advance_watermark(cur, model_name, logged_through, to_micros(utcnow()))

    def label_watermark(self, model_name: str) -> int | None:
        """The ``received_at`` (microseconds) through which labels are in the windows' label parts."""
        rows = self._fetchall("SELECT labels_through FROM summary_watermarks WHERE model_name = ?", (model_name,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def set_label_watermark(self, model_name: str, labels_through: int) -> None:
        """Move the label watermark (the log's watermark must exist: labels join summarised events)."""
        self._execute("UPDATE summary_watermarks SET labels_through = ? WHERE model_name = ?",
                      (int(labels_through), model_name))

    def labelled_windows(
        self, model_name: str, *, received_after: int | None, received_through: int, length_us: int, origin_us: int,
    ) -> list[tuple[int, int]]:
        """(version, window start in microseconds) of every window of ``length_us`` (aligned on
        ``origin_us``) holding a prediction whose label arrived or changed in the given span."""
        low = -(2**63) if received_after is None else int(received_after)
        rows = self._fetchall(
            "SELECT DISTINCT model_version, (prediction_time - ?) / ? FROM labels WHERE model_name = ? "
            "AND received_at > ? AND received_at <= ? AND prediction_time >= ?",
            (int(origin_us), int(length_us), model_name, low, int(received_through), int(origin_us)))
        return sorted((int(v), int(origin_us) + int(k) * int(length_us)) for v, k in rows)

    def latest_label_time(self, model_name: str) -> int | None:
        """The latest time an outcome of the model's predictions became known (microseconds)."""
        rows = self._fetchall("SELECT MAX(label_time) FROM labels WHERE model_name = ?", (model_name,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def latest_label_received(self, model_name: str) -> int | None:
        rows = self._fetchall("SELECT MAX(received_at) FROM labels WHERE model_name = ?", (model_name,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def count_labels_between(self, model_name: str, *, start: datetime, end: datetime) -> int:
        """Labels of predictions whose event time lies in ``[start, end)``."""
        rows = self._fetchall(
            "SELECT COUNT(*) FROM labels WHERE model_name = ? AND prediction_time >= ? AND prediction_time < ?",
            (model_name, to_micros(start), to_micros(end)))
        return int(rows[0][0])

    def _advance_watermark(self, cur: Any, model_name: str, logged_through: int, now: int) -> None:
        cur.execute(
            self._sql(
                "INSERT INTO summary_watermarks (model_name, logged_through, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (model_name) DO UPDATE SET logged_through = CASE WHEN "
                "excluded.logged_through > summary_watermarks.logged_through THEN excluded.logged_through "
                "ELSE summary_watermarks.logged_through END, updated_at = excluded.updated_at"
            ),
            (model_name, int(logged_through), now),
        )

    def iter_events_logged(
        self, model_name: str, *, after: int | None, through: int, batch_requests: int = 2000,
    ) -> Iterator[tuple[list[PredictionEvent], int]]:
        """The model's events whose request the store committed in ``(after, through]`` (``logged_at``
        in microseconds), in the order they were logged, in batches of about ``batch_requests``
        requests, each with the ``logged_at`` it reaches: a batch never splits the requests of one
        ``logged_at`` (one commit), so the summary of every batch through it is complete."""
        columns = ", ".join(f"e.{c.strip()}" for c in EVENT_READ_COLUMNS.split(","))
        for rows, reached in self._logged_batches(model_name, columns, after=after, through=through,
                                                  batch_requests=batch_requests):
            yield [_event_from_row(r) for r in rows], reached

    def iter_event_columns_logged(
        self, model_name: str, *, after: int | None, through: int, batch_requests: int = 2000,
    ) -> Iterator[tuple[EventColumns, int]]:
        """:meth:`iter_events_logged`'s batches (the same events in the same order), column by
        column: what the summariser reads, without a record per event. Each JSON column of a
        batch is decoded in one call (a per-event decode cost more than the summary it fed)."""
        for rows, reached in self._logged_batches(model_name, _SUMMARY_COLUMNS, after=after, through=through,
                                                  batch_requests=batch_requests):
            yield _event_columns(rows), reached

    def _logged_batches(
        self, model_name: str, columns: str, *, after: int | None, through: int, batch_requests: int,
    ) -> Iterator[tuple[list[Sequence[Any]], int]]:
        low = -(2**63) if after is None else int(after)
        while True:
            requests = self._fetchall(
                "SELECT logged_at, request_id, COALESCE(n_rows, 1) FROM requests WHERE model_name = ? "
                "AND logged_at > ? AND logged_at <= ? ORDER BY logged_at, request_id LIMIT ?",
                [model_name, low, int(through), int(batch_requests)])
            if not requests:
                return
            cut = _cut_at_commit(requests, BATCH_EVENTS)
            if cut is not None:
                requests = requests[:cut]
            reached = int(requests[-1][0])
            if cut is None and len(requests) == batch_requests:  # the rest of the last commit's requests too
                requests += self._fetchall(
                    "SELECT logged_at, request_id, COALESCE(n_rows, 1) FROM requests WHERE model_name = ? "
                    "AND logged_at = ? AND request_id > ? ORDER BY request_id",
                    [model_name, reached, str(requests[-1][1])])
            rows: list[Sequence[Any]] = []
            ids = [str(r[1]) for r in requests]
            for lo in range(0, len(ids), 500):  # bound the statement's parameters
                chunk = ids[lo:lo + 500]
                rows.extend(self._fetchall(
                    f"SELECT {columns} FROM events e WHERE e.request_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY e.request_id, e.row_index", chunk))
            yield rows, reached
            low = reached

    def iter_window_events(
        self, model_name: str, *, version: int, start: datetime, end: datetime, logged_through: int,
    ) -> list[PredictionEvent]:
        """One version's events of event time in ``[start, end)`` whose request the store committed
        at or before ``logged_through``: what the stored summary of that window holds."""
        columns = ", ".join(f"e.{c.strip()}" for c in EVENT_READ_COLUMNS.split(","))
        rows = self._fetchall(
            f"SELECT {columns} FROM events e JOIN requests r ON r.request_id = e.request_id "
            "WHERE e.model_name = ? AND e.model_version = ? AND e.ts >= ? AND e.ts < ? AND r.logged_at <= ? "
            "ORDER BY e.ts, e.request_id, e.row_index",
            [model_name, int(version), to_micros(start), to_micros(end), int(logged_through)])
        return [_event_from_row(r) for r in rows]

    def count_events_logged(self, model_name: str, *, through: int) -> int:
        """The model's events whose request the store committed at or before ``through``
        (``logged_at`` in microseconds): what a snapshot of the log taken then holds."""
        rows = self._fetchall(
            "SELECT COUNT(*) FROM events e JOIN requests r ON r.request_id = e.request_id "
            "WHERE r.model_name = ? AND r.logged_at <= ?", (model_name, int(through)))
        return int(rows[0][0])

    def request_logged_at(self, request_id: str) -> int | None:
        """When the store committed ``request_id`` (``logged_at`` of its request, in microseconds;
        its events carry a stamp taken a moment earlier in the same transaction), if it holds it."""
        rows = self._fetchall("SELECT logged_at FROM requests WHERE request_id = ?", (request_id,))
        return None if not rows else int(rows[0][0])

    def latest_logged_at(self, model_name: str) -> int | None:
        """The newest ``logged_at`` of the model's requests (microseconds), if any."""
        rows = self._fetchall("SELECT MAX(logged_at) FROM requests WHERE model_name = ?", (model_name,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])


#: What :meth:`SqlSummariesMixin.iter_event_columns_logged` reads of an event (see _event_columns).
_SUMMARY_COLUMNS = ("e.request_id, e.row_index, e.model_version, e.ts, e.runtime_ms, e.row_runtime_ms, e.prediction, "
                    "e.probability, e.input_summary, e.data, e.request_type, e.client_id, e.fingerprint_id")


def _event_columns(rows: Sequence[Sequence[Any]]) -> EventColumns:
    """Rows of :data:`_SUMMARY_COLUMNS` as columns, their JSON decoded as :func:`_event_from_row`
    decodes it."""
    if not rows:
        return EventColumns(request_id=[], row_index=[], model_version=[], timestamp_us=[], runtime_ms=[],
                            row_runtime_ms=[], prediction=[], probability=[], data=[], adversarial=[],
                            request_type=[], client_id=[], fingerprint_id=[])
    (request_id, row_index, version, ts, runtime, row_runtime, prediction, probability, summary, data,
     request_type, client_id, fingerprint_id) = zip(*rows)
    # the evasion flag is the only part of an input summary read here: decode only the summaries holding one
    adversarial = [None if "adversarial" not in text else loads(text).get("adversarial")
                   for text in map(_text, summary)]
    return EventColumns(
        request_id=request_id, row_index=[int(i) for i in row_index], model_version=[int(v) for v in version],
        timestamp_us=[int(t) for t in ts], runtime_ms=[float(v) for v in runtime],
        row_runtime_ms=[float(v) for v in row_runtime],
        prediction=[p[0] if p else None for p in _loads_all(prediction)], probability=_loads_all(probability),
        data=_loads_all(data), adversarial=adversarial, request_type=request_type, client_id=client_id,
        fingerprint_id=fingerprint_id,
    )


def _text(value: str | bytes | memoryview) -> str:
    return value if isinstance(value, str) else bytes(value).decode()


def _loads_all(texts: Sequence[str | bytes | None]) -> list[Any]:
    """Each JSON text decoded (``None`` stays ``None``). The decoder is called directly (its
    wrapper's cost shows at a million events); a damaged text is decoded again through the
    wrapper, whose error says what is wrong."""
    try:
        return [None if t is None else orjson.loads(t) for t in texts]
    except orjson.JSONDecodeError:
        return [None if t is None else loads(t) for t in texts]


#: Events a batch of the log holds at most, unless one commit holds more: an ingested file
#: commits thousands of rows in one request, so a count of requests alone does not bound a batch.
BATCH_EVENTS = 20_000


def _cut_at_commit(requests: Sequence[Sequence[Any]], most: int) -> int | None:
    """How many of ``requests`` (logged_at, request_id, rows), in log order, make a batch of about
    ``most`` events that ends at a commit's end (a batch never splits one commit's requests);
    ``None`` when they all fit.

    >>> _cut_at_commit([(1, "a", 10), (1, "b", 10), (2, "c", 10), (3, "d", 10)], 15)
    2
    >>> _cut_at_commit([(1, "a", 10), (2, "b", 10)], 100) is None
    True
    """
    total = 0
    for i, (logged_at, _, n_rows) in enumerate(requests):
        total += int(n_rows)
        if total >= most and i + 1 < len(requests) and requests[i + 1][0] != logged_at:
            return i + 1
    return None


def _window_filter(
    model_name: str, kind: str, version: int | None,
    since: tuple[datetime | None, str], before: tuple[datetime | None, str],
) -> tuple[list[str], list[Any]]:
    """The WHERE terms (and their parameters) of a model's stored windows of ``kind`` that start
    in ``[since, before)``, either end open, of one version or all."""
    key_text(model_name, "model")
    where: list[str] = ["model_name = ?", "kind = ?"]
    params: list[Any] = [model_name, _kind(kind)]
    for (moment, name), op in ((since, ">="), (before, "<")):
        if moment is not None:
            where.append(f"window_start {op} ?")
            params.append(to_micros(utc_moment(moment, name)))
    if version is not None:
        where.append("model_version = ?")
        params.append(int(version))
    return where, params
