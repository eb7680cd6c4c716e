"""The throwaway PostgreSQL server and its fixtures work end to end."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.pgserver import ThrowawayPostgres

# Makes the fixtures available even before/without tests/conftest.py loading
# them; loading the same plugin there as well is harmless.
pytest_plugins = ["tests.postgres_fixtures"]

pytestmark = pytest.mark.postgres


def test_create_insert_and_read_back(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE predictions (id bigserial PRIMARY KEY, model text NOT NULL, score double precision)")
        conn.execute("INSERT INTO predictions (model, score) VALUES (%s, %s)", ("iris-v1", 0.25))
    # A new connection sees the committed row.
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT id, model, score FROM predictions").fetchall()
    assert rows == [(1, "iris-v1", 0.25)]


def test_databases_are_isolated(postgres_dsn: str, postgres_dsn_factory: Callable[[], str]) -> None:
    other_dsn = postgres_dsn_factory()
    assert other_dsn != postgres_dsn

    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
        conn.execute("INSERT INTO only_here VALUES (1)")

    with psycopg.connect(other_dsn) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
        conn.execute("CREATE TABLE only_here (x int)")  # no clash with the first database
        assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (0,)

    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (1,)


def test_each_test_gets_a_fresh_database(postgres_dsn: str) -> None:
    # test_create_insert_and_read_back created `predictions`; not visible here.
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT to_regclass('predictions')").fetchone() == (None,)


def test_server_is_a_loopback_test_server(postgres_server: ThrowawayPostgres, postgres_dsn: str) -> None:
    assert postgres_dsn.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/")
    with psycopg.connect(postgres_dsn) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "listen_addresses", "server_encoding")
        }
    assert settings == {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
    }
