"""The verifier: right key or 401, a cache that a revocation's generation invalidates at once,
expiry exact."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.auth.keys import ApiKey, generate_key
from loopwatch.auth.verifier import KeyVerifier
from loopwatch.errors import Unauthorized

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Keys:
    """Keys by id, counting lookups (the store's part; tested for real in tests/stores)."""

    def __init__(self) -> None:
        self.by_id: dict[str, ApiKey] = {}
        self.lookups = 0

    def get(self, key_id: str) -> ApiKey | None:
        self.lookups += 1
        return self.by_id.get(key_id)

    def add(self, **kwargs) -> str:  # type: ignore[no-untyped-def]
        key, token = generate_key(**{"name": "k", "scopes": ["read"], "now": NOW, **kwargs})
        self.by_id[key.key_id] = key
        return token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(keys: Keys, clock: Clock) -> KeyVerifier:
    return KeyVerifier(lookup=keys.get, ttl_seconds=5.0, clock=clock)


def _refused(verifier: KeyVerifier, token: str | None, match: str, now: datetime = NOW) -> None:
    with pytest.raises(Unauthorized, match=match):
        verifier.verify(token, now=now)


def test_the_right_token_gives_its_key_and_is_looked_up_once_per_ttl(
    verifier: KeyVerifier, keys: Keys, clock: Clock
) -> None:
    token = keys.add()
    for _ in range(50):
        assert verifier.verify(token, now=NOW).key_id == token[3:19]  # type: ignore[union-attr]
    assert keys.lookups == 1
    clock.now += 5.01
    verifier.verify(token, now=NOW)
    assert keys.lookups == 2


def test_missing_malformed_unknown_and_wrong_tokens_are_401(verifier: KeyVerifier, keys: Keys) -> None:
    token = keys.add()
    _refused(verifier, None, "required")
    _refused(verifier, "", "required")
    _refused(verifier, "not-a-key", "invalid API key")
    _refused(verifier, "lw_" + "0" * 16 + "_" + "a" * 43, "invalid API key")  # unknown id
    _refused(verifier, token[:-1] + ("x" if token[-1] != "x" else "y"), "invalid API key")  # wrong secret
    assert keys.lookups == 2  # the malformed ones were never looked up; the two ids once each


def test_a_cached_key_is_checked_against_the_token_every_time(verifier: KeyVerifier, keys: Keys) -> None:
    token = keys.add()
    verifier.verify(token, now=NOW)
    _refused(verifier, token[:-1] + ("x" if token[-1] != "x" else "y"), "invalid API key")
    assert keys.lookups == 1


def test_expiry_is_exact_even_while_cached(verifier: KeyVerifier, keys: Keys) -> None:
    token = keys.add(expires_in=timedelta(hours=1))
    assert verifier.verify(token, now=NOW + timedelta(minutes=59)) is not None
    _refused(verifier, token, "expired", now=NOW + timedelta(hours=1))


def test_a_revocation_takes_effect_within_the_ttl_or_at_once_when_forgotten(
    verifier: KeyVerifier, keys: Keys, clock: Clock
) -> None:
    token = keys.add()
    key_id = token[3:19]
    verifier.verify(token, now=NOW)
    keys.by_id[key_id] = replace(keys.by_id[key_id], revoked_at=NOW)
    assert verifier.verify(token, now=NOW) is not None  # still cached
    clock.now += 5.01
    _refused(verifier, token, "revoked")
    other = keys.add()
    verifier.verify(other, now=NOW)
    keys.by_id[other[3:19]] = replace(keys.by_id[other[3:19]], revoked_at=NOW)
    verifier.forget(other[3:19])
    _refused(verifier, other, "revoked")


def test_a_new_key_is_found_once_the_negative_entry_is_old(
    verifier: KeyVerifier, keys: Keys, clock: Clock
) -> None:
    key, token = generate_key(name="late", scopes=["read"], now=NOW)
    _refused(verifier, token, "invalid")
    keys.by_id[key.key_id] = key
    _refused(verifier, token, "invalid")  # the unknown id is cached
    clock.now += 5.01
    assert verifier.verify(token, now=NOW) == key


def test_without_the_store_a_miss_is_none_and_a_hit_is_answered(verifier: KeyVerifier, keys: Keys) -> None:
    token = keys.add()
    assert verifier.verify(token, now=NOW, store=False) is None
    assert keys.lookups == 0
    verifier.verify(token, now=NOW)
    assert verifier.verify(token, now=NOW, store=False) is not None
    with pytest.raises(Unauthorized):  # malformed tokens are refused without any store
        verifier.verify("junk", now=NOW, store=False)


def test_the_cache_is_bounded(keys: Keys, clock: Clock) -> None:
    verifier = KeyVerifier(lookup=keys.get, ttl_seconds=60, max_entries=10, clock=clock)
    for i in range(100):
        with pytest.raises(Unauthorized):
            verifier.verify(f"lw_{i:016x}_" + "a" * 43, now=NOW)
    assert len(verifier._cache) == 10


def test_a_new_generation_makes_every_cached_key_stale_at_once(verifier: KeyVerifier, keys: Keys) -> None:
    token, other = keys.add(), keys.add()
    for t in (token, other):
        verifier.verify(t, now=NOW, generation=7)
        verifier.verify(t, now=NOW, generation=7)
    assert keys.lookups == 2  # cached at generation 7
    key_id = token[3:19]
    keys.by_id[key_id] = replace(keys.by_id[key_id], revoked_at=NOW)  # revoked: the store now says 8
    assert verifier.verify(token, now=NOW, generation=7) is not None  # a request that began before
    with pytest.raises(Unauthorized, match="revoked"):  # no TTL is waited for
        verifier.verify(token, now=NOW, generation=8)
    verifier.verify(other, now=NOW, generation=8)
    verifier.verify(other, now=NOW, generation=8)
    with pytest.raises(Unauthorized, match="revoked"):
        verifier.verify(token, now=NOW, generation=8)
    assert keys.lookups == 4  # each key read once at the new generation, then cached again


def test_a_lookup_tagged_with_an_older_generation_is_not_trusted_later(keys: Keys, clock: Clock) -> None:
    """The race: a request reads generation 0, a revocation commits (generation 1), and only
    then does the request's lookup run. Whatever that lookup read, the next request (which
    reads generation 1) must not take it from the cache."""
    token = keys.add()
    key_id = token[3:19]
    active = keys.by_id[key_id]
    stale_reads = [active]  # the racing lookup returns the record as it was before the revoke

    def lookup(kid: str) -> ApiKey | None:
        return stale_reads.pop() if stale_reads else keys.get(kid)

    verifier = KeyVerifier(lookup=lookup, ttl_seconds=3600, clock=clock)
    keys.by_id[key_id] = replace(active, revoked_at=NOW)
    assert verifier.verify(token, now=NOW, generation=0) is not None  # began before the revoke returned
    with pytest.raises(Unauthorized, match="revoked"):
        verifier.verify(token, now=NOW, generation=1)
    with pytest.raises(Unauthorized, match="revoked"):
        verifier.verify(token, now=NOW, generation=1)


def test_a_slower_older_lookup_does_not_replace_a_newer_one(keys: Keys, clock: Clock) -> None:
    token = keys.add()
    verifier = KeyVerifier(lookup=keys.get, ttl_seconds=3600, clock=clock)
    verifier.verify(token, now=NOW, generation=5)
    verifier._load(token[3:19], 4)  # a request that read generation 4 finishes its lookup late
    verifier.verify(token, now=NOW, generation=5)
    assert keys.lookups == 2  # the generation-5 entry was kept
    clock.now += 3601  # once it is old, any lookup replaces it
    verifier._load(token[3:19], 4)
    verifier.verify(token, now=NOW, generation=4)
    assert keys.lookups == 3
