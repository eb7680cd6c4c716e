"""Renaming a model moves every row that names it, in one transaction, on both backends."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import numpy as np
import pytest

from loopwatch.errors import Conflict, InvalidInput, NotFound
from loopwatch.records import Label
from loopwatch.records.incidents import IncidentRecord
from loopwatch.poisoning.records import QuarantineEntry
from loopwatch.stores import Store
from loopwatch.stores.migrations import MODEL_NAME_COLUMNS
from loopwatch.stores.sqlite import SQLiteStore
from loopwatch.summaries.window import summarise_frame
from tests.stores.builders import T0, days, make_request, rejection, training_event, version_kwargs
from tests.stores.rawsql import raw_rows, table_count
from tests.summaries.test_conformance import LAYOUT, events


pytest_plugins = ["tests.postgres_fixtures"]

#: A name stored before the name rule: a dot segment, which URL-normalising clients cannot reach.
LEGACY = ".."


def _counts(store: Store, name: str) -> dict[str, int]:
    return {table: table_count(store, table, f"{column} = ?", (name,)) for table, column in MODEL_NAME_COLUMNS}


def _fill(store: Store, name: str) -> None:
    """Rows naming ``name`` in every table that can name a model."""
    r1, r2 = f"{name}-r1", f"{name}-r2"  # request ids are unique across models
    assert store.create_model_version(**version_kwargs(name, artifact=b"one")) == 1
    assert store.create_model_version(**version_kwargs(name, artifact=b"two")) == 2
    store.set_alias(name, "production", 1, reason="registered", at=T0)
    store.set_alias(name, "candidate", 2, reason="registered", at=T0)
    assert {o.status for o in store.write_requests(
        [make_request(r1, n_rows=2, model_name=name), make_request(r2, n_rows=1, model_name=name)]
    )} == {"stored"}
    store.write_rejections([rejection(name, T0)])
    store.write_training_event(training_event(f"{name}-t1", name, 1, T0))
    store.write_labels([Label(model_name=name, label=1, label_time=T0 + days(1), request_id=r1, row_index=0)])
    store.write_labels([Label(model_name=name, label=0, label_time=T0 + days(2), request_id=r1, row_index=0)])
    store.upsert_incident(IncidentRecord(
        incident_id=f"{name}:covariate_shift:20240517T1230", model_name=name, kind="covariate_shift", loop="eda",
        status="open", first_seen=T0, last_seen=T0 + days(1), detected_at=T0 + days(1), summary="drift",
        evidence={}, action="look",
    ))
    store.put_monitor_config(name, {"window": "1d"}, at=T0)
    profile = b"profile"
    store.add_rebaseline(model_name=name, model_version=1, since=T0, until=T0 + days(7), profile=profile,
                         profile_sha256=hashlib.sha256(profile).hexdigest(), at=T0 + days(8), reason="accepted")
    store.quarantine_rows([QuarantineEntry(model_name=name, request_id=r1, row_index=0, label_revision=0,
                                           reasons=("label_flip",), source=None, quarantined_at=T0)])
    store.record_evaluation(name, at=T0, cause="InvalidInput", message="failed once")
    store.resolve_external_version(name, "v-ext", base_version=1, created_at=T0)
    assert store.claim(f"schedule:{name}", now=T0, cooldown_seconds=3600)
    summaries = summarise_frame(events(np.random.default_rng(0), 5, 0), model=name, layouts={1: LAYOUT})
    store.merge_window_summaries(name, list(summaries.values()), logged_through=1)


def test_every_table_that_names_a_model_is_renamed(store: Store) -> None:
    """MODEL_NAME_COLUMNS is the schema's list: a table added later with a model_name column
    must be added to it, or renaming would leave its rows behind."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            columns = {(t, r[1]) for t in tables for r in conn.execute(f"PRAGMA table_info({t})")}
        finally:
            conn.close()
    else:
        columns = set(raw_rows(store, "SELECT table_name, column_name FROM information_schema.columns "
                                      "WHERE table_schema = current_schema()"))
    naming = {(t, c) for t, c in columns if c == "model_name"}
    # tables whose "name" is a model's (business_metrics and api_keys name other things)
    naming |= {(t, "name") for t in ("models", "model_versions", "aliases", "alias_history")}
    assert naming == set(MODEL_NAME_COLUMNS)
    assert MODEL_NAME_COLUMNS[0] == ("models", "name")


def test_a_legacy_name_is_renamed_in_every_table_at_once(store: Store) -> None:
    _fill(store, LEGACY)
    _fill(store, "other")  # another model's rows must not move
    before = _counts(store, LEGACY)
    assert all(before.values()), before  # the test fills every table
    others = _counts(store, "other")
    artifacts = table_count(store, "artifacts")

    moved = store.rename_model(LEGACY, "churn")

    assert _counts(store, "churn") == before
    assert set(_counts(store, LEGACY).values()) == {0}
    assert _counts(store, "other") == others
    assert {t: moved[t] for t, _ in MODEL_NAME_COLUMNS} == before
    # what the store answers for the new name is what it answered for the old one
    assert [v.version for v in store.list_versions("churn")] == [1, 2, 3]  # 3: the external label
    assert store.get_aliases("churn") == {"production": 1, "candidate": 2}
    assert [h.version for h in store.alias_history("churn", "production")] == [1]
    assert store.count_events("churn") == 3
    assert [lab.label for lab in store.iter_label_revisions("churn")] == [1, 0]
    # incident ids start with the model's name: they follow it, so the next evaluation updates them
    (incident,) = store.list_incidents("churn")
    assert incident.incident_id == "churn:covariate_shift:20240517T1230" and moved["incident_ids"] == 1
    assert store.external_versions("churn") == {"v-ext": 3}
    assert store.get_monitor_config("churn") is not None
    assert not store.claim("schedule:churn", now=T0 + timedelta(minutes=1), cooldown_seconds=3600)
    with pytest.raises(NotFound):
        store.list_versions(LEGACY)
    # the artifacts are shared by content, not copied
    assert table_count(store, "artifacts") == artifacts
    assert not store.model_exists(LEGACY) and store.model_exists("churn")


def test_a_rename_onto_a_taken_name_changes_nothing(store: Store) -> None:
    _fill(store, LEGACY)
    store.create_model_version(**version_kwargs("churn"))
    before = (_counts(store, LEGACY), _counts(store, "churn"))
    with pytest.raises(Conflict, match="exists already"):
        store.rename_model(LEGACY, "churn")
    assert (_counts(store, LEGACY), _counts(store, "churn")) == before
    # rows left under a name without its model (an evaluation status, say) also stop it, whole
    store.record_evaluation("ghost", at=T0)
    with pytest.raises(Conflict, match="not renamed"):
        store.rename_model(LEGACY, "ghost")
    assert _counts(store, LEGACY) == before[0]
    with pytest.raises(NotFound):
        store.rename_model("nope", "fresh")
    with pytest.raises(InvalidInput):
        store.rename_model(LEGACY, LEGACY)
