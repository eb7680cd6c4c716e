"""PostgreSQL for teams (psycopg 3): the same SQL, ``%s`` placeholders, COPY for events."""

from __future__ import annotations

from typing import Any

from loopwatch.errors import require
from loopwatch.stores.sql import ENTITY_EVENT_COLUMNS, EVENT_COLUMNS, SqlLogMixin
from loopwatch.stores.sql_evaluations import SqlEvaluationsMixin
from loopwatch.stores.sql_feedback import SqlFeedbackMixin
from loopwatch.stores.sql_incidents import SqlIncidentsMixin
from loopwatch.stores.sql_ingest import INGEST_EVENT_COLUMNS, SqlIngestMixin
from loopwatch.stores.sql_keys import SqlKeysMixin
from loopwatch.stores.sql_quarantine import SqlQuarantineMixin
from loopwatch.stores.sql_records import SqlRecordsMixin
from loopwatch.stores.sql_registry import SqlRegistryMixin
from loopwatch.stores.sql_summaries import SqlSummariesMixin

#: Key of the advisory lock that serialises migrations across processes.
MIGRATION_LOCK_KEY = 7_274_231
#: First key of the two-key advisory locks that make writers of one thing take turns
#: (two-key locks never collide with the one-key migration lock).
SERIALIZE_LOCK_SPACE = 7_274_232


class PostgresStore(
    SqlLogMixin, SqlRecordsMixin, SqlRegistryMixin, SqlFeedbackMixin, SqlIncidentsMixin, SqlKeysMixin,
    SqlQuarantineMixin, SqlEvaluationsMixin, SqlIngestMixin, SqlSummariesMixin,
):
    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        super().__init__()
        self._psycopg = require("psycopg", "postgres")
        self.url = url
        self.connect_timeout = connect_timeout

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=False, connect_timeout=self.connect_timeout
        )

    def _begin(self, conn: Any, *, write: bool) -> None:
        # psycopg opens a transaction with the first statement
        return None

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _serialize(self, cur: Any, key: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (SERIALIZE_LOCK_SPACE, key))

    def _insert_ingested(self, cur: Any, rows: list[tuple[Any, ...]], constant: frozenset[int] = frozenset()) -> None:
        with cur.copy(f"COPY events ({INGEST_EVENT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _insert_events(self, cur: Any, rows: list[tuple[Any, ...]], *, entities: bool = False) -> None:
        columns = ENTITY_EVENT_COLUMNS if entities else EVENT_COLUMNS
        with cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _ensure_migrations_table(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        super()._ensure_migrations_table(cur)

    def _read_outside_transaction(self, statement: str) -> list[tuple[Any, ...]]:
        # autocommit for this one statement: one round trip instead of BEGIN, SELECT, COMMIT
        # (switching it is a client-side flag while the connection is idle)
        conn = self._conn()
        conn.autocommit = True
        try:
            return list(conn.execute(statement).fetchall())
        finally:
            conn.autocommit = False

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)
