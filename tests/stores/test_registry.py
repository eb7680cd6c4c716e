"""The registry half of a store: versions, artifacts, aliases with history, settings."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest

from loopwatch.errors import Conflict, NotFound
from loopwatch.records import ModelSettings
from loopwatch.stores import Store
from tests.stores.builders import T0, schema, version_kwargs
from tests.stores.rawsql import table_count

pytest_plugins = ["tests.postgres_fixtures"]


def test_versions_are_numbered_per_name(store: Store) -> None:
    assert [
        store.create_model_version(**version_kwargs("iris", artifact=f"iris{i}".encode())) for i in range(3)
    ] == [1, 2, 3]
    assert store.create_model_version(**version_kwargs("churn")) == 1
    assert store.create_model_version(**version_kwargs("iris", artifact=b"iris3")) == 4
    assert [v.version for v in store.list_versions("iris")] == [1, 2, 3, 4]
    assert [v.version for v in store.list_versions("churn")] == [1]


def test_model_version_round_trips(store: Store) -> None:
    feature_schema = schema("a", "b", "c")
    kwargs = version_kwargs("iris", created_at=T0, feature_schema=feature_schema)
    kwargs["metrics"] = {"accuracy": 0.1 + 0.2, "per_class": {"setosa": [1, 0.5]}, "note": 'q"\n'}
    kwargs["params"] = {"C": 1e-12, "penalty": None}
    store.create_model_version(**kwargs)
    v = store.get_model_version("iris", 1)
    assert (v.name, v.version, v.created_at, v.task, v.estimator) == (
        "iris",
        1,
        T0,
        "classification",
        "logistic_regression",
    )
    assert v.created_at.tzinfo is not None and v.created_at.utcoffset() == timedelta(0)
    assert v.artifact_sha256 == kwargs["artifact_sha256"]
    assert v.reference_sha256 == kwargs["reference_sha256"]
    assert v.schema == feature_schema
    assert v.metrics == kwargs["metrics"] and v.params == kwargs["params"]
    assert v.data_summary == kwargs["data_summary"]
    assert v.aliases == ()
    assert store.list_versions("iris") == [v]


def test_artifacts_come_back_byte_for_byte_and_are_stored_once(store: Store) -> None:
    artifact = bytes(range(256)) * 40 + b"\x00\x00\xff\\x00'\"\n"
    reference = b"\x00" * 1000
    kwargs = version_kwargs("iris", artifact=artifact, reference=reference)
    store.create_model_version(**kwargs)
    store.create_model_version(**kwargs)  # same content again: a new version, no new artifact
    assert store.get_artifact(hashlib.sha256(artifact).hexdigest()) == artifact
    assert store.get_artifact(hashlib.sha256(reference).hexdigest()) == reference
    assert isinstance(store.get_artifact(kwargs["artifact_sha256"]), bytes)
    assert table_count(store, "artifacts") == 2
    assert table_count(store, "model_versions") == 2
    with pytest.raises(NotFound):
        store.get_artifact("0" * 64)


def test_not_found(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    with pytest.raises(NotFound, match="no model named"):
        store.get_model_version("nope", 1)
    with pytest.raises(NotFound, match="no version 2"):
        store.get_model_version("iris", 2)
    with pytest.raises(NotFound):
        store.list_versions("nope")
    with pytest.raises(NotFound):
        store.get_model_settings("nope")
    with pytest.raises(NotFound):
        store.set_model_settings("nope", ModelSettings(log_data=False))
    with pytest.raises(NotFound):
        store.set_alias("iris", "production", 7, reason="typo", at=T0)
    with pytest.raises(NotFound):
        store.set_alias("nope", "production", 1, reason="typo", at=T0)
    assert store.get_aliases("nope") == {}
    assert store.alias_history("iris", "production") == []


def test_list_models(store: Store) -> None:
    assert store.list_models() == []
    later = T0 + timedelta(days=1)
    store.create_model_version(**version_kwargs("zeta", created_at=T0))
    store.create_model_version(**version_kwargs("alpha", created_at=later))
    store.create_model_version(
        **version_kwargs("alpha", artifact=b"second", created_at=later + timedelta(hours=1))
    )
    store.set_alias("alpha", "production", 1, reason="first", at=later)
    store.set_alias("alpha", "candidate", 2, reason="second", at=later)
    store.set_model_settings("zeta", ModelSettings(log_data=False, retention_days=30))
    models = store.list_models()
    assert [m.name for m in models] == ["alpha", "zeta"]
    alpha, zeta = models
    # created_at of a model is its first version's
    assert alpha.created_at == later and zeta.created_at == T0
    assert alpha.latest_version == 2 and zeta.latest_version == 1
    assert alpha.aliases == {"production": 1, "candidate": 2} and zeta.aliases == {}
    assert alpha.settings == ModelSettings() and zeta.settings == ModelSettings(
        log_data=False, retention_days=30
    )


def test_aliases_and_their_history(store: Store) -> None:
    for i in range(3):
        store.create_model_version(**version_kwargs("iris", artifact=f"v{i}".encode()))
    t = [T0 + timedelta(minutes=i, microseconds=i) for i in range(6)]

    change = store.set_alias("iris", "production", 1, reason="registered", at=t[0])
    assert (change.version, change.previous_version, change.changed_at, change.reason) == (
        1,
        None,
        t[0],
        "registered",
    )
    store.set_alias("iris", "candidate", 2, reason="registered", at=t[1])
    assert store.get_aliases("iris") == {"candidate": 2, "production": 1}
    assert store.get_model_version("iris", 1).aliases == ("production",)
    assert store.get_model_version("iris", 2).aliases == ("candidate",)

    promoted = store.set_alias("iris", "production", 2, reason="promote", at=t[2])
    assert (promoted.version, promoted.previous_version) == (2, 1)
    assert store.get_model_version("iris", 2).aliases == ("candidate", "production")
    assert store.get_model_version("iris", 1).aliases == ()
    assert [v.aliases for v in store.list_versions("iris")] == [(), ("candidate", "production"), ()]

    store.set_alias("iris", "production", 3, reason="promote", at=t[3])
    store.set_alias("iris", "production", 2, reason="rollback", at=t[4])
    removed = store.set_alias("iris", "candidate", None, reason="retired", at=t[5])
    assert (removed.version, removed.previous_version) == (None, 2)
    assert store.get_aliases("iris") == {"production": 2}

    history = store.alias_history("iris", "production")
    assert [(c.version, c.previous_version, c.reason, c.changed_at) for c in history] == [
        (1, None, "registered", t[0]),
        (2, 1, "promote", t[2]),
        (3, 2, "promote", t[3]),
        (2, 3, "rollback", t[4]),
    ]
    assert all(c.name == "iris" and c.alias == "production" for c in history)
    assert [(c.version, c.previous_version, c.reason) for c in store.alias_history("iris", "candidate")] == [
        (2, None, "registered"),
        (None, 2, "retired"),
    ]
    # removing an alias that is not set is a conflict and records nothing
    with pytest.raises(Conflict):
        store.set_alias("iris", "candidate", None, reason="again", at=t[5])
    assert len(store.alias_history("iris", "candidate")) == 2
    # a failed move (unknown version) changes nothing either
    with pytest.raises(NotFound):
        store.set_alias("iris", "production", 9, reason="typo", at=t[5])
    assert store.get_aliases("iris") == {"production": 2}
    assert len(store.alias_history("iris", "production")) == 4


def test_model_settings_round_trip(store: Store) -> None:
    store.create_model_version(**version_kwargs("iris"))
    store.create_model_version(**version_kwargs("other"))
    assert store.get_model_settings("iris") == ModelSettings(log_data=True, retention_days=None)
    for settings in (
        ModelSettings(log_data=False, retention_days=None),
        ModelSettings(log_data=True, retention_days=1),
        ModelSettings(log_data=False, retention_days=3650),
        ModelSettings(nullable=("petal_width", "sépal ünïcode")),
        ModelSettings(),
    ):
        store.set_model_settings("iris", settings)
        assert store.get_model_settings("iris") == settings
        assert store.get_model_settings("other") == ModelSettings()
        assert {m.name: m.settings for m in store.list_models()}["iris"] == settings
    # settings outlive new versions
    store.set_model_settings("iris", ModelSettings(log_data=False, retention_days=9))
    store.create_model_version(**version_kwargs("iris", artifact=b"v2"))
    assert store.get_model_settings("iris") == ModelSettings(log_data=False, retention_days=9)


def test_concurrent_registrations_get_distinct_numbers(store: Store) -> None:
    """Eight registrars race for each number in turn: none may fail, none may share a number."""
    threads, rounds = 8, 10
    # the model exists already, as when a new version of a served model is registered
    found = [store.create_model_version(**version_kwargs("race"))]
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def register(t: int) -> None:
        for i in range(rounds):
            try:
                start.wait(30)  # every round starts together, so they collide
                v = store.create_model_version(**version_kwargs("race", artifact=f"{t}-{i}".encode()))
                with lock:
                    found.append(v)
            except threading.BrokenBarrierError:
                return
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    workers = [threading.Thread(target=register, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    assert sorted(found) == list(range(1, threads * rounds + 2))
    assert [v.version for v in store.list_versions("race")] == sorted(found)
