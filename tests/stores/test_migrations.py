"""Schema migrations are recorded and applied once, on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.stores import Store, open_store
from loopwatch.stores.migrations import MIGRATIONS
from tests.stores.rawsql import raw_rows, table_count

pytest_plugins = ["tests.postgres_fixtures"]

ALL_VERSIONS = [version for version, _, _ in MIGRATIONS]
TABLES = (
    "models",
    "artifacts",
    "model_versions",
    "aliases",
    "alias_history",
    "fingerprints",
    "requests",
    "events",
    "rejections",
    "training_events",
)


def test_open_store_without_migrate_leaves_the_database_empty(database_url: str) -> None:
    store = open_store(database_url, migrate=False)
    try:
        assert store.applied_migrations() == []
        assert table_count(store, "schema_migrations") == 0
    finally:
        store.close()


def test_migrate_applies_every_migration_once_and_records_it(database_url: str) -> None:
    before = datetime.now(timezone.utc)
    store = open_store(database_url, migrate=False)
    try:
        assert store.migrate() == ALL_VERSIONS
        assert store.applied_migrations() == ALL_VERSIONS
        rows = raw_rows(store, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert [(v, n) for v, n, _ in rows] == [(v, n) for v, n, _ in MIGRATIONS]
        for _, _, applied_at in rows:
            applied = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(applied_at))
            assert (
                before - timedelta(seconds=5) <= applied <= datetime.now(timezone.utc) + timedelta(seconds=5)
            )
        # every table exists and is empty
        for table in TABLES:
            assert table_count(store, table) == 0, table

        # a second migrate, on this store and on another one, changes nothing
        assert store.migrate() == []
        assert (
            raw_rows(store, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
            == rows
        )
    finally:
        store.close()
    again = open_store(database_url)  # migrate=True by default
    try:
        assert again.migrate() == []
        assert again.applied_migrations() == ALL_VERSIONS
        assert table_count(again, "schema_migrations") == len(ALL_VERSIONS)
    finally:
        again.close()


def test_the_store_fixture_is_migrated_and_reachable(store: Store) -> None:
    store.ping()
    assert store.applied_migrations() == ALL_VERSIONS
    assert store.migrate() == []
    assert store.count_events() == 0
    assert store.list_models() == []


def test_unsupported_url_is_invalid_input() -> None:
    from loopwatch.errors import InvalidInput

    with pytest.raises(InvalidInput):
        open_store("mysql://localhost/db")
