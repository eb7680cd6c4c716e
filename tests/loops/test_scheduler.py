"""The schedule: a real SQLite file, a trained model with logged traffic, several "workers",
a real webhook receiver. Each model is evaluated once per period whatever the number of workers."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from loopwatch.records import IncidentRecord
from loopwatch.registry import Registry
from loopwatch.application.scheduler import MAX_TICK_SECONDS, Scheduler, run_due, scheduled_models
from loopwatch.stores import open_store
from tests.api.helpers import copy_database, wait_for
from tests.loops.receivers import Receiver, closed_port_url, serve_receiver
from tests.loops.scheduling import IMPOSSIBLE_BUDGET, NOW, build_template

HOUR = 3600.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    return build_template(tmp_path_factory.mktemp("loops-template") / "loopwatch.db", churn_training)


@pytest.fixture
def db(tmp_path: Path, template: Path) -> Path:
    path = tmp_path / "loopwatch.db"
    copy_database(template, path)
    return path


class Worker:
    """What one service worker holds: its own connection to the file, its own registry."""

    def __init__(self, db: Path) -> None:
        self.store = open_store(f"sqlite:///{db}", sqlite_synchronous="NORMAL")
        self.registry = Registry(self.store)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def workers(db: Path) -> Iterator[list[Worker]]:
    made = [Worker(db), Worker(db)]
    yield made
    for worker in made:
        worker.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


def configure(worker: Worker, **settings: object) -> None:
    worker.store.put_monitor_config("churn", {**IMPOSSIBLE_BUDGET, **settings}, at=NOW, author="test")


def test_only_models_with_a_production_version_are_scheduled(workers: list[Worker], churn_training) -> None:
    (worker, _) = workers
    assert scheduled_models(worker.store) == ["churn"]
    worker.registry.set_alias("churn", "production", None, reason="test: nothing in production")
    assert scheduled_models(worker.store) == []
    assert run_due(worker.store, worker.registry, now=NOW) == []


def test_one_evaluation_per_period_across_two_workers(workers: list[Worker]) -> None:
    first, second = workers
    configure(first, schedule_seconds=HOUR)
    runs = run_due(first.store, first.registry, now=NOW) + run_due(second.store, second.registry, now=NOW)
    (run,) = runs
    assert run.ok and run.model == "churn" and run.config_version == 1
    assert run.incidents == 1 and len(run.new_incidents) == 1
    (incident,) = first.store.list_incidents("churn")
    assert incident.kind == "latency_regression" and incident.status == "open"
    assert incident.incident_id == run.new_incidents[0]

    # within the period nobody evaluates; once it has passed, exactly one worker does
    for later in (timedelta(minutes=1), timedelta(minutes=59)):
        assert run_due(second.store, second.registry, now=NOW + later) == []
        assert run_due(first.store, first.registry, now=NOW + later) == []
    again = run_due(second.store, second.registry, now=NOW + timedelta(hours=1))
    again += run_due(first.store, first.registry, now=NOW + timedelta(hours=1))
    assert len(again) == 1 and again[0].ok
    assert again[0].new_incidents == ()  # the same incident, seen again: not new


def test_two_scheduler_threads_evaluate_once_per_period(workers: list[Worker]) -> None:
    """Two Scheduler instances (two workers) ticking every 20 ms on a clock that the test moves."""
    configure(workers[0], schedule_seconds=HOUR)
    clock = {"now": NOW}
    lock = threading.Lock()
    runs: list[tuple[int, datetime]] = []

    def recorder(slot: int):  # type: ignore[no-untyped-def]
        def on_round(done: list) -> None:  # type: ignore[type-arg]
            with lock:
                runs.extend((slot, r.ran_at) for r in done if r.ok)
        return on_round

    schedulers = [
        Scheduler(w.store, w.registry, tick_seconds=0.02, clock=lambda: clock["now"], on_round=recorder(i))
        for i, w in enumerate(workers)
    ]
    for scheduler in schedulers:
        scheduler.start()
    try:
        wait_for(lambda: all(s.rounds_ >= 10 for s in schedulers))
        assert [at for _, at in runs] == [NOW]  # many rounds, one evaluation
        clock["now"] = NOW + timedelta(minutes=30)
        rounds = [s.rounds_ for s in schedulers]
        wait_for(lambda: all(s.rounds_ >= r + 5 for s, r in zip(schedulers, rounds)))
        assert len(runs) == 1
        clock["now"] = NOW + timedelta(hours=1, seconds=1)
        wait_for(lambda: len(runs) == 2)
        rounds = [s.rounds_ for s in schedulers]
        wait_for(lambda: all(s.rounds_ >= r + 5 for s, r in zip(schedulers, rounds)))
        assert [at for _, at in runs] == [NOW, NOW + timedelta(hours=1, seconds=1)]
    finally:
        for scheduler in schedulers:
            scheduler.stop()
    assert not any(s.running for s in schedulers) and all(s.errors_ == 0 for s in schedulers)


def test_new_incidents_are_alerted_once_per_cooldown_until_acknowledged(
    workers: list[Worker], receiver: Receiver
) -> None:
    first, second = workers
    configure(first, schedule_seconds=60.0, alert_cooldown_seconds=HOUR, webhooks=[receiver.url])

    (run,) = run_due(first.store, first.registry, now=NOW)
    assert [d.outcome for d in run.deliveries] == ["sent"]
    (body,) = receiver.bodies
    assert body["incident_id"] == run.new_incidents[0] and body["kind"] == "latency_regression"
    assert body["model"] == "churn" and body["loop"] == "model_selection" and body["action"]

    # evaluated again each minute (by either worker) within the cooldown: nothing sent
    for minutes, worker in ((1, second), (30, first)):
        (later,) = run_due(worker.store, worker.registry, now=NOW + timedelta(minutes=minutes))
        assert later.ok and [d.outcome for d in later.deliveries] == ["cooldown"]
    assert len(receiver.bodies) == 1

    # still open and unacknowledged after the cooldown: sent again
    (later,) = run_due(second.store, second.registry, now=NOW + timedelta(hours=1, minutes=1))
    assert [d.outcome for d in later.deliveries] == ["sent"] and len(receiver.bodies) == 2

    second.store.acknowledge_incident(body["incident_id"], by="ana", at=NOW + timedelta(hours=2))
    (later,) = run_due(first.store, first.registry, now=NOW + timedelta(hours=3))
    assert later.ok and later.deliveries == ()
    assert len(receiver.bodies) == 2
    assert first.store.get_incident(body["incident_id"]).status == "acknowledged"


@pytest.mark.parametrize("trouble", ["answers 500", "is down"])
def test_a_failing_receiver_does_not_break_the_evaluation(
    workers: list[Worker], receiver: Receiver, trouble: str
) -> None:
    receiver.status = 500
    url = receiver.url if trouble == "answers 500" else closed_port_url()
    (worker, _) = workers
    configure(worker, webhooks=[url])
    (run,) = run_due(worker.store, worker.registry, now=NOW)
    assert run.ok and len(run.new_incidents) == 1
    (delivery,) = run.deliveries
    assert delivery.outcome == "failed" and delivery.attempts == 3
    assert worker.store.get_incident(run.new_incidents[0]).status == "open"


def test_one_failing_model_does_not_stop_the_others(workers: list[Worker]) -> None:
    (worker, _) = workers
    runs = run_due(worker.store, worker.registry, now=NOW, models=["ghost", "churn"])
    assert [r.model for r in runs] == ["ghost", "churn"]
    assert runs[0].error is not None and "ghost" in runs[0].error
    assert runs[1].ok


def test_the_scheduler_outlives_a_failing_round(workers: list[Worker]) -> None:
    (worker, _) = workers
    calls = {"n": 0}

    def flaky(_: list) -> None:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("a round that breaks")

    scheduler = Scheduler(worker.store, worker.registry, tick_seconds=0.01, on_round=flaky).start()
    try:
        wait_for(lambda: scheduler.rounds_ >= 6)
    finally:
        scheduler.stop()
    assert scheduler.errors_ == 3 and not scheduler.running


def test_the_tick_follows_the_shortest_schedule(workers: list[Worker]) -> None:
    (worker, _) = workers
    scheduler = Scheduler(worker.store, worker.registry, tick_seconds=30.0, clock=lambda: NOW)
    scheduler.run_once()
    assert scheduler.pause_ == 30.0  # the default schedule is an hour
    configure(worker, schedule_seconds=5.0)
    scheduler.run_once()
    assert scheduler.pause_ == 5.0
    assert Scheduler(worker.store, worker.registry, tick_seconds=600.0).pause_ == MAX_TICK_SECONDS
    with pytest.raises(ValueError):
        Scheduler(worker.store, worker.registry, tick_seconds=0)


def test_stop_does_not_wait_for_the_first_round(workers: list[Worker]) -> None:
    (worker, _) = workers
    scheduler = Scheduler(worker.store, worker.registry).start(delay=30.0)
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 2.0 and scheduler.rounds_ == 0


def test_scheduled_runs_are_json_ready(workers: list[Worker]) -> None:
    (worker, _) = workers
    configure(worker)
    (run,) = run_due(worker.store, worker.registry, now=NOW)
    data = run.to_dict()
    assert data["model"] == "churn" and data["ran_at"] == "2026-03-05T00:00:00Z"
    assert data["new_incidents"] == list(run.new_incidents) and data["error"] is None
    assert isinstance(worker.store.list_incidents("churn")[0], IncidentRecord)
