"""A scheduled evaluation that fails is recorded with its cause, logged, counted on /metrics, and
shown in the model's loop status; the schedule goes on. Real SQLite file, real app."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from loopwatch.cli.main import cli
from loopwatch.application.loop_actions import loop_status
from loopwatch.application.scheduler import Scheduler, run_due
from tests.api.helpers import wait_for

NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


def metric(text: str, name: str, model: str) -> float | None:
    found = re.search(rf'^{name}{{model="{model}"}} (\S+)$', text, re.M)
    return None if found is None else float(found.group(1))


def test_a_failed_evaluation_is_recorded_logged_and_the_others_go_on(
    trained, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    with caplog.at_level(logging.ERROR, logger="loopwatch.application.scheduler"):
        runs = run_due(trained.store, trained.registry, now=NOW, models=["ghost", "churn"])
    assert [(r.model, r.ok) for r in runs] == [("ghost", False), ("churn", True)]
    assert any("ghost" in r.getMessage() for r in caplog.records)
    (ghost,) = trained.store.evaluation_status("ghost")
    assert ghost.failing and ghost.failures == 1 and ghost.last_success_at is None
    (failure,) = trained.store.list_evaluation_failures("ghost")
    assert failure.cause == "NotFound" and "ghost" in failure.message and failure.failed_at == NOW
    (churn,) = trained.store.evaluation_status("churn")
    assert churn.last_success_at == NOW and churn.failures == 0 and not churn.failing


def test_the_scheduler_thread_records_every_failed_round_and_keeps_going(trained) -> None:  # type: ignore[no-untyped-def]
    clock = iter(NOW + timedelta(hours=i) for i in range(1000))
    scheduler = Scheduler(trained.store, trained.registry, tick_seconds=0.01, models=["ghost"],
                          clock=lambda: next(clock)).start()
    try:
        wait_for(lambda: scheduler.rounds_ >= 3)
    finally:
        scheduler.stop()
    assert scheduler.errors_ == 0  # a failed evaluation is the model's, not a broken round
    assert trained.store.evaluation_status("ghost")[0].failures >= 3


def test_metrics_count_failures_and_show_the_last_success(trained, client) -> None:  # type: ignore[no-untyped-def]
    before = client.get("/metrics").text
    assert metric(before, "loopwatch_evaluations_failed_total", "churn") is None
    run_due(trained.store, trained.registry, now=NOW, models=["churn"])
    trained.store.record_evaluation("churn", at=NOW + timedelta(hours=1), cause="OperationalError",
                                    message="database is locked")
    run_due(trained.store, trained.registry, now=NOW + timedelta(hours=2), models=["ghost"])
    text = client.get("/metrics").text
    assert metric(text, "loopwatch_evaluations_failed_total", "churn") == 1
    assert metric(text, "loopwatch_evaluations_failed_total", "ghost") == 1
    assert metric(text, "loopwatch_last_successful_evaluation_timestamp_seconds", "churn") == NOW.timestamp()
    assert metric(text, "loopwatch_last_successful_evaluation_timestamp_seconds", "ghost") is None
    # readiness stays about serving: a failing schedule does not take the service out
    assert client.get("/v1/health/ready").status_code == 200


def test_the_loop_status_shows_the_failing_schedule(trained, client) -> None:  # type: ignore[no-untyped-def]
    trained.store.record_evaluation("churn", at=NOW, cause="InvalidInput", message="a window it could not take")
    recorded = loop_status(trained.store, trained.registry, "churn", now=NOW, fresh=False)
    schedule = recorded["scheduled_evaluations"]
    assert schedule["failing"] and schedule["failures"] == 1 and schedule["last_success_at"] is None
    assert schedule["recent_failures"][0]["cause"] == "InvalidInput"
    answer = client.get("/v1/models/churn/loops", params={"fresh": "false"})
    assert answer.status_code == 200 and answer.json()["scheduled_evaluations"]["failing"] is True
    printed = CliRunner().invoke(cli, ["loops", "churn", "--recorded"])
    assert "scheduled evaluations are failing" in printed.output and "InvalidInput" in printed.output
