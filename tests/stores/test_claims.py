"""claim(): one winner per key and cooldown period, across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.stores import Store, open_store
from tests.stores.builders import T0

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc
COOLDOWN = 60.0


def test_one_claim_per_cooldown_period(store: Store) -> None:
    at = lambda seconds: T0 + timedelta(seconds=seconds)  # noqa: E731
    assert store.claim("alert:churn", now=at(0), cooldown_seconds=COOLDOWN) is True
    assert store.claim("alert:churn", now=at(0), cooldown_seconds=COOLDOWN) is False
    assert store.claim("alert:churn", now=at(59.999999), cooldown_seconds=COOLDOWN) is False
    assert store.claim("alert:churn", now=at(60), cooldown_seconds=COOLDOWN) is True  # the period is over
    assert store.claim("alert:churn", now=at(100), cooldown_seconds=COOLDOWN) is False
    assert store.claim("alert:churn", now=at(30), cooldown_seconds=COOLDOWN) is False  # a clock behind
    assert store.claim("alert:iris", now=at(100), cooldown_seconds=COOLDOWN) is True  # keys are independent
    # the cooldown is the caller's: a shorter one lets the next claim through sooner
    assert store.claim("alert:churn", now=at(70), cooldown_seconds=10) is True
    assert store.claim("alert:churn", now=at(70), cooldown_seconds=0) is True


def test_bad_cooldowns_and_keys_are_refused(store: Store) -> None:
    for bad in (-1.0, float("nan"), float("inf"), True, "60"):
        with pytest.raises(InvalidInput):
            store.claim("k", now=T0, cooldown_seconds=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.claim("k\x00", now=T0, cooldown_seconds=1)
    with pytest.raises(InvalidInput):
        store.claim("k", now=datetime(2024, 1, 1), cooldown_seconds=1)


def test_threads_racing_for_one_key_have_one_winner_per_period(store: Store) -> None:
    barrier = threading.Barrier(6)
    wins: list[int] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        for period in range(20):
            if store.claim("monitor:churn", now=T0 + timedelta(seconds=period * COOLDOWN), cooldown_seconds=COOLDOWN):
                with lock:
                    wins.append(period)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == list(range(20))


def _claim_periods(url: str, barrier: Any, periods: int, queue: Any) -> None:
    store = open_store(url, migrate=False)
    try:
        barrier.wait(timeout=60)
        won = [
            p for p in range(periods)
            if store.claim("monitor:churn", now=T0 + timedelta(seconds=p * COOLDOWN), cooldown_seconds=COOLDOWN)
        ]
        queue.put(won)
    finally:
        store.close()


def test_processes_racing_for_one_key_have_one_winner_per_period(store: Store) -> None:
    """Two processes x 50 claims on one database: each period is won exactly once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    queue = context.Queue()
    processes = [
        context.Process(target=_claim_periods, args=(store.url, barrier, 50, queue)) for _ in range(2)
    ]
    for p in processes:
        p.start()
    results = [queue.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(results[0] + results[1]) == list(range(50))
