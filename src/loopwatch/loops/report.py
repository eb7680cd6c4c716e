"""What the loop engine finds: findings per window, incidents across windows, recommendations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwatch.loops.evidence import WindowEvidence
from loopwatch.loops.kinds import LOOP_TITLES
from loopwatch.loops.performance_evidence import BusinessEvidence, LabelCoverage, PerformanceEvidence
from loopwatch.records.jsonutil import utc_iso


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One kind of trouble seen in one window, with the evidence that named it.

    ``available_at`` is when the evidence existed: the window's end for what the
    inputs show, the arrival time of the deciding label for what labels show.
    """

    kind: str
    window_start: datetime
    window_end: datetime
    available_at: datetime
    severity: float
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window_start": utc_iso(self.window_start),
            "window_end": utc_iso(self.window_end),
            "available_at": utc_iso(self.available_at),
            "severity": round(float(self.severity), 4),
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    """One loop to take, why, and what to do."""

    loop: str
    reason: str
    action: str
    incident_id: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loop": self.loop,
            "loop_title": LOOP_TITLES[self.loop],
            "reason": self.reason,
            "action": self.action,
            "incident_id": self.incident_id,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, kw_only=True)
class Incident:
    """Consecutive findings of one kind, merged; the unit that is alerted and acknowledged."""

    incident_id: str
    model: str
    kind: str
    loop: str
    first_seen: datetime
    last_seen: datetime
    detected_at: datetime
    severity: float
    summary: str
    action: str
    findings: int
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "model": self.model,
            "kind": self.kind,
            "loop": self.loop,
            "loop_title": LOOP_TITLES[self.loop],
            "first_seen": utc_iso(self.first_seen),
            "last_seen": utc_iso(self.last_seen),
            "detected_at": utc_iso(self.detected_at),
            "severity": round(float(self.severity), 4),
            "summary": self.summary,
            "action": self.action,
            "findings": self.findings,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, kw_only=True)
class LoopReport:
    """One evaluation of a model: its windows, incidents and open recommendations."""

    model: str
    evaluated_at: datetime
    config_version: int | None
    window: str
    incidents: list[Incident]
    recommendations: list[Recommendation]
    #: The evidence of each window, typed until the report is serialised.
    windows: list[WindowEvidence] = field(default_factory=list)
    performance: PerformanceEvidence = field(default_factory=PerformanceEvidence)
    labels: LabelCoverage | None = None
    business: BusinessEvidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "evaluated_at": utc_iso(self.evaluated_at),
            "config_version": self.config_version,
            "window": self.window,
            "incidents": [i.to_dict() for i in self.incidents],
            "recommendations": [r.to_dict() for r in self.recommendations],
            "windows": [w.to_dict() for w in self.windows],
            "performance": self.performance.to_dict(),
            "labels": {} if self.labels is None else self.labels.to_dict(),
            "business": {} if self.business is None else self.business.to_dict(),
        }
