"""Per-key rate limits and daily budgets, one limit however many workers serve the key.

The store keeps, per key, how many requests it has *granted* in the current
window (a second for the rate, a UTC day for the budget) and never grants more
than the limit: one atomic statement (``Store.claim_key_usage``) adds a grant
only up to the limit. A worker does not go to the store for every request: it
claims a *lease* of several requests at once and spends it from memory, and
claims again when the lease is used up. A lease is a tenth of the rate and a
hundredth of the daily budget (at least one request).

Why leases, and not one counter update per request or in-memory counts flushed
now and then:

- one update per request is one more write transaction per request, and on
  SQLite every write transaction takes the file's write lock (and an fsync with
  ``synchronous=FULL``), the very lock the prediction log's group commit needs;
- counting in memory and flushing every N ms lets workers overshoot the limit by
  what they count between two flushes, and a limit divided by the number of
  workers is wrong whenever traffic is uneven or the number of workers changes;
- with leases the store's count is always an upper bound of what was served, so
  the workers together **never exceed** the limit, and the store sees about ten
  claims per second of a key at its full rate. The price is the other way round:
  while another worker holds an unspent lease, a key can be refused a little
  early, by at most one lease per other worker and window (and a lease held by a
  worker that stops is lost for its window).

Windows follow each worker's wall clock (UTC): workers on one machine share it;
workers on several machines should keep their clocks in sync (NTP). A fixed
one-second window lets a client send up to twice the rate across a window
boundary; over any longer span the rate holds.

This module is pure: the store is reached through the ``claim`` callable.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Literal, overload

from loopwatch.auth.keys import ApiKey

#: Usage kinds, as the store records them.
RATE = "second"
BUDGET = "day"
SECONDS_PER_DAY = 86_400
#: Shares of a limit one worker claims at a time.
RATE_LEASE_SHARE = 0.1
BUDGET_LEASE_SHARE = 0.01

#: ``claim(key_id, kind, window, want, limit) -> granted``: grant up to ``want`` more
#: requests in ``window`` without the window's total passing ``limit``.
Claim = Callable[[str, str, int, int, int], int]


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go ahead; when not, why and how many seconds to wait."""

    allowed: bool
    reason: str | None = None
    retry_after: int = 0

    @property
    def message(self) -> str:
        if self.reason == BUDGET:
            return "the key's daily query budget is used up"
        if self.reason == RATE:
            return "the key's rate limit is reached"
        return "allowed"


ALLOWED = Verdict(True)


def lease_size(limit: int, share: float) -> int:
    """How many requests a worker claims at once: ``share`` of the limit, at least one."""
    return max(1, min(limit, math.ceil(limit * share)))


def window_of(kind: str, now: float) -> int:
    """The window a moment (seconds since the epoch, UTC) falls in: its second or its day."""
    return int(now // (1 if kind == RATE else SECONDS_PER_DAY))


def _start(kind: str, window: int) -> float:
    return float(window * (1 if kind == RATE else SECONDS_PER_DAY))


def retry_after(kind: str, now: float) -> int:
    """Whole seconds until the window after ``now`` starts (at least 1)."""
    length = 1 if kind == RATE else SECONDS_PER_DAY
    return max(1, math.ceil((window_of(kind, now) + 1) * length - now))


@dataclass
class _Pool:
    window: int
    tokens: int = 0
    exhausted: bool = False


class LeaseLimiter:
    """Rate limits and daily budgets of keys, enforced through leases from the store.

    ``take(key, now)`` answers one request. With ``store=False`` it never reaches
    the store and returns None when it would have to (the service then calls it
    again in a thread), so the common case costs a few dictionary operations on
    the event loop.
    """

    def __init__(
        self,
        *,
        claim: Claim,
        rate_lease_share: float = RATE_LEASE_SHARE,
        budget_lease_share: float = BUDGET_LEASE_SHARE,
    ) -> None:
        for share in (rate_lease_share, budget_lease_share):
            if not 0 < share <= 1:
                raise ValueError("a lease share lies in (0, 1]")
        self.claim = claim
        self.rate_lease_share = rate_lease_share
        self.budget_lease_share = budget_lease_share
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._lock = threading.Lock()
        #: Claims sent to the store, for measurement.
        self.claims_ = 0

    @overload
    def take(self, key: ApiKey, now: float, *, store: Literal[True] = True) -> Verdict: ...
    @overload
    def take(self, key: ApiKey, now: float, *, store: bool) -> Verdict | None: ...
    def take(self, key: ApiKey, now: float, *, store: bool = True) -> Verdict | None:
        if not key.limited:
            return ALLOWED
        for _ in range(4):
            with self._lock:
                needs = self._try_local(key, now)
            if isinstance(needs, Verdict):
                return needs
            if not store:
                return None
            granted = [(kind, window, self._claim(key, kind, window, limit)) for kind, window, limit in needs]
            with self._lock:
                for kind, window, count in granted:
                    pool = self._pools.get((key.key_id, kind))
                    if pool is not None and pool.window == window:
                        pool.tokens += count
                        pool.exhausted = pool.exhausted or count == 0
        # other threads kept spending what this one claimed: let the client come back soon
        return Verdict(False, RATE, 1)

    def _limits(self, key: ApiKey) -> list[tuple[str, int]]:
        found = []
        if key.daily_budget is not None:
            found.append((BUDGET, key.daily_budget))
        if key.rate_per_second is not None:
            found.append((RATE, key.rate_per_second))
        return found

    def _try_local(self, key: ApiKey, now: float) -> Verdict | list[tuple[str, int, int]]:
        """Spend one request from every pool of the key, or say which pools need a claim.

        Nothing is spent unless every pool has a request to spare, so a request refused
        for its rate does not use up budget."""
        pools = []
        needs = []
        for kind, limit in self._limits(key):
            window = window_of(kind, now)
            pool = self._pools.get((key.key_id, kind))
            # A pool's window only moves forward: a request whose time was read just before
            # another's (threads, a wait for the thread pool) counts in the later window. Going
            # back would claim a window the store has left, which grants nothing.
            if pool is None or pool.window < window:
                pool = self._pools[(key.key_id, kind)] = _Pool(window)
            if pool.tokens > 0:
                pools.append(pool)
            elif pool.exhausted:
                return Verdict(False, kind, retry_after(kind, max(now, _start(kind, pool.window))))
            else:
                needs.append((kind, pool.window, limit))
        if needs:
            return needs
        for pool in pools:
            pool.tokens -= 1
        return ALLOWED

    def _claim(self, key: ApiKey, kind: str, window: int, limit: int) -> int:
        share = self.rate_lease_share if kind == RATE else self.budget_lease_share
        self.claims_ += 1
        return int(self.claim(key.key_id, kind, window, lease_size(limit, share), limit))
