"""Scheduled evaluations in SQL (migration 7): each failure with its cause, and per model the
last success and the last failure, so that a schedule that keeps failing is seen, not silent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from loopwatch.errors import InvalidInput
from loopwatch.records.evaluations import EvaluationFailure, EvaluationStatus
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase

#: Longest stored error message; a longer one is cut (a traceback-sized message says no more).
MAX_MESSAGE = 2000


def _text(value: str, limit: int) -> str:
    # PostgreSQL's TEXT refuses NUL, and an error message may quote any input
    return value.replace("\x00", "\\0")[:limit]


class SqlEvaluationsMixin(SqlStoreBase):
    def record_evaluation(
        self, model_name: str, *, at: datetime, cause: str | None = None, message: str = ""
    ) -> EvaluationStatus:
        """Record one scheduled evaluation of ``model_name`` at ``at``: a success when ``cause``
        is None, else a failure with its cause (the error's type) and message."""
        key_text(model_name, "model")
        moment = to_micros(utc_moment(at, "at"))
        if cause is not None and not (isinstance(cause, str) and cause.strip()):
            raise InvalidInput("a failed evaluation's cause must be a non-empty string")
        with self._transaction() as cur:
            if cause is None:
                cur.execute(
                    self._sql(
                        "INSERT INTO evaluation_status (model_name, last_success_at, last_failure_at, failures) "
                        "VALUES (?, ?, NULL, 0) ON CONFLICT (model_name) DO UPDATE SET last_success_at = "
                        "CASE WHEN evaluation_status.last_success_at IS NULL "
                        "OR excluded.last_success_at > evaluation_status.last_success_at "
                        "THEN excluded.last_success_at ELSE evaluation_status.last_success_at END"
                    ),
                    (model_name, moment),
                )
            else:
                cur.execute(
                    self._sql(
                        "INSERT INTO evaluation_failures (model_name, failed_at, cause, message) VALUES (?, ?, ?, ?)"
                    ),
                    (model_name, moment, _text(cause, 200), _text(str(message), MAX_MESSAGE)),
                )
                cur.execute(
                    self._sql(
                        "INSERT INTO evaluation_status (model_name, last_success_at, last_failure_at, failures) "
                        "VALUES (?, NULL, ?, 1) ON CONFLICT (model_name) DO UPDATE SET "
                        "failures = evaluation_status.failures + 1, last_failure_at = "
                        "CASE WHEN evaluation_status.last_failure_at IS NULL "
                        "OR excluded.last_failure_at > evaluation_status.last_failure_at "
                        "THEN excluded.last_failure_at ELSE evaluation_status.last_failure_at END"
                    ),
                    (model_name, moment),
                )
            cur.execute(
                self._sql(
                    "SELECT model_name, last_success_at, last_failure_at, failures FROM evaluation_status "
                    "WHERE model_name = ?"
                ),
                (model_name,),
            )
            return _status_from_row(cur.fetchone())

    def evaluation_status(self, model_name: str | None = None) -> list[EvaluationStatus]:
        """Every model's evaluation status (or one model's), by model name."""
        where, params = ("WHERE model_name = ? ", (model_name,)) if model_name is not None else ("", ())
        found = self._fetchall(
            "SELECT model_name, last_success_at, last_failure_at, failures FROM evaluation_status "
            f"{where}ORDER BY model_name",
            params,
        )
        return [_status_from_row(r) for r in found]

    def list_evaluation_failures(self, model_name: str, *, limit: int = 20) -> list[EvaluationFailure]:
        """The latest failed evaluations of ``model_name``, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        found = self._fetchall(
            "SELECT model_name, failed_at, cause, message FROM evaluation_failures WHERE model_name = ? "
            f"ORDER BY failed_at DESC, id DESC LIMIT {int(limit)}",
            (model_name,),
        )
        return [
            EvaluationFailure(model_name=r[0], failed_at=from_micros(int(r[1])), cause=r[2], message=r[3])
            for r in found
        ]


def _status_from_row(r: Sequence[Any]) -> EvaluationStatus:
    return EvaluationStatus(
        model_name=r[0],
        last_success_at=None if r[1] is None else from_micros(int(r[1])),
        last_failure_at=None if r[2] is None else from_micros(int(r[2])),
        failures=int(r[3]),
    )
