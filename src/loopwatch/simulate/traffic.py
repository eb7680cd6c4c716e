"""Who sends predictions when: clients, the daily rhythm, and cutting rows into requests.

Real traffic is not a uniform stream: interactive clients follow the evening
peak of a streaming service, and the CRM scores a slice of the base in a nightly
job. Monitoring windows and per-client views only get exercised if the
simulated traffic has that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

SECONDS_PER_DAY: Final = 86_400.0


@dataclass(frozen=True, kw_only=True)
class ClientSpec:
    """A client of the prediction API and the pipeline version it declares in normal times."""

    client_id: str
    version: str
    request_type: str
    min_batch: int
    max_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "version": self.version,
            "request_type": self.request_type,
            "min_batch": self.min_batch,
            "max_batch": self.max_batch,
        }


WEB_APP: Final = ClientSpec(client_id="web-app", version="1.8.2", request_type="api", min_batch=20, max_batch=80)
MOBILE_APP: Final = ClientSpec(
    client_id="mobile-app", version="2.3.0", request_type="api", min_batch=20, max_batch=80
)
CRM_BATCH: Final = ClientSpec(
    client_id="crm-batch", version="4.1.0", request_type="batch", min_batch=100, max_batch=200
)
CLIENTS: Final = (WEB_APP, MOBILE_APP, CRM_BATCH)

# Share of the day's predictions made by the nightly CRM job; the rest is
# interactive. Mobile and tablet customers are mostly scored by the mobile app.
CRM_SHARE: Final = 0.25
CRM_START_HOUR: Final = 2.0
CRM_WINDOW_HOURS: Final = 0.75
MOBILE_APP_SHARE_OF_HANDHELD: Final = 0.85
HANDHELD_DEVICES: Final = ("mobile", "tablet")

PROBE_MIN_BATCH: Final = 25
PROBE_MAX_BATCH: Final = 50

# Interactive load per minute of the day (UTC): a broad evening peak around
# 20:00 and a quiet early morning, as for a European/US streaming audience.
_MINUTES = np.arange(1440)
_DIURNAL = 1.0 + 0.6 * np.cos(2.0 * np.pi * (_MINUTES / 1440.0 - 20.0 / 24.0))
DIURNAL_MINUTE_WEIGHTS: Final = _DIURNAL / _DIURNAL.sum()


@dataclass(frozen=True, kw_only=True)
class Layout:
    """The time of each of a day's rows (seconds after midnight, sorted) and whether the CRM job made it."""

    offsets: np.ndarray
    is_crm: np.ndarray
    client_draw: np.ndarray


def sample_layout(rng: np.random.Generator, *, n: int) -> Layout:
    """Times and CRM/interactive split of a day's ``n`` rows, in time order."""
    n_crm = int(round(n * CRM_SHARE))
    n_api = n - n_crm
    minutes = rng.choice(1440, size=n_api, p=DIURNAL_MINUTE_WEIGHTS)
    api = minutes * 60.0 + rng.random(n_api) * 60.0
    crm = (CRM_START_HOUR + rng.random(n_crm) * CRM_WINDOW_HOURS) * 3600.0
    offsets = np.round(np.concatenate([crm, api]), 3)
    is_crm = np.concatenate([np.ones(n_crm, dtype=bool), np.zeros(n_api, dtype=bool)])
    order = np.argsort(offsets, kind="stable")
    return Layout(offsets=offsets[order], is_crm=is_crm[order], client_draw=rng.random(n))


def assign_clients(layout: Layout, device: np.ndarray) -> np.ndarray:
    """The client id of each row: CRM rows to crm-batch, handhelds mostly to mobile-app."""
    handheld = np.isin(device, HANDHELD_DEVICES)
    mobile = handheld & (layout.client_draw < MOBILE_APP_SHARE_OF_HANDHELD)
    clients = np.where(mobile, MOBILE_APP.client_id, WEB_APP.client_id).astype(object)
    clients[layout.is_crm] = CRM_BATCH.client_id
    return clients


def chunk(rng: np.random.Generator, *, n: int, min_size: int, max_size: int) -> list[tuple[int, int]]:
    """Cut ``n`` consecutive rows into requests of ``min_size``..``max_size`` rows.

    The tail is split in two halves rather than leaving a tiny trailing request,
    which would be an artefact of the cut, not of the client. Only a day with
    fewer than ``min_size`` rows of a client yields a smaller request.
    """
    bounds: list[tuple[int, int]] = []
    position = 0
    while position < n:
        remaining = n - position
        if remaining <= max_size:
            size = remaining
        elif remaining < max_size + min_size:
            size = remaining // 2
        else:
            size = int(rng.integers(min_size, max_size + 1))
        bounds.append((position, position + size))
        position += size
    return bounds


def runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges over which ``values`` stays the same."""
    if len(values) == 0:
        return []
    changes = np.flatnonzero(values[1:] != values[:-1]) + 1
    edges = [0, *changes.tolist(), len(values)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def to_datetimes(origin: datetime, offsets_seconds: np.ndarray) -> list[datetime]:
    """UTC datetimes at millisecond offsets from ``origin`` (plain Python, JSON-friendly)."""
    milliseconds = np.round(np.asarray(offsets_seconds, dtype=float) * 1000.0).astype(np.int64).tolist()
    return [origin + timedelta(milliseconds=ms) for ms in milliseconds]
