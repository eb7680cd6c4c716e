"""Scheduled evaluations in the store (migration 7): failures with their cause, each model's
last success, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.stores import Store
from tests.stores.builders import T0

pytest_plugins = ["tests.postgres_fixtures"]


def test_a_failure_is_kept_with_its_cause_and_counted(store: Store) -> None:
    assert store.evaluation_status("churn") == []
    first = store.record_evaluation("churn", at=T0, cause="InvalidInput", message="current must be 2-D, got (2, 7)")
    assert (first.failures, first.last_failure_at, first.last_success_at, first.failing) == (1, T0, None, True)
    ok = store.record_evaluation("churn", at=T0 + timedelta(hours=1))
    assert (ok.failures, ok.last_success_at, ok.failing) == (1, T0 + timedelta(hours=1), False)
    again = store.record_evaluation("churn", at=T0 + timedelta(hours=2), cause="OperationalError",
                                    message="database is locked")
    assert again.failures == 2 and again.failing
    failures = store.list_evaluation_failures("churn")
    assert [(f.cause, f.failed_at) for f in failures] == [
        ("OperationalError", T0 + timedelta(hours=2)), ("InvalidInput", T0)]
    assert failures[1].message == "current must be 2-D, got (2, 7)"
    assert store.list_evaluation_failures("churn", limit=1)[0].cause == "OperationalError"
    assert store.list_evaluation_failures("iris") == []


def test_status_of_every_model_and_times_never_move_back(store: Store) -> None:
    store.record_evaluation("b", at=T0 + timedelta(hours=5))
    store.record_evaluation("b", at=T0)  # a late worker's record of an older run
    store.record_evaluation("a", at=T0, cause="KeyError", message="'x'")
    statuses = store.evaluation_status()
    assert [s.model_name for s in statuses] == ["a", "b"]
    assert statuses[1].last_success_at == T0 + timedelta(hours=5) and statuses[1].failures == 0
    assert statuses[0].last_success_at is None and statuses[0].failing


def test_odd_messages_are_stored_and_bad_records_refused(store: Store) -> None:
    store.record_evaluation("m", at=T0, cause="ValueError", message="nul \x00 here " + "x" * 5000)
    stored = store.list_evaluation_failures("m")[0].message
    assert stored.startswith("nul \\0 here") and len(stored) == 2000
    for bad in ({"cause": ""}, {"cause": "  "}):
        with pytest.raises(InvalidInput):
            store.record_evaluation("m", at=T0, **bad)
    with pytest.raises(InvalidInput):
        store.list_evaluation_failures("m", limit=0)


def test_concurrent_failures_are_all_counted(store: Store) -> None:
    barrier = threading.Barrier(4)

    def fail(worker: int) -> None:
        barrier.wait()
        for i in range(5):
            store.record_evaluation("m", at=T0 + timedelta(seconds=worker * 10 + i), cause="RuntimeError",
                                    message=f"{worker}/{i}")

    threads = [threading.Thread(target=fail, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.evaluation_status("m")[0].failures == 20
    assert len(store.list_evaluation_failures("m", limit=100)) == 20
