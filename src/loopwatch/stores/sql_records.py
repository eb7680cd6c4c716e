"""Rejections and training runs in SQL: the log's two smaller tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from loopwatch.records import Rejection, TrainingEvent
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase


class SqlRecordsMixin(SqlStoreBase):
    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        with self._transaction() as cur:
            cur.executemany(
                self._sql(
                    "INSERT INTO rejections (model_name, ts, client_id, reason, status, message) "
                    "VALUES (?, ?, ?, ?, ?, ?)"
                ),
                [
                    (r.model_name, to_micros(r.timestamp), r.client_id, r.reason, r.status, r.message)
                    for r in rejections
                ],
            )

    def query_rejections(
        self, model_name: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[Rejection]:
        where: list[str] = []
        params: list[Any] = []
        if model_name is not None:
            where.append("model_name = ?")
            params.append(model_name)
        if since is not None:
            where.append("ts >= ?")
            params.append(to_micros(since))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        found = self._fetchall(
            "SELECT model_name, ts, client_id, reason, status, message FROM rejections "
            f"{clause} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )
        return [
            Rejection(
                model_name=r[0],
                timestamp=from_micros(int(r[1])),
                client_id=r[2],
                reason=r[3],
                status=int(r[4]),
                message=r[5],
            )
            for r in found
        ]

    def write_training_event(self, event: TrainingEvent) -> None:
        self._execute(
            "INSERT INTO training_events (event_id, model_name, model_version, ts, duration_ms, "
            "data_summary, metrics, params, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                event.model_name,
                event.model_version,
                to_micros(event.timestamp),
                event.duration_ms,
                dumps(event.data_summary).decode(),
                dumps(event.metrics).decode(),
                dumps(event.params).decode(),
                event.client_id,
            ),
        )

    def training_events(self, model_name: str | None = None) -> list[TrainingEvent]:
        clause, params = ("WHERE model_name = ?", (model_name,)) if model_name else ("", ())
        found = self._fetchall(
            "SELECT event_id, model_name, model_version, ts, duration_ms, data_summary, metrics, "
            f"params, client_id FROM training_events {clause} ORDER BY ts, event_id",
            params,
        )
        return [
            TrainingEvent(
                event_id=r[0],
                model_name=r[1],
                model_version=int(r[2]),
                timestamp=from_micros(int(r[3])),
                duration_ms=float(r[4]),
                data_summary=loads(r[5]),
                metrics=loads(r[6]),
                params=loads(r[7]),
                client_id=r[8],
            )
            for r in found
        ]

