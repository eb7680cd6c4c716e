"""API keys and their usage on both backends: hashes only, and never more granted than the limit."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from loopwatch.auth.keys import ApiKey, generate_key
from loopwatch.errors import Conflict, InvalidInput, NotFound
from loopwatch.stores import Store, open_store
from tests.stores.builders import T0
from tests.stores.rawsql import raw_rows

pytest_plugins = ["tests.postgres_fixtures"]


def _new(store: Store, **kwargs: Any) -> tuple[ApiKey, str]:
    key, token = generate_key(**{"name": "web", "scopes": ["predict", "read"], "now": T0, **kwargs})
    store.create_api_key(key)
    return key, token


def test_a_key_round_trips_and_only_its_hash_is_stored(store: Store) -> None:
    key, token = _new(store, expires_in=timedelta(days=3), rate_per_second=50, daily_budget=10**11,
                      created_by="cli")
    assert store.get_api_key(key.key_id) == key
    assert store.list_api_keys() == [key]
    stored = raw_rows(store, "SELECT * FROM api_keys")
    assert len(stored) == 1
    assert token not in repr(stored) and token.split("_", 2)[2] not in repr(stored)
    assert key.token_sha256 in repr(stored)
    assert store.get_api_key("0" * 16) is None


def test_keys_list_in_creation_order_and_ids_are_unique(store: Store) -> None:
    first, _ = _new(store, name="a")
    second, _ = _new(store, name="b", now=T0 + timedelta(seconds=1))
    assert [k.key_id for k in store.list_api_keys()] == [first.key_id, second.key_id]
    with pytest.raises(Conflict):
        store.create_api_key(replace(second, name="copy"))


def test_revoking_keeps_the_record_and_the_first_time(store: Store) -> None:
    key, _ = _new(store)
    revoked = store.revoke_api_key(key.key_id, at=T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1) and revoked.state(T0 + timedelta(hours=2)) == "revoked"
    again = store.revoke_api_key(key.key_id, at=T0 + timedelta(hours=5))
    assert again.revoked_at == T0 + timedelta(hours=1)
    assert store.get_api_key(key.key_id) == revoked
    with pytest.raises(NotFound):
        store.revoke_api_key("f" * 16, at=T0)


def test_bad_ids_and_arguments_are_refused(store: Store) -> None:
    for bad in ("short", "G" * 16, "0" * 15 + "\x00", "' OR 1=1 --"):
        with pytest.raises(InvalidInput):
            store.get_api_key(bad)
    key, _ = _new(store)
    for kwargs in ({"kind": "minute"}, {"window": -1}, {"want": -1}, {"limit": True}, {"window": 1.5}):
        args = {"kind": "second", "window": 1, "want": 1, "limit": 1, **kwargs}
        with pytest.raises(InvalidInput):
            store.claim_key_usage(key.key_id, **args)


def test_claims_grant_up_to_the_limit_per_window(store: Store) -> None:
    key, _ = _new(store)
    claim = lambda window, want, limit=10: store.claim_key_usage(  # noqa: E731
        key.key_id, kind="second", window=window, want=want, limit=limit
    )
    assert [claim(100, 4) for _ in range(4)] == [4, 4, 2, 0]  # the third is cut to what is left
    assert store.key_usage(key.key_id, kind="second", window=100) == 10
    assert claim(99, 4) == 0  # a worker whose clock is behind gets nothing
    assert store.key_usage(key.key_id, kind="second", window=100) == 10
    assert claim(101, 25) == 10  # a new window starts from zero; never more than the limit
    assert claim(101, 1, limit=5) == 0  # a lowered limit below what was granted grants nothing
    assert claim(101, 3, limit=12) == 2
    assert store.key_usage(key.key_id, kind="second", window=101) == 12
    assert store.key_usage(key.key_id, kind="second", window=100) == 0  # the old window is gone
    # kinds are counted apart
    assert store.claim_key_usage(key.key_id, kind="day", window=20_000, want=7, limit=7) == 7
    assert store.key_usage(key.key_id, kind="day", window=20_000) == 7
    assert store.key_usage(key.key_id, kind="second", window=101) == 12


def test_threads_claiming_together_are_granted_exactly_the_limit(store: Store) -> None:
    key, _ = _new(store)
    barrier = threading.Barrier(6)
    granted: list[int] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        for _ in range(15):
            got = store.claim_key_usage(key.key_id, kind="second", window=7, want=3, limit=100)
            with lock:
                granted.append(got)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100  # 270 asked for
    assert store.key_usage(key.key_id, kind="second", window=7) == 100


def _claim_many(url: str, key_id: str, barrier: Any, queue: Any) -> None:
    store = open_store(url, migrate=False)
    try:
        barrier.wait(timeout=60)
        queue.put(sum(store.claim_key_usage(key_id, kind="day", window=5, want=2, limit=75) for _ in range(50)))
    finally:
        store.close()


def test_processes_claiming_together_are_granted_exactly_the_limit(store: Store) -> None:
    key, _ = _new(store)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    queue = context.Queue()
    processes = [
        context.Process(target=_claim_many, args=(store.url, key.key_id, barrier, queue)) for _ in range(2)
    ]
    for p in processes:
        p.start()
    totals = [queue.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(totals) == 75  # 200 asked for by two processes


def test_a_revocation_moves_the_key_generation_on_for_every_store_on_the_database(store: Store) -> None:
    key, _ = _new(store)
    other, _ = _new(store, name="other")
    elsewhere = open_store(store.url, migrate=False)  # another worker's or process's store
    try:
        assert store.key_generation() == elsewhere.key_generation() == 0
        store.revoke_api_key(key.key_id, at=T0)
        # committed with the revocation: the other store sees both at its next read
        assert elsewhere.key_generation() == 1
        assert elsewhere.get_api_key(key.key_id).revoked_at == T0  # type: ignore[union-attr]
        store.revoke_api_key(key.key_id, at=T0 + timedelta(hours=1))  # already revoked: nothing changes
        assert elsewhere.key_generation() == 1
        elsewhere.revoke_api_key(other.key_id, at=T0)
        assert store.key_generation() == 2
        with pytest.raises(NotFound):
            store.revoke_api_key("f" * 16, at=T0)
        assert store.key_generation() == 2
    finally:
        elsewhere.close()
