"""Read the store's key generation at the start of every authenticated request, cheaply.

Every revocation moves the generation on in its own transaction
(:meth:`~loopwatch.stores.sql_keys.SqlKeysMixin.revoke_api_key`); a request trusts its
worker's cached keys only at the generation it read itself, after it arrived
(:mod:`loopwatch.auth.verifier`). How the read is made depends on the store:

- **SQLite**: on the event loop, one statement on the thread's open connection (a few
  microseconds: the file is local and a WAL reader never waits for a writer).
- **PostgreSQL**: a round trip, so never on the event loop's thread and never in the thread
  pool either (a hop there costs about as much CPU as the query): each worker keeps one
  autocommit :class:`psycopg.AsyncConnection` for it and awaits the answer.
- anything else: the store's own ``key_generation`` in the thread pool.

The remote reads are *coalesced*: one read is in flight per worker at a time, and requests
that arrived while it was in flight share the next one, which begins after they arrived. A
read that began after a request arrived is as good for it as its own, so the revocation
stays exact while a busy worker makes at most one read per round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool

from loopwatch.errors import StoreError, require
from loopwatch.stores.base import Store
from loopwatch.stores.sql_keys import KEY_GENERATION_SQL


class GenerationReader:
    """``await read()``: the store's key generation, read after the call began."""

    async def read(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the reader holds (the service calls it when it stops)."""


class LocalGeneration(GenerationReader):
    """SQLite: read on the event loop (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self) -> int:
        return self.store.key_generation()


class _Coalesced(GenerationReader):
    """At most one read in flight; a caller takes the first read that began after it arrived."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._begun = 0  # reads begun so far
        self._finished = 0  # the number of the last read that finished
        self._value = 0
        #: Reads sent to the store, for measurement.
        self.reads_ = 0

    async def read(self) -> int:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a lock and a connection belong to one event loop
            self._forget_loop()
            self._loop, self._lock = loop, asyncio.Lock()
        assert self._lock is not None
        arrived = self._begun
        async with self._lock:
            if self._finished > arrived:  # that read began after this caller arrived
                return self._value
            self._begun += 1
            number = self._begun
            self.reads_ += 1
            value = await self._query()
            self._value, self._finished = value, number
            return value

    async def _query(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _forget_loop(self) -> None:
        """Drop what belongs to the previous event loop."""


class ThreadGeneration(_Coalesced):
    """Any other store: its ``key_generation`` in the thread pool."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    async def _query(self) -> int:
        return int(await run_in_threadpool(self.store.key_generation))


class PostgresGeneration(_Coalesced):
    """PostgreSQL: one autocommit async connection per worker, opened at the first read and
    opened again after a failure (a read that fails refuses its requests with a store error)."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: Any = None

    async def _query(self) -> int:
        psycopg = require("psycopg", "postgres")
        try:
            if self._conn is None:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=self.connect_timeout
                )
            cursor = await self._conn.execute(KEY_GENERATION_SQL)
            rows = await cursor.fetchall()
        except BaseException as exc:
            # a failed or cancelled query leaves the connection in an unknown state: drop it
            self._drop()
            if isinstance(exc, Exception):
                raise StoreError(f"cannot check API keys: the database cannot be read ({exc})") from exc
            raise
        return int(rows[0][0]) if rows else 0

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.pgconn.finish()  # closes the socket without awaiting anything
            except Exception:
                pass

    def _forget_loop(self) -> None:
        self._drop()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                pass


def reader_for(store: Store) -> GenerationReader:
    dialect = getattr(store, "dialect", "")
    if dialect == "sqlite":
        return LocalGeneration(store)
    if dialect == "postgresql":
        return PostgresGeneration(store.url, connect_timeout=int(getattr(store, "connect_timeout", 10)))
    return ThreadGeneration(store)
