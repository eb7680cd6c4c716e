"""The ``store`` fixture: every conformance test runs on SQLite and PostgreSQL.

The PostgreSQL fixtures (``postgres_dsn`` ...) come from the plugin
``tests.postgres_fixtures``, which each test module here lists in
``pytest_plugins`` (as tests/test_pgserver.py does): ``pytest_plugins`` is not
allowed in a conftest below the rootdir. The PostgreSQL param asks for
``postgres_dsn`` lazily, so SQLite-only runs never start a server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopwatch.stores import Store, open_store
from loopwatch.stores.postgres import PostgresStore
from loopwatch.stores.sqlite import SQLiteStore

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """URL of a new, empty database (no tables yet) of the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'loopwatch.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def store(backend: str, database_url: str) -> Iterator[Store]:
    """A migrated, empty store: a SQLite file in tmp_path or a fresh PostgreSQL database."""
    s = open_store(database_url)
    assert isinstance(s, SQLiteStore if backend == "sqlite" else PostgresStore)
    try:
        yield s
    finally:
        s.close()
