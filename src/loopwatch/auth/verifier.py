"""Verify presented tokens against stored keys, with a short in-memory cache.

Looking a key up in the store for every request would put a database read on
the path of every prediction. The verifier keeps what it looked up, by key id,
for ``ttl_seconds`` (5 s by default): a revoked key then stops working within
that time in every worker (at once in the worker that revoked it, which calls
:meth:`KeyVerifier.forget`). Expiry is checked against the clock at every
request, so it is exact. Key ids the store does not know are cached too, so a
flood of made-up keys costs one lookup per id and TTL; the cache is bounded.

The token's hash is compared with the stored hash at every request, in
constant time; the cache holds the stored record, never a token.
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


class KeyVerifier:
    """``verify(token, now=...)`` returns the token's key or raises :class:`Unauthorized`."""

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
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._lock = threading.Lock()
        #: Lookups sent to the store, for measurement.
        self.lookups_ = 0

    def verify(self, token: str | None, *, now: datetime, store: bool = True) -> ApiKey | None:
        """The active key ``token`` belongs to.

        With ``store=False`` a key that is not cached is not looked up: None is
        returned, and the caller asks again with ``store=True`` off the event loop.
        """
        if not token:
            raise Unauthorized(MISSING_KEY)
        key_id = parse_token(token)
        if key_id is None:
            raise Unauthorized(INVALID_KEY)
        found, key = self._cached(key_id)
        if not found:
            if not store:
                return None
            key = self._load(key_id)
        if key is None or not token_matches(token, key):
            raise Unauthorized(INVALID_KEY)
        state = key.state(now)
        if state != "active":
            raise Unauthorized(f"API key {state}")
        return key

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _cached(self, key_id: str) -> tuple[bool, ApiKey | None]:
        with self._lock:
            entry = self._cache.get(key_id)
            if entry is None or self.clock() - entry[0] > self.ttl_seconds:
                return False, None
            return True, entry[1]

    def _load(self, key_id: str) -> ApiKey | None:
        self.lookups_ += 1
        key = self.lookup(key_id)
        with self._lock:
            self._cache[key_id] = (self.clock(), key)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return key
