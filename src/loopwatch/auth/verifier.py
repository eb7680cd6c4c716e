"""Verify presented tokens against stored keys, with an in-memory cache that a revocation
invalidates at once.

Looking a key up in the store for every request would put a key read on the path of
every prediction. The verifier keeps what it looked up, by key id, together with the
store's *key generation* read before the lookup: a number that every revocation moves
on, in the transaction that revokes (``Store.key_generation``). The caller reads the
generation at the start of each request (one single-row read) and passes it in; a
cached key is used only if it was looked up at that very generation. So:

- a request that starts after a revocation has committed reads the new generation,
  finds every cached key stale and looks its key up again: the revocation holds for
  it in every worker and process that shares the store, at once;
- a cached key whose generation matches was looked up after every revocation so far
  committed, so it is the store's current record.

The generation must be read *before* the lookup it tags: a revocation that commits in
between then leaves an entry tagged with the older generation, which the next request
(reading the newer one) does not trust.

Without a generation (``generation=None``) an entry is trusted for ``ttl_seconds``. With
one, the TTL still bounds how long a record is trusted, for changes made to the keys
table by other means than a revocation. Expiry is checked against the clock at every
request, so it is exact. Key ids the store does not know are cached too, so a flood of
made-up keys costs one lookup per id and TTL; the cache is bounded.

The token's hash is compared with the stored hash at every request, in constant time;
the cache holds the stored record, never a token.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Callable

from loopwatch.auth.keys import ApiKey, parse_token, token_matches
from loopwatch.errors import Unauthorized

MISSING_KEY = "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
INVALID_KEY = "invalid API key"
#: An entry's generation when none was given (older than any the store holds).
_NO_GENERATION = -1


def key_id_of(token: str | None) -> str:
    """The key id of a well-formed token; Unauthorized for a missing or malformed one, which
    is refused without reading anything."""
    if not token:
        raise Unauthorized(MISSING_KEY)
    key_id = parse_token(token)
    if key_id is None:
        raise Unauthorized(INVALID_KEY)
    return key_id


class KeyVerifier:
    """``verify(token, now=..., generation=...)`` returns the token's key or raises :class:`Unauthorized`."""

    def __init__(
        self,
        *,
        lookup: Callable[[str], ApiKey | None],
        ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be >= 0 and max_entries >= 1")
        self.lookup = lookup
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        #: key id -> (when looked up, generation read before the lookup, the record or None)
        self._cache: OrderedDict[str, tuple[float, int, ApiKey | None]] = OrderedDict()
        self._lock = threading.Lock()
        #: Lookups sent to the store, for measurement.
        self.lookups_ = 0

    def verify(
        self, token: str | None, *, now: datetime, generation: int | None = None, store: bool = True
    ) -> ApiKey | None:
        """The active key ``token`` belongs to.

        ``generation`` is the store's key generation, read at the start of this request and
        before any lookup this call makes (see the module docstring). With ``store=False`` a
        key that is not cached at that generation is not looked up: None is returned, and
        the caller asks again with ``store=True`` off the event loop.
        """
        key_id = key_id_of(token)
        assert token is not None
        wanted = _NO_GENERATION if generation is None else generation
        found, key = self._cached(key_id, wanted, generation is not None)
        if not found:
            if not store:
                return None
            key = self._load(key_id, wanted)
        if key is None or not token_matches(token, key):
            raise Unauthorized(INVALID_KEY)
        state = key.state(now)
        if state != "active":
            raise Unauthorized(f"API key {state}")
        return key

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _cached(self, key_id: str, generation: int, exact: bool) -> tuple[bool, ApiKey | None]:
        with self._lock:
            entry = self._cache.get(key_id)
            if entry is None or self.clock() - entry[0] > self.ttl_seconds:
                return False, None
            if exact and entry[1] != generation:
                return False, None
            return True, entry[2]

    def _load(self, key_id: str, generation: int) -> ApiKey | None:
        self.lookups_ += 1
        key = self.lookup(key_id)
        with self._lock:
            held = self._cache.get(key_id)
            now = self.clock()
            # a concurrent request that read a newer generation may have stored its lookup
            # first: keep that one, the newer of the two, while it is fresh
            if held is None or held[1] <= generation or now - held[0] > self.ttl_seconds:
                self._cache[key_id] = (now, generation, key)
                self._cache.move_to_end(key_id)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return key
