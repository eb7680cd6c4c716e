"""Leased limits: several workers (limiters) on one count never exceed a key's limit."""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.auth.keys import generate_key
from loopwatch.auth.limits import BUDGET, RATE, LeaseLimiter, lease_size, retry_after, window_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T = 1_772_366_400.0  # 2026-03-01T12:00:00Z, as seconds since the epoch


class CountingStore:
    """The store's grant rule (the SQL is tested on both databases in tests/stores/test_keys.py),
    written plainly: never more than ``limit`` granted per key, kind and window."""

    def __init__(self) -> None:
        self.granted: Counter[tuple[str, str, int]] = Counter()
        self.calls = 0
        self.lock = threading.Lock()

    def claim(self, key_id: str, kind: str, window: int, want: int, limit: int) -> int:
        with self.lock:
            self.calls += 1
            count = max(0, min(want, limit - self.granted[(key_id, kind, window)]))
            self.granted[(key_id, kind, window)] += count
            return count


def _key(rate: int | None = None, budget: int | None = None):  # type: ignore[no-untyped-def]
    return generate_key(name="k", scopes=["predict"], now=NOW, rate_per_second=rate, daily_budget=budget)[0]


def test_windows_leases_and_retry_after() -> None:
    assert window_of(RATE, 10.7) == 10 and window_of(BUDGET, 86_399.9) == 0 and window_of(BUDGET, 86_400) == 1
    assert lease_size(100, 0.1) == 10 and lease_size(5, 0.1) == 1 and lease_size(1, 1.0) == 1
    assert lease_size(1_000_000, 0.01) == 10_000
    assert retry_after(RATE, 10.0) == 1 and retry_after(RATE, 10.99) == 1
    assert retry_after(BUDGET, T) == 12 * 3600  # noon: twelve hours to the next UTC day
    assert retry_after(BUDGET, T + 12 * 3600 - 0.5) == 1


def test_an_unlimited_key_never_reaches_the_store() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    assert all(limiter.take(_key(), T).allowed for _ in range(1000))
    assert store.calls == 0


def test_one_worker_serves_exactly_the_rate_then_refuses_until_the_next_second() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    key = _key(rate=50)
    verdicts = [limiter.take(key, T + 0.5) for _ in range(80)]
    assert sum(v.allowed for v in verdicts) == 50
    refused = [v for v in verdicts if not v.allowed]
    assert {(v.reason, v.retry_after) for v in refused} == {(RATE, 1)}
    assert store.calls == 50 // lease_size(50, 0.1) + 1  # ten leases and the claim that found none
    assert limiter.take(key, T + 1.0).allowed  # a new second


def test_the_budget_refuses_until_the_next_utc_day() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    key = _key(budget=30)
    served = sum(limiter.take(key, T + i).allowed for i in range(40))
    assert served == 30
    refused = limiter.take(key, T + 100)
    assert refused is not None and not refused.allowed and refused.reason == BUDGET
    assert refused.retry_after == 12 * 3600 - 100
    assert limiter.take(key, T + 12 * 3600).allowed  # midnight UTC


def test_a_request_refused_for_its_rate_uses_no_budget() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim, budget_lease_share=1.0)  # the whole budget leased at once
    key = _key(rate=2, budget=10)
    served = sum(limiter.take(key, T).allowed for _ in range(50))  # one second: the rate binds
    assert served == 2
    served_later = sum(limiter.take(key, T + 1 + i).allowed for i in range(8))
    assert served + served_later == 10  # the 48 refused requests spent nothing


def test_without_the_store_it_answers_from_its_lease_or_says_it_needs_the_store() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    key = _key(rate=100)
    assert limiter.take(key, T, store=False) is None  # nothing leased yet
    assert store.calls == 0
    assert limiter.take(key, T).allowed  # claims a lease of 10
    assert all(limiter.take(key, T, store=False).allowed for _ in range(9))  # type: ignore[union-attr]
    assert limiter.take(key, T, store=False) is None
    assert store.calls == 1


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 60),
    workers=st.integers(2, 4),
    schedule=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 2.999)), min_size=1, max_size=300),
)
def test_workers_together_never_exceed_the_limit_of_any_window(
    limit: int, workers: int, schedule: list[tuple[int, float]]
) -> None:
    store = CountingStore()
    limiters = [LeaseLimiter(claim=store.claim) for _ in range(workers)]
    key = _key(rate=limit)
    served: Counter[int] = Counter()
    for worker, offset in sorted(schedule, key=lambda item: item[1]):
        if limiters[worker % workers].take(key, T + offset).allowed:  # type: ignore[union-attr]
            served[window_of(RATE, T + offset)] += 1
    assert all(count <= limit for count in served.values())


@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
def test_with_demand_on_every_worker_the_limit_is_served_in_full(limit: int) -> None:
    """Under-serving only comes from a lease left unspent where demand stopped."""
    store = CountingStore()
    limiters = [LeaseLimiter(claim=store.claim) for _ in range(3)]
    key = _key(rate=limit)
    served = sum(limiters[i % 3].take(key, T).allowed for i in range(3 * limit + 30))  # type: ignore[union-attr]
    assert served == limit
    assert store.calls <= 3 * (math.ceil(limit / lease_size(limit, 0.1)) + 1)


def test_threads_of_one_worker_never_exceed_the_limit() -> None:
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    key = _key(rate=500)
    barrier = threading.Barrier(8)
    allowed = Counter[int]()
    lock = threading.Lock()

    def hammer() -> None:
        barrier.wait()
        mine = sum(limiter.take(key, T).allowed for _ in range(200))  # type: ignore[union-attr]
        with lock:
            allowed[0] += mine

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed[0] == 500


def test_bad_lease_shares_are_refused() -> None:
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            LeaseLimiter(claim=CountingStore().claim, rate_lease_share=share)


def test_a_late_reading_of_the_clock_counts_in_the_later_window() -> None:
    """Threads read the clock, then wait: a request stamped just before a second boundary can be
    handled after one stamped just after it. It must count in the later window, not send the
    worker back to a window the store has left (which grants nothing: a false 429)."""
    store = CountingStore()
    limiter = LeaseLimiter(claim=store.claim)
    key = _key(rate=100)
    assert limiter.take(key, T + 1.001).allowed  # type: ignore[union-attr]
    late = [limiter.take(key, T + 0.999) for _ in range(30)]
    assert all(v.allowed for v in late)  # type: ignore[union-attr]
    assert sum(store.granted[(key.key_id, RATE, w)] for w in (window_of(RATE, T),)) == 0
    # and the later window's limit covers them all
    served = 31 + sum(limiter.take(key, T + 1.5).allowed for _ in range(200))  # type: ignore[union-attr]
    assert served == 100


def test_a_store_ahead_of_this_worker_grants_nothing_and_the_refusal_waits_for_the_next_window() -> None:
    store = CountingStore()
    ahead, behind = LeaseLimiter(claim=store.claim), LeaseLimiter(claim=store.claim)
    key = _key(rate=10)

    def claim_latest(key_id: str, kind: str, window: int, want: int, limit: int) -> int:
        # the store keeps one window per key and kind: an older window grants nothing
        latest = max((w for (k, kd, w) in store.granted if (k, kd) == (key_id, kind)), default=window)
        return 0 if window < latest else store.claim(key_id, kind, window, want, limit)

    ahead.claim = behind.claim = claim_latest
    assert ahead.take(key, T + 5.2).allowed  # type: ignore[union-attr]
    refused = behind.take(key, T + 4.9)  # a clock 0.3 s behind
    assert refused is not None and not refused.allowed and refused.retry_after == 1
