"""The embedded default: one SQLite file in WAL mode.

Prediction logs reach it through one writer thread per process (see
:mod:`loopwatch.stores.writer`), which commits many requests per transaction.
``synchronous=FULL`` by default, so a committed event survives power loss, not
only a crash of the process.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Any

from loopwatch.stores.sql import SqlLogMixin
from loopwatch.stores.sql_evaluations import SqlEvaluationsMixin
from loopwatch.stores.sql_feedback import SqlFeedbackMixin
from loopwatch.stores.sql_incidents import SqlIncidentsMixin
from loopwatch.stores.sql_ingest import SqlIngestMixin
from loopwatch.stores.sql_keys import SqlKeysMixin
from loopwatch.stores.sql_quarantine import SqlQuarantineMixin
from loopwatch.stores.sql_records import SqlRecordsMixin
from loopwatch.stores.sql_registry import SqlRegistryMixin
from loopwatch.stores.sql_summaries import SqlSummariesMixin


class SQLiteStore(
    SqlLogMixin, SqlRecordsMixin, SqlRegistryMixin, SqlFeedbackMixin, SqlIncidentsMixin, SqlKeysMixin,
    SqlQuarantineMixin, SqlEvaluationsMixin, SqlIngestMixin, SqlSummariesMixin,
):
    dialect = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous.upper()
        self.url = f"sqlite:///{self.path}"

    def _connect(self) -> Any:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        # 8 KiB pages for a new database (an existing one keeps its size): a prediction
        # event is most of a kilobyte, and SQLite spent about a sixth less CPU per logged
        # event at 8 KiB than at 4 KiB (docs/benchmarks.md, ingestion)
        conn.execute("PRAGMA page_size=8192")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache: index pages of a large event table stay in memory
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    def _begin(self, conn: Any, *, write: bool) -> None:
        if write:
            # Writers from several processes (uvicorn workers) take turns on a file
            # lock first: SQLite's own busy handler sleeps in growing steps and
            # left the losing writer waiting far longer than the commit it waited for.
            fcntl.flock(self._lock_file(), fcntl.LOCK_EX)
        # IMMEDIATE takes the write lock up front, so two writers queue on the
        # busy timeout instead of failing with a deadlock on lock upgrade.
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            if write:
                self._end(write=True)
            raise

    def _end(self, *, write: bool) -> None:
        if write:
            fcntl.flock(self._lock_file(), fcntl.LOCK_UN)

    def _lock_file(self) -> int:
        # one descriptor per thread: flock excludes across descriptors, so threads
        # of one process queue on it just as processes do
        fd = getattr(self._local, "lock_fd", None)
        if fd is None or getattr(self._local, "lock_pid", None) != os.getpid():
            fd = os.open(f"{self.path}.writelock", os.O_RDWR | os.O_CREAT, 0o644)
            self._local.lock_fd = fd
            self._local.lock_pid = os.getpid()
        return int(fd)

    def _read_outside_transaction(self, statement: str) -> list[tuple[Any, ...]]:
        # the connection is in autocommit mode between transactions: one statement is its
        # own read transaction, without BEGIN and COMMIT; fetchall steps it to its end, so
        # that it holds no snapshot of the WAL afterwards
        return list(self._conn().execute(statement).fetchall())

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)
