"""The embedded default: one SQLite file in WAL mode.

Prediction logs reach it through one writer thread per process (see
:mod:`loopwatch.stores.writer`), which commits many requests per transaction.
``synchronous=FULL`` by default, so a committed event survives power loss, not
only a crash of the process.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from loopwatch.stores.sql import SqlLogMixin
from loopwatch.stores.sql_records import SqlRecordsMixin
from loopwatch.stores.sql_registry import SqlRegistryMixin


class SQLiteStore(SqlLogMixin, SqlRecordsMixin, SqlRegistryMixin):
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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _begin(self, conn: Any, *, write: bool) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on the
        # busy timeout instead of failing with a deadlock on lock upgrade.
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)
