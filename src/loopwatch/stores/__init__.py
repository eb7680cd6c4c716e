"""Stores: where events, models and their history live.

``open_store(url)`` picks the backend from the URL: ``sqlite:///path`` (or a
plain path) for the embedded default, ``postgresql://...`` for teams.
"""

from __future__ import annotations

from loopwatch.errors import InvalidInput, echo
from loopwatch.stores.base import EventPage, EventQuery, Store, StoredRequest


def open_store(url: str, *, sqlite_synchronous: str = "FULL", migrate: bool = True) -> Store:
    store: Store
    if url.startswith(("postgresql://", "postgres://")):
        from loopwatch.stores.postgres import PostgresStore

        store = PostgresStore(url)
    elif url.startswith("sqlite:///"):
        from loopwatch.stores.sqlite import SQLiteStore

        store = SQLiteStore(url[len("sqlite:///") :], synchronous=sqlite_synchronous)
    elif "://" not in url:
        from loopwatch.stores.sqlite import SQLiteStore

        store = SQLiteStore(url, synchronous=sqlite_synchronous)
    else:
        raise InvalidInput(
            f"unsupported database URL {echo(url)}: use sqlite:///path or postgresql://..."
        )
    if migrate:
        store.migrate()
    return store


__all__ = ["EventPage", "EventQuery", "Store", "StoredRequest", "open_store"]
