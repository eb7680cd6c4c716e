"""Look into a store's tables on a connection of its own, bypassing the store."""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from loopwatch.stores import Store
from loopwatch.stores.sqlite import SQLiteStore


def raw_rows(store: Store, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``statement`` (``?`` placeholders) on a connection of its own, outside the store."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            return [tuple(r) for r in conn.execute(statement, tuple(params)).fetchall()]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(store.url) as conn:
        return [tuple(r) for r in conn.execute(statement.replace("?", "%s"), tuple(params)).fetchall()]


def table_count(store: Store, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    clause = f" WHERE {where}" if where else ""
    return int(raw_rows(store, f"SELECT COUNT(*) FROM {table}{clause}", params)[0][0])
