"""Incidents, monitoring configuration versions and rebaselines, on both backends."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.errors import IntegrityError, InvalidInput, NotFound
from loopwatch.records import IncidentRecord
from loopwatch.stores import Store
from tests.stores.builders import T0, days, version_kwargs

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc


def incident(incident_id: str = "churn:covariate_shift:2024-05-17", **changes: object) -> IncidentRecord:
    base = IncidentRecord(
        incident_id=incident_id,
        model_name="churn",
        kind="covariate_shift",
        loop="eda",
        status="open",
        first_seen=T0,
        last_seen=T0 + days(1),
        detected_at=T0 + days(1, ),
        summary="tenure drifted",
        evidence={"features": ["tenure"], "p_value": 1e-9, "nested": {"ü": [1, None]}},
        action="look at the onboarding funnel",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_an_incident_round_trips(store: Store) -> None:
    first = incident(evidence={"a": 1.5, "quote": '"\\\n'}, acknowledged_by=None)
    assert store.upsert_incident(first) == first
    assert store.get_incident(first.incident_id) == first
    assert store.get_incident(first.incident_id).to_dict()["first_seen"] == "2024-05-17T12:30:45.123456Z"
    with pytest.raises(NotFound):
        store.get_incident("nope")


def test_a_later_run_updates_what_it_may_and_keeps_the_first_times(store: Store) -> None:
    store.upsert_incident(incident())
    later = incident(
        first_seen=T0 + days(3), detected_at=T0 + days(4), last_seen=T0 + days(4), evidence={"p_value": 0.0},
        summary="still drifting", loop="data_collection", action="collect more", kind="other", model_name="iris",
    )
    stored = store.upsert_incident(later)
    assert stored == replace(later, first_seen=T0, detected_at=T0 + days(1), kind="covariate_shift", model_name="churn")
    # last_seen never moves back (a rerun over older windows)
    again = store.upsert_incident(replace(later, last_seen=T0 + days(2), summary="rerun"))
    assert (again.last_seen, again.summary) == (T0 + days(4), "rerun")
    assert store.list_incidents() == [again]


def test_status_only_moves_forward(store: Store) -> None:
    store.upsert_incident(incident("a"))
    acked = store.acknowledge_incident("a", by="ana", at=T0 + days(2), note="on it")
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at, acked.note) == (
        "acknowledged", "ana", T0 + days(2), "on it"
    )
    seen_again = store.upsert_incident(incident("a", status="open", last_seen=T0 + days(5)))
    assert (seen_again.status, seen_again.acknowledged_by, seen_again.note) == ("acknowledged", "ana", "on it")
    assert seen_again.last_seen == T0 + days(5)
    assert store.upsert_incident(incident("a", status="resolved")).status == "resolved"
    assert store.upsert_incident(incident("a", status="open")).status == "resolved"
    assert store.acknowledge_incident("a", by="bo", at=T0 + days(6)).status == "resolved"
    # acknowledging again without a note keeps the note
    assert store.get_incident("a").note == "on it" and store.get_incident("a").acknowledged_by == "bo"
    store.upsert_incident(incident("b"))
    assert store.upsert_incident(incident("b", status="resolved")).status == "resolved"
    with pytest.raises(NotFound):
        store.acknowledge_incident("nope", by=None, at=T0)


def test_list_incidents_filters_by_model_and_status(store: Store) -> None:
    store.upsert_incident(incident("c", first_seen=T0 + days(2)))
    store.upsert_incident(incident("a", first_seen=T0 + days(1), model_name="iris"))
    store.upsert_incident(incident("b", first_seen=T0 + days(1)))
    store.acknowledge_incident("b", by=None, at=T0)
    assert [i.incident_id for i in store.list_incidents()] == ["a", "b", "c"]
    assert [i.incident_id for i in store.list_incidents("churn")] == ["b", "c"]
    assert [i.incident_id for i in store.list_incidents("churn", status="open")] == ["c"]
    assert [i.incident_id for i in store.list_incidents(status="acknowledged")] == ["b"]
    assert store.list_incidents("ghost") == []


@pytest.mark.parametrize(
    "changes",
    [{"loop": "marketing"}, {"status": "closed"}, {"first_seen": datetime(2024, 1, 1)}, {"incident_id": ""},
     {"evidence": [1]}, {"summary": "a\x00"}, {"model_name": "m\x00"}],
)
def test_bad_incidents_are_refused_when_built(changes: dict) -> None:
    with pytest.raises(InvalidInput):
        incident(**changes)


def test_monitor_configs_are_versioned(store: Store) -> None:
    assert store.get_monitor_config("churn") is None
    first = store.put_monitor_config("churn", {"window": "1d", "alpha": 0.01}, at=T0, author="ana")
    assert (first.version, first.config, first.created_at, first.author) == (1, {"window": "1d", "alpha": 0.01}, T0, "ana")
    # the same configuration again is not a new version
    assert store.put_monitor_config("churn", {"alpha": 0.01, "window": "1d"}, at=T0 + days(1)) == first
    second = store.put_monitor_config("churn", {"window": "7d", "nested": {"x": [1, 2]}}, at=T0 + days(2))
    assert second.version == 2 and second.author is None
    assert store.put_monitor_config("iris", {"window": "1h"}, at=T0).version == 1
    assert store.get_monitor_config("churn") == second
    assert store.get_monitor_config("churn", 1) == first
    assert store.get_monitor_config("churn", 3) is None
    assert store.list_monitor_configs("churn") == [first, second]
    assert second.to_dict()["created_at"] == "2024-05-19T12:30:45.123456Z"
    with pytest.raises(InvalidInput):
        store.put_monitor_config("churn", [1], at=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.put_monitor_config("churn", {}, at=datetime(2024, 1, 1))


def test_concurrent_config_writers_take_numbers_in_turn(store: Store) -> None:
    errors: list[BaseException] = []

    def put(worker: int) -> None:
        try:
            for i in range(8):
                store.put_monitor_config("churn", {"worker": worker, "i": i}, at=T0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [c.version for c in store.list_monitor_configs("churn")] == list(range(1, 25))


def _profile(text: str) -> tuple[bytes, str]:
    data = text.encode() + bytes(range(256))
    return data, hashlib.sha256(data).hexdigest()


def test_rebaselines_are_numbered_per_version_and_the_latest_is_read_back(store: Store) -> None:
    store.create_model_version(**version_kwargs("churn"))
    store.create_model_version(**version_kwargs("churn"))
    assert store.latest_rebaseline("churn", 1) is None
    added = []
    for i, version in enumerate((1, 1, 2)):
        data, sha = _profile(f"profile {i}")
        added.append(
            store.add_rebaseline(
                model_name="churn", model_version=version, since=T0 + days(i), until=T0 + days(i + 7),
                profile=data, profile_sha256=sha, at=T0 + days(10 + i), reason=f"accepted change {i}",
            )
        )
    assert [(r.model_version, r.number) for r in added] == [(1, 1), (1, 2), (2, 1)]
    latest, data = store.latest_rebaseline("churn", 1)  # type: ignore[misc]
    assert latest == added[1] and data == _profile("profile 1")[0]
    assert latest.to_dict()["since"] == "2024-05-18T12:30:45.123456Z" and latest.reason == "accepted change 1"
    assert store.list_rebaselines("churn") == added
    assert store.list_rebaselines("iris") == []
    assert store.get_artifact(added[2].profile_sha256) == _profile("profile 2")[0]


def test_bad_rebaselines_are_refused(store: Store) -> None:
    store.create_model_version(**version_kwargs("churn"))
    data, sha = _profile("p")
    good = {"model_name": "churn", "model_version": 1, "since": T0, "until": T0 + days(1), "profile": data,
            "profile_sha256": sha, "at": T0, "reason": "r"}
    with pytest.raises(IntegrityError):
        store.add_rebaseline(**{**good, "profile": data + b"x"})
    with pytest.raises(NotFound):
        store.add_rebaseline(**{**good, "model_version": 2})
    with pytest.raises(InvalidInput):
        store.add_rebaseline(**{**good, "until": T0})
    with pytest.raises(InvalidInput):
        store.add_rebaseline(**{**good, "at": datetime(2024, 1, 1)})
    assert store.list_rebaselines("churn") == []
    assert store.add_rebaseline(**{**good, "since": T0 - timedelta(microseconds=1)}).number == 1
