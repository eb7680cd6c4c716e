"""Reading the key generation per request: coalesced, yet never older than the request."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from loopwatch.auth.manage import issue_key
from loopwatch.errors import StoreError
from loopwatch.service.key_generation import (
    LocalGeneration,
    PostgresGeneration,
    ThreadGeneration,
    _Coalesced,
    reader_for,
)
from loopwatch.stores import Store, open_store

pytest_plugins = ["tests.postgres_fixtures"]


class Gated(_Coalesced):
    """A store whose read takes its snapshot when it begins, and answers when let go."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.gates: list[asyncio.Event] = []

    async def _query(self) -> int:
        snapshot = self.value  # what a statement sees is fixed when it begins
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return snapshot


def test_callers_share_a_read_only_if_it_began_after_they_arrived() -> None:
    async def scenario() -> tuple[list[int], int]:
        reader = Gated()
        first = asyncio.create_task(reader.read())
        await asyncio.sleep(0)  # the first read begins and holds generation 0
        reader.value = 1  # a revocation commits, and returns
        later = [asyncio.create_task(reader.read()) for _ in range(3)]  # requests that start after it
        await asyncio.sleep(0)
        reader.gates[0].set()
        assert await first == 0  # began before the revocation returned: may see the old generation
        while len(reader.gates) < 2:
            await asyncio.sleep(0)
        reader.gates[1].set()
        return [await t for t in later], reader.reads_

    answers, reads = asyncio.run(scenario())
    assert answers == [1, 1, 1]  # none took the read that was in flight when they arrived
    assert reads == 2  # the three shared one read


def test_a_failed_read_fails_only_its_caller_and_the_next_caller_reads_again() -> None:
    class Flaky(_Coalesced):
        calls = 0

        async def _query(self) -> int:
            self.calls += 1
            if self.calls == 1:
                raise StoreError("down")
            return 7

    async def scenario() -> tuple[object, int]:
        reader = Flaky()
        results = await asyncio.gather(reader.read(), reader.read(), return_exceptions=True)
        return results, await reader.read()

    results, last = asyncio.run(scenario())
    assert isinstance(results[0], StoreError) and results[1] == 7 and last == 7


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:  # type: ignore[no-untyped-def]
    url = str(tmp_path / "gen.db") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    opened = open_store(url)
    yield opened
    opened.close()


def test_each_store_gets_its_reader_and_it_sees_a_revocation_at_once(store: Store) -> None:
    reader = reader_for(store)
    assert isinstance(reader, LocalGeneration if store.dialect == "sqlite" else PostgresGeneration)  # type: ignore[attr-defined]
    key, _ = issue_key(store, name="k", scopes=["read"], now=datetime.now(timezone.utc))
    other = open_store(store.url, migrate=False)  # another process's store

    async def scenario() -> list[int]:
        seen = [await reader.read()]
        other.revoke_api_key(key.key_id, at=datetime.now(timezone.utc))
        seen.append(await reader.read())
        seen.append(await ThreadGeneration(store).read())
        await reader.aclose()
        return seen

    try:
        assert asyncio.run(scenario()) == [0, 1, 1]
    finally:
        other.close()


@pytest.mark.postgres
def test_the_postgres_reader_reconnects_after_its_connection_is_killed(postgres_dsn: str) -> None:
    import psycopg

    store = open_store(postgres_dsn)
    reader = PostgresGeneration(postgres_dsn)

    async def scenario() -> tuple[int, bool, int]:
        assert await reader.read() == 0
        pid = reader._conn.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            await reader.read()
            failed = False
        except StoreError:
            failed = True
        value = await reader.read()  # a new connection
        await reader.aclose()
        return pid, failed, value

    try:
        _, failed, value = asyncio.run(scenario())
        assert failed and value == 0
    finally:
        store.close()
