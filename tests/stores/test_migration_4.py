"""Migration 4 upgrades a version-3 database without losing anything.

``data/v3.db`` was written by loopwatch before migration 4 existed (see
``data/make_v3_database.py``); the other test builds a version-3 schema on
each backend with the migrations 1-3 of this code.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import loopwatch.stores.sql as sql_module
from loopwatch.records import Label
from loopwatch.stores import EventQuery, Store, open_store
from loopwatch.stores.migrations import MIGRATIONS
from tests.stores.builders import T0, make_request
from tests.stores.rawsql import raw_rows

pytest_plugins = ["tests.postgres_fixtures"]

V3_FILE = Path(__file__).parent / "data" / "v3.db"
V3_TABLES = ("models", "artifacts", "model_versions", "aliases", "alias_history", "fingerprints", "requests",
             "events", "rejections", "training_events")


def _dump(path: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row of every version-3 table, by table, in a stable order."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table in V3_TABLES:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            old = [c for c in columns if c not in ("entity_id", "nullable", "content_sha256")]  # added later
            rows = conn.execute(f"SELECT {', '.join(old)} FROM {table} ORDER BY {', '.join(old[:2])}").fetchall()
            out[table] = (old, rows)
        return out
    finally:
        conn.close()


def test_a_database_written_at_version_3_is_upgraded_whole(tmp_path: Path) -> None:
    path = tmp_path / "loopwatch.db"
    shutil.copyfile(V3_FILE, path)
    before = _dump(path)
    assert sum(len(rows) for _, rows in before.values()) > 20
    assert len(before["events"][1]) == 10

    store = open_store(f"sqlite:///{path}")
    try:
        assert store.applied_migrations() == [number for number, _, _ in MIGRATIONS]
        assert _dump(path) == before
        assert raw_rows(store, "SELECT COUNT(*) FROM events WHERE entity_id IS NOT NULL") == [(0,)]
        indexes = {r[0] for r in raw_rows(store, "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"events_by_entity", "labels_by_label_time", "labels_by_prediction_time"} <= indexes
        # what was there reads back through the store as before
        events = list(store.iter_events(EventQuery(model_name="churn")))
        assert len(events) == 9 and all(e.entity_id is None for e in events)
        assert events[0].data == {"x": 3.0, "note": 'é \\ " \n'}  # the replayed request's oldest row
        assert [v.version for v in store.list_versions("churn")] == [1, 2]
        assert store.get_aliases("churn") == {"candidate": 2, "production": 1}
        assert store.get_model_settings("iris").retention_days == 30
        assert store.get_model_settings("iris").nullable == ()  # models made before declare none
        assert [r.reason for r in store.query_rejections("churn")] == ["schema_violation"]
        assert [t.event_id for t in store.training_events()] == ["train-1"]
        assert store.get_request("req-a") is not None

        # and the new tables work on the old events
        outcome = store.write_labels(
            [Label(model_name="churn", label="yes", label_time=T0 + timedelta(days=9), request_id="req-b", row_index=1)]
        )
        assert outcome[0].status == "stored"
        assert [(c.request_id, c.prediction_time) for c in store.iter_labels("churn")] == [
            ("req-b", T0 + timedelta(hours=2))
        ]
        store.write_requests([make_request("new", n_rows=2, model_name="churn", entity_ids=["c1", None])])
        assert [e.entity_id for e in store.query_events(EventQuery(request_id="new")).events] == ["c1", None]
    finally:
        store.close()
    # a second opening runs nothing again
    again = open_store(f"sqlite:///{path}")
    try:
        assert again.migrate() == []
    finally:
        again.close()


def _execute(store: Store, statement: str, params: tuple[Any, ...]) -> None:
    if store.dialect == "sqlite":
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            conn.execute(statement, params)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(store.url) as conn:
        conn.execute(statement.replace("?", "%s"), params)


def test_migration_4_runs_alone_on_a_version_3_schema(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(database_url, migrate=False)
    try:
        monkeypatch.setattr(sql_module, "MIGRATIONS", MIGRATIONS[:3])
        assert store.migrate() == [1, 2, 3]
        _execute(
            store,
            "INSERT INTO events (request_id, row_index, model_name, model_version, ts, logged_at, runtime_ms, "
            "row_runtime_ms, prediction, probability, input_summary, data, request_type, client_id, "
            "fingerprint_id, replayed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("old", 0, "churn", 1, 1_700_000_000_000_000, 1_700_000_000_000_000, 1.5, 1.5, '["a"]', None,
             "{}", '{"x": 1}', "api", None, "fp", 0),
        )
        monkeypatch.setattr(sql_module, "MIGRATIONS", MIGRATIONS[:4])
        assert store.migrate() == [4]
        assert store.applied_migrations() == [1, 2, 3, 4]
        (event,) = store.query_events(EventQuery()).events
        assert (event.request_id, event.data, event.entity_id) == ("old", {"x": 1}, None)
        assert store.write_labels(
            [Label(model_name="churn", label=1, label_time=event.timestamp, request_id="old", row_index=0)]
        )[0].status == "stored"
    finally:
        store.close()
