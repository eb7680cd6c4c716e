"""Helpers of the auth API tests: keys of every scope, and a service with auth on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi.testclient import TestClient

from loopwatch.auth.manage import issue_key
from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.stores.base import Store

SCOPES = ("predict", "ingest", "feedback", "read", "admin")


@dataclass(frozen=True)
class Issued:
    key_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def issue(store: Store, *scopes: str, name: str = "test", **limits: Any) -> Issued:
    key, token = issue_key(store, name=name, scopes=list(scopes), now=datetime.now(timezone.utc), **limits)
    return Issued(key.key_id, token)


def secure_client(settings: Settings, **overrides: Any) -> TestClient:
    """A service with auth on (the scheduler off: these tests are about the door)."""
    app = create_app(settings.with_overrides(auth="on", schedule_enabled=False, **overrides))
    return TestClient(app, raise_server_exceptions=False)


def fixed_clock(client: TestClient, at: float) -> list[float]:
    """Pin the limits' clock of ``client``'s app at ``at``; change the list's item to move it."""
    now = [at]
    client.app.state.key_guard.clock = lambda: now[0]  # type: ignore[attr-defined]
    return now
