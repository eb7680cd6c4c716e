"""Labels and business metrics in SQL.

``labels`` holds the current label of each labelled prediction row and
``label_revisions`` every label the row ever had (revision 0 first), with the
times it came with. A label finds its row by request id and row index, or by
entity id: the latest prediction for that entity made at or before the
label's time, else the latest one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Iterator, Literal, Sequence

from loopwatch.errors import InvalidInput, StoreError, echo
from loopwatch.records import BusinessObservation, Label, LabelOutcome, StoredLabel
from loopwatch.records.events import SHADOW_REQUEST_TYPE
from loopwatch.records.feedback import same_label
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase, utcnow

_LABEL_COLUMNS = (
    "model_name, request_id, row_index, entity_id, model_version, label, label_time, "
    "prediction_time, client_id, received_at, revision"
)
#: Rows per page when iterating labels.
LABEL_PAGE_ROWS = 10_000
#: Windows are aligned on the first Monday after the epoch, as monitoring windows are.
EPOCH_MONDAY_MICROS = 4 * 86_400_000_000
#: From the first Monday after the epoch back past 0001-01-01, the earliest time there is.
_ORIGIN_SPAN_MICROS = 62_200_000_000 * 1_000_000

#: (request_id, row_index, model_version, prediction ts, entity id) of a labelled row.
_Target = tuple[str, int, int, int, "str | None"]


class SqlFeedbackMixin(SqlStoreBase):
    # --- labels ---------------------------------------------------------------------
    def write_labels(self, labels: Sequence[Label]) -> list[LabelOutcome]:
        """Store each label on the prediction row it names, in one transaction.

        Rows are written in key order (not arrival order) so that two batches
        labelling the same rows cannot deadlock; labels of one row keep their order.
        """
        if not labels:
            return []
        now = to_micros(utcnow())
        outcomes: list[LabelOutcome | None] = [None] * len(labels)
        with self._transaction() as cur:
            targets = [self._resolve_label(cur, label) for label in labels]
            order = sorted(
                range(len(labels)),
                key=lambda i: (0, t[0], t[1]) if not isinstance(t := targets[i], str) else (1, "", 0),
            )
            for i in order:
                target, label = targets[i], labels[i]
                if isinstance(target, str):
                    outcomes[i] = LabelOutcome(
                        "unmatched", label.request_id, label.row_index, error=target
                    )
                else:
                    outcomes[i] = self._write_label(cur, label, target, now)
        return [o for o in outcomes if o is not None]

    def _resolve_label(self, cur: Any, label: Label) -> _Target | str:
        """The row a label names, or why there is none."""
        if label.entity_id is None:
            cur.execute(
                self._sql(
                    "SELECT model_name, model_version, ts, entity_id, request_type FROM events "
                    "WHERE request_id = ? AND row_index = ?"
                ),
                (label.request_id, label.row_index),
            )
            found = cur.fetchone()
            if found is None or found[0] != label.model_name:
                return (
                    f"no prediction of model {echo(label.model_name)} with request id "
                    f"{echo(label.request_id)} and row {label.row_index}"
                )
            if found[4] == SHADOW_REQUEST_TYPE:  # the outcome belongs to the served prediction
                return (f"request {echo(label.request_id)} is a candidate's shadow, which answered no one: "
                        "label the served request it shadows")
            return (str(label.request_id), int(label.row_index or 0), int(found[1]), int(found[2]), found[3])
        latest = (
            "SELECT request_id, row_index, model_version, ts FROM events "
            "WHERE model_name = ? AND entity_id = ? {} ORDER BY ts DESC, request_id DESC, "
            "row_index DESC LIMIT 1"
        )
        cur.execute(
            self._sql(latest.format("AND ts <= ?")),
            (label.model_name, label.entity_id, to_micros(label.label_time)),
        )
        found = cur.fetchone()
        if found is None:
            # every prediction for the entity came after the label's time: take the latest
            cur.execute(self._sql(latest.format("")), (label.model_name, label.entity_id))
            found = cur.fetchone()
        if found is None:
            return f"no prediction of model {echo(label.model_name)} for entity {echo(label.entity_id)}"
        return (found[0], int(found[1]), int(found[2]), int(found[3]), label.entity_id)

    def _write_label(self, cur: Any, label: Label, target: _Target, now: int) -> LabelOutcome:
        request_id, row_index, version, prediction_ts, entity_id = target
        value = dumps(label.label).decode()
        received = now if label.received_at is None else to_micros(label.received_at)
        label_time = to_micros(label.label_time)

        def record(revision: int) -> tuple[Any, ...]:
            return (
                label.model_name, request_id, row_index, entity_id, version, value, label_time,
                prediction_ts, label.client_id, received, revision,
            )

        insert_revision = self._sql(
            f"INSERT INTO label_revisions ({_LABEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        # a concurrent writer may label the row between our statements (PostgreSQL):
        # the insert and the update are both conditional, so we loop until one holds
        for _ in range(20):
            cur.execute(
                self._sql(
                    f"INSERT INTO labels ({_LABEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (request_id, row_index) DO NOTHING"
                ),
                record(0),
            )
            if cur.rowcount == 1:
                cur.execute(insert_revision, record(0))
                return LabelOutcome("stored", request_id, row_index)
            cur.execute(
                self._sql("SELECT label, revision FROM labels WHERE request_id = ? AND row_index = ?"),
                (request_id, row_index),
            )
            current = cur.fetchone()
            if current is None:
                continue  # deleted meanwhile: insert again
            if same_label(loads(current[0]), label.label):
                return LabelOutcome("duplicate", request_id, row_index)
            revision = int(current[1]) + 1
            cur.execute(
                self._sql(
                    "UPDATE labels SET label = ?, label_time = ?, client_id = ?, received_at = ?, "
                    "revision = ?, entity_id = ?, model_version = ?, prediction_time = ? "
                    "WHERE request_id = ? AND row_index = ? AND revision = ?"
                ),
                (
                    value, label_time, label.client_id, received, revision, entity_id, version,
                    prediction_ts, request_id, row_index, revision - 1,
                ),
            )
            if cur.rowcount == 1:
                cur.execute(insert_revision, record(revision))
                return LabelOutcome("corrected", request_id, row_index)
        raise StoreError(f"could not label request {echo(request_id)} row {row_index}: too much contention")

    def iter_labels(
        self,
        model_name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Literal["label_time", "prediction_time"] = "label_time",
    ) -> Iterator[StoredLabel]:
        """Current labels ordered by ``by`` time then ``received_at``; ``since`` <= time < ``until``."""
        if by not in ("label_time", "prediction_time"):
            raise InvalidInput("by must be label_time or prediction_time")
        where, params = _time_range(model_name, by, since, until)
        return self._label_pages(by, where, params)

    def _label_pages(self, by: str, where: list[str], params: list[Any]) -> Iterator[StoredLabel]:
        position: tuple[int, int, str, int] | None = None
        while True:
            page_where = list(where)
            page_params: list[Any] = list(params)
            if position is not None:
                page_where.append(f"({by}, received_at, request_id, row_index) > (?, ?, ?, ?)")
                page_params.extend(position)
            found = self._fetchall(
                f"SELECT {_LABEL_COLUMNS} FROM labels WHERE {' AND '.join(page_where)} "
                f"ORDER BY {by}, received_at, request_id, row_index LIMIT ?",
                [*page_params, LABEL_PAGE_ROWS],
            )
            for row in found:
                yield _label_from_row(row)
            if len(found) < LABEL_PAGE_ROWS:
                return
            last = found[-1]
            time_index = 6 if by == "label_time" else 7
            position = (int(last[time_index]), int(last[9]), last[1], int(last[2]))

    def iter_label_revisions(
        self, model_name: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredLabel]:
        """Every label as it was sent (corrected ones too), in label-time order; ``since``
        inclusive, ``until`` exclusive. A source's labels that others later corrected are here."""
        where, params = _time_range(model_name, "label_time", since, until)
        found = self._fetchall(
            f"SELECT {_LABEL_COLUMNS} FROM label_revisions WHERE {' AND '.join(where)} "
            "ORDER BY label_time, received_at, request_id, row_index, revision",
            tuple(params),
        )
        return iter([_label_from_row(row) for row in found])

    def label_history(self, model_name: str, request_id: str, row_index: int) -> list[StoredLabel]:
        """Every label the row has had, oldest first (empty when it has none)."""
        found = self._fetchall(
            f"SELECT {_LABEL_COLUMNS} FROM label_revisions "
            "WHERE model_name = ? AND request_id = ? AND row_index = ? ORDER BY revision",
            (model_name, request_id, row_index),
        )
        return [_label_from_row(row) for row in found]

    def count_events_by_window(
        self,
        model_name: str,
        *,
        length: timedelta,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[datetime, int]]:
        """Served predictions per window of event time: (window start, count), in time order.

        Windows are ``length`` long and aligned like monitoring windows (on the
        first Monday after the epoch). Counted in the database: no event is read.
        A candidate's shadow events are not counted: they answered no one, no label
        is ever meant for them, and counting them would halve a fully labelled
        model's coverage.
        """
        step = length // timedelta(microseconds=1)
        if step < 1:
            raise InvalidInput("a window must be at least a microsecond long")
        # an origin far enough back that every offset is positive: SQL integer
        # division truncates toward zero, and we want the floor
        origin = EPOCH_MONDAY_MICROS - step * math.ceil(_ORIGIN_SPAN_MICROS / step)
        where = ["model_name = ?", "request_type <> ?"]
        params: list[Any] = [model_name, SHADOW_REQUEST_TYPE]
        if since is not None:
            where.append("ts >= ?")
            params.append(to_micros(since))
        if until is not None:
            where.append("ts < ?")
            params.append(to_micros(until))
        found = self._fetchall(
            f"SELECT (ts - ({int(origin)})) / {int(step)}, COUNT(*) FROM events "
            f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1",
            params,
        )
        try:
            return [(from_micros(origin + int(w) * step), int(n)) for w, n in found]
        except (OverflowError, ValueError) as exc:  # a window starting before year 1
            raise InvalidInput("some events are too early in time to be put in windows") from exc

    # --- business metrics -----------------------------------------------------------
    def write_business_metrics(self, observations: Sequence[BusinessObservation]) -> int:
        """Upsert on (name, timestamp, segment); returns how many rows were written or changed."""
        if not observations:
            return 0
        now = to_micros(utcnow())
        statement = self._sql(
            "INSERT INTO business_metrics (name, ts, segment, value, client_id, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, ts, segment) DO UPDATE SET "
            "value = excluded.value, client_id = excluded.client_id, "
            "received_at = excluded.received_at WHERE business_metrics.value <> excluded.value"
        )
        written = 0
        with self._transaction() as cur:
            for o in observations:
                cur.execute(
                    statement,
                    (
                        o.name,
                        to_micros(o.timestamp),
                        o.segment or "",
                        o.value,
                        o.client_id,
                        now if o.received_at is None else to_micros(o.received_at),
                    ),
                )
                written += max(0, int(cur.rowcount or 0))
        return written

    def query_business_metrics(
        self,
        *,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = None,
    ) -> list[BusinessObservation]:
        """Observations in time order; ``segment=None`` means every segment and the overall ones."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("name", name), ("segment", segment)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("ts >= ?")
            params.append(to_micros(since))
        if until is not None:
            where.append("ts < ?")
            params.append(to_micros(until))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        found = self._fetchall(
            "SELECT name, ts, segment, value, client_id, received_at FROM business_metrics "
            f"{clause} ORDER BY ts, name, segment",
            params,
        )
        return [
            BusinessObservation(
                name=r[0],
                timestamp=from_micros(int(r[1])),
                segment=r[2] or None,
                value=float(r[3]),
                client_id=r[4],
                received_at=from_micros(int(r[5])),
            )
            for r in found
        ]


def _label_from_row(r: Sequence[Any]) -> StoredLabel:
    return StoredLabel(
        model_name=r[0],
        request_id=r[1],
        row_index=int(r[2]),
        entity_id=r[3],
        model_version=int(r[4]),
        label=loads(r[5]),
        label_time=from_micros(int(r[6])),
        prediction_time=from_micros(int(r[7])),
        client_id=r[8],
        received_at=from_micros(int(r[9])),
        revision=int(r[10]),
    )


def _time_range(
    model_name: str, column: str, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    """The WHERE terms of one model's rows with ``since <= column < until``."""
    where: list[str] = ["model_name = ?"]
    params: list[Any] = [model_name]
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(to_micros(since))
    if until is not None:
        where.append(f"{column} < ?")
        params.append(to_micros(until))
    return where, params
