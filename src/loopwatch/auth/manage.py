"""What the ``/v1/keys`` routes and ``loopwatch keys`` share: issue, describe and revoke keys.

The store is passed in (anything with the Store protocol's key methods), so this
module stays free of the stores package.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from loopwatch.auth.keys import ApiKey, check_key_id, generate_key
from loopwatch.auth.limits import BUDGET, window_of


class KeyStore(Protocol):
    def create_api_key(self, key: ApiKey) -> ApiKey: ...
    def list_api_keys(self) -> list[ApiKey]: ...
    def revoke_api_key(self, key_id: str, *, at: datetime) -> ApiKey: ...
    def key_usage(self, key_id: str, *, kind: str, window: int) -> int: ...


def issue_key(
    store: KeyStore,
    *,
    name: str,
    scopes: list[str] | tuple[str, ...],
    now: datetime,
    expires_days: int | None = None,
    rate_per_second: int | None = None,
    daily_budget: int | None = None,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """Create and store a key; the token is returned once and kept nowhere."""
    key, token = generate_key(
        name=name,
        scopes=scopes,
        now=now,
        expires_in=None if expires_days is None else timedelta(days=expires_days),
        rate_per_second=rate_per_second,
        daily_budget=daily_budget,
        created_by=created_by,
    )
    store.create_api_key(key)
    return key, token


def key_view(store: KeyStore, key: ApiKey, *, now: datetime) -> dict[str, Any]:
    """A key as shown to an admin: its record, its state and, for a key with a budget, the
    requests granted to workers today (ahead of those served by at most a lease per worker)."""
    view = key.to_dict()
    view["state"] = key.state(now)
    view["budget_used_today"] = (
        store.key_usage(key.key_id, kind=BUDGET, window=window_of(BUDGET, now.timestamp()))
        if key.daily_budget is not None
        else None
    )
    return view


def list_keys(store: KeyStore, *, now: datetime) -> list[dict[str, Any]]:
    return [key_view(store, key, now=now) for key in store.list_api_keys()]


def revoke_key(store: KeyStore, key_id: str, *, now: datetime) -> dict[str, Any]:
    return key_view(store, store.revoke_api_key(check_key_id(key_id), at=now), now=now)
