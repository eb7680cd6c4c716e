"""Monitoring state that outlives a run: incidents, configuration versions, rebaselines.

An :class:`IncidentRecord` is what a monitoring run found and which feedback
loop it belongs to; its id is chosen by the caller (say
``"churn:covariate_shift:2026-01-13"``) so that the next run updates it
instead of raising it again. A :class:`ConfigVersion` is one version of a
model's monitoring configuration. A :class:`Rebaseline` records that a
model version's reference profile was rebuilt from a period of its own
logged traffic (after a change was accepted as the new normal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopwatch.errors import InvalidInput
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.records.jsonutil import utc_iso

#: Incident statuses, in the only order they move: never back.
INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
#: The feedback loops an incident can belong to.
LOOPS = ("business", "data_collection", "eda", "model_selection")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, kw_only=True)
class IncidentRecord:
    """One incident: what was seen, when, and what to do about it."""

    incident_id: str
    model_name: str
    kind: str
    #: ``business``, ``data_collection``, ``eda`` or ``model_selection``.
    loop: str
    #: ``open``, ``acknowledged`` or ``resolved``.
    status: str
    #: Start of the first window that showed it.
    first_seen: datetime
    #: End of the latest window that showed it.
    last_seen: datetime
    #: When loopwatch first recorded it.
    detected_at: datetime
    summary: str
    evidence: dict[str, Any]
    action: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        key_text(self.incident_id, "incident_id", max_length=500)
        key_text(self.model_name, "model")
        key_text(self.kind, "kind")
        if self.loop not in LOOPS:
            raise InvalidInput(f"loop must be one of: {', '.join(LOOPS)}")
        if self.status not in INCIDENT_STATUSES:
            raise InvalidInput(f"status must be one of: {', '.join(INCIDENT_STATUSES)}")
        for name in ("first_seen", "last_seen", "detected_at"):
            _set(self, name, utc_moment(getattr(self, name), name))
        if self.acknowledged_at is not None:
            _set(self, "acknowledged_at", utc_moment(self.acknowledged_at, "acknowledged_at"))
        if not isinstance(self.evidence, dict):
            raise InvalidInput("evidence must be a JSON object")
        for name in ("summary", "action"):
            if not isinstance(getattr(self, name), str) or "\x00" in getattr(self, name):
                raise InvalidInput(f"{name} must be text without NUL characters")
        for name in ("acknowledged_by", "note"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise InvalidInput(f"{name} must be text without NUL characters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "model_name": self.model_name,
            "kind": self.kind,
            "loop": self.loop,
            "status": self.status,
            "first_seen": utc_iso(self.first_seen),
            "last_seen": utc_iso(self.last_seen),
            "detected_at": utc_iso(self.detected_at),
            "summary": self.summary,
            "evidence": self.evidence,
            "action": self.action,
            "acknowledged_at": None if self.acknowledged_at is None else utc_iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "note": self.note,
        }


@dataclass(frozen=True, kw_only=True)
class ConfigVersion:
    """One version of a model's monitoring configuration (versions count from 1)."""

    model_name: str
    version: int
    config: dict[str, Any]
    created_at: datetime
    author: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "config": self.config,
            "created_at": utc_iso(self.created_at),
            "author": self.author,
        }


@dataclass(frozen=True, kw_only=True)
class Rebaseline:
    """A model version's reference profile, rebuilt from its traffic in ``[since, until)``."""

    model_name: str
    model_version: int
    #: 1, 2, ... per model version; the highest is the one in use.
    number: int
    since: datetime
    until: datetime
    profile_sha256: str
    created_at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "number": self.number,
            "since": utc_iso(self.since),
            "until": utc_iso(self.until),
            "profile_sha256": self.profile_sha256,
            "created_at": utc_iso(self.created_at),
            "reason": self.reason,
        }
