"""Webhook alerts for incidents: one JSON POST per incident and URL, deduplicated across workers.

Every incident goes to every webhook of the model's monitoring configuration,
at most once per ``alert_cooldown_seconds``: before sending, a worker claims the
key ``alert:<url>:<incident_id>`` in the store, and only the one that wins the
claim sends. An incident still open and unacknowledged when the cooldown has
passed is sent again; an acknowledged (or resolved) one never is.

Delivery never raises into the caller: a receiver that is down or answers 5xx
is retried twice with a growing pause, and then the failure is logged on the
``loopwatch.application.alerts`` logger and returned as a :class:`DeliveryResult`. The
claim stays taken, so a failed alert is tried again after the cooldown, not at
every evaluation (a receiver that is down is not hammered by every worker).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from loopwatch.loops.kinds import LOOP_TITLES
from loopwatch.records.jsonutil import dumps, utc_iso

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from loopwatch.loops.monitoring_config import MonitoringConfig
    from loopwatch.records.incidents import IncidentRecord

_log = logging.getLogger("loopwatch.application.alerts")

#: Seconds a webhook receiver gets to answer one attempt.
TIMEOUT_SECONDS = 5.0
#: Attempts after the first, and the pause before the first of them (doubled each time).
RETRIES = 2
BACKOFF_SECONDS = 0.5
#: Statuses of an incident that is no longer news: never alerted.
QUIET_STATUSES = frozenset({"acknowledged", "resolved", "closed"})
#: Longest claim key the stores take.
MAX_CLAIM_KEY = 500


@dataclass(frozen=True, kw_only=True)
class DeliveryResult:
    """What became of one incident's alert to one webhook.

    ``outcome`` is ``sent`` (a 2xx answer), ``failed`` (no 2xx answer after the
    retries), ``cooldown`` (sent recently, by this or another worker) or
    ``acknowledged`` (never sent).
    """

    incident_id: str
    url: str
    outcome: str
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "url": self.url,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "error": self.error,
        }


def user_agent() -> str:
    from importlib import metadata

    try:
        own = metadata.version("loopwatch")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        own = "0+unknown"
    return f"loopwatch/{own}"


def alert_payload(incident: IncidentRecord, *, now: datetime) -> dict[str, Any]:
    """The JSON body of an alert: what happened, to which model, and which loop to take."""
    return {
        "event": "loopwatch.incident",
        "incident_id": incident.incident_id,
        "model": incident.model_name,
        "kind": incident.kind,
        "loop": incident.loop,
        "loop_title": LOOP_TITLES.get(incident.loop, incident.loop),
        "status": incident.status,
        "summary": incident.summary,
        "action": incident.action,
        "first_seen": utc_iso(incident.first_seen),
        "last_seen": utc_iso(incident.last_seen),
        "detected_at": utc_iso(incident.detected_at),
        "sent_at": utc_iso(now),
        "evidence": incident.evidence,
    }


def alert_key(url: str, incident_id: str) -> str:
    """The claim that lets one worker send this alert: ``alert:<url>:<incident_id>``.

    Store keys hold at most :data:`MAX_CLAIM_KEY` characters; a longer one names
    the URL and incident by their SHA-256 instead.
    """
    key = f"alert:{url}:{incident_id}"
    if len(key) <= MAX_CLAIM_KEY:
        return key
    return "alert:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def is_alertable(incident: IncidentRecord) -> bool:
    """Open and nobody has acknowledged it yet."""
    return incident.acknowledged_at is None and incident.status not in QUIET_STATUSES


def deliver_alerts(
    store: Any,
    incidents: Iterable[IncidentRecord],
    config: MonitoringConfig,
    *,
    now: datetime,
    client: httpx.Client | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
    retries: int = RETRIES,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> list[DeliveryResult]:
    """Send each incident to each of ``config.webhooks``, once per cooldown across all workers.

    ``client`` is an ``httpx.Client`` to send with (one is made and closed
    otherwise). Never raises: every failure is logged and returned.
    """
    incidents = list(incidents)
    if not config.webhooks or not incidents:
        return []
    import httpx

    own_client = client is None
    http = client or httpx.Client(timeout=timeout_seconds)
    results: list[DeliveryResult] = []
    try:
        for incident in incidents:
            for url in config.webhooks:
                results.append(
                    _deliver_one(store, http, incident, url, config, now=now, timeout_seconds=timeout_seconds,
                                 retries=retries, backoff_seconds=backoff_seconds)
                )
    finally:
        if own_client:
            http.close()
    return results


def _deliver_one(
    store: Any,
    http: httpx.Client,
    incident: IncidentRecord,
    url: str,
    config: MonitoringConfig,
    *,
    now: datetime,
    timeout_seconds: float,
    retries: int,
    backoff_seconds: float,
) -> DeliveryResult:
    incident_id = incident.incident_id
    if not is_alertable(incident):
        return DeliveryResult(incident_id=incident_id, url=url, outcome="acknowledged")
    try:
        won = store.claim(alert_key(url, incident_id), now=now, cooldown_seconds=config.alert_cooldown_seconds)
    except Exception as exc:  # the store failing must not take the evaluation down with it
        _log.error("alert %s to %s: could not claim it: %s", incident_id, _shown(url), exc)
        return DeliveryResult(incident_id=incident_id, url=url, outcome="failed", error=f"claim: {exc}")
    if not won:
        return DeliveryResult(incident_id=incident_id, url=url, outcome="cooldown")
    body = dumps(alert_payload(incident, now=now))
    headers = {"content-type": "application/json", "user-agent": user_agent()}
    status: int | None = None
    error: str | None = None
    attempts = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
        attempts += 1
        try:
            response = http.post(url, content=body, headers=headers, timeout=timeout_seconds)
        except Exception as exc:  # refused, timed out, bad URL: all the same to the caller
            status, error = None, f"{type(exc).__name__}: {exc}"
            continue
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult(incident_id=incident_id, url=url, outcome="sent", attempts=attempts,
                                  http_status=status)
        error = f"the receiver answered {status}"
        if 400 <= status < 500 and status not in (408, 429):
            break  # the receiver refuses this alert: asking again will not change its mind
    _log.warning("alert %s (%s, %s) to %s failed after %d attempts: %s",
                 incident_id, incident.model_name, incident.kind, _shown(url), attempts, error)
    return DeliveryResult(incident_id=incident_id, url=url, outcome="failed", attempts=attempts,
                          http_status=status, error=error)


def _shown(url: str) -> str:
    """A webhook URL for the log, without its path: such paths often carry a secret token."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."
    except ValueError:
        return "(unreadable URL)"
