"""The loop engine: findings become incidents, incidents and signals become recommendations.

Every incident maps to exactly one loop, chosen from its kind and its evidence,
with a recommended action a person can carry out.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any, Iterable

from loopwatch.errors import InvalidInput
from loopwatch.loops.evidence import describe_software
from loopwatch.loops.kinds import DEFAULT_LOOP
from loopwatch.loops.report import Finding, Incident, Recommendation


def loop_of(kind: str, evidence: dict[str, Any]) -> tuple[str, str]:
    """The loop an incident of ``kind`` takes, and what to do."""
    if kind == "covariate_shift":
        features = ", ".join(evidence.get("drifted_features", {})) or "the inputs"
        if evidence.get("estimate_dropped"):
            return "model_selection", (
                f"Inputs moved ({features}) and the label-free estimate fell: retrain a candidate on "
                "recent data, compare it in shadow mode, and promote it through the gate."
            )
        return "eda", (
            f"Inputs moved ({features}) but the label-free estimate holds: explore the shifted data; "
            "if it is the new normal, rebaseline the reference on a window of it."
        )
    if kind == "selection_bias":
        return "data_collection", (
            "The mix of who is scored changed: label predictions from the new or grown segments "
            "(the labelling queue favours them) and check how traffic is sampled before trusting "
            "realized metrics."
        )
    if kind == "software_change":
        change = evidence.get("software_change", {})
        return "model_selection", (
            f"Inputs from {describe_software(change) if change else 'new software'} differ from the rest: "
            "fix or roll back that client's pipeline, or roll the model back, then confirm the drift clears."
        )
    if kind == "concept_drift":
        return "model_selection", (
            "The relation between inputs and outcome changed: retrain a candidate on recent labelled data, "
            "compare it with production on the same window and in shadow mode, and promote it through the gate."
        )
    if kind == "latency_regression":
        versions = evidence.get("model_versions") or []
        return "model_selection", (
            f"Serving got slower (versions {versions}): roll back to the previous version or choose a "
            "cheaper model, and keep the latency budget in the promotion gate."
        )
    if kind == "adversarial_probing":
        client = evidence.get("client_name") or evidence.get("client_id") or "the client"
        return "model_selection", (
            f"{client} is probing the model: revoke or rate-limit its key, round or withhold probabilities, "
            "and check the evasion scores of its queries before trusting the model near the boundary."
        )
    if kind == "adversarial_evasion":
        client = evidence.get("client_name") or evidence.get("client_id") or "a client"
        return "model_selection", (
            f"Inputs from {client} look crafted to evade the model: check them, turn on the clip or "
            "squeeze defences in the monitoring configuration, and retrain with adversarial examples "
            "(`loopwatch retrain --adversarial-share`) before trusting the model's answers to them."
        )
    if kind == "label_poisoning":
        source = evidence.get("source_name") or evidence.get("source") or "the source"
        return "data_collection", (
            f"Labels from {source} look poisoned: they are quarantined and left out of retraining; check "
            "the source before releasing them."
        )
    return DEFAULT_LOOP.get(kind, "eda"), "Investigate the evidence."


#: Kinds whose findings name a client: each client's findings are its own incident, so that two
#: clients named in one window are two incidents, each naming its client.
CLIENT_KINDS = frozenset({"adversarial_probing", "adversarial_evasion"})


def merge_findings(model: str, findings: Iterable[Finding], *, gap: timedelta) -> list[Incident]:
    """Findings of one kind (and, for the kinds that name a client, of one client) in windows no
    more than ``gap`` apart are one incident.

    An incident shows the evidence of its most telling finding (one whose label-free
    estimate fell outranks one whose estimate held, then the more severe), and its loop
    and action are chosen from that same evidence, so they never contradict it.
    """
    if gap < timedelta(0):
        raise InvalidInput(f"gap must not be negative, got {gap}")
    incidents: list[Incident] = []
    open_by_kind: dict[tuple[str, Any], int] = {}
    used_ids: set[str] = set()
    # a total order, so the incidents do not depend on the order the findings came in
    order = sorted(findings, key=lambda f: (f.window_start, f.kind, f.window_end, f.available_at, f.severity,
                                            f.summary))
    for finding in order:
        key = (finding.kind, finding.evidence.get("client_id") if finding.kind in CLIENT_KINDS else None)
        index = open_by_kind.get(key)
        if index is not None and finding.window_start - incidents[index].last_seen <= gap:
            current = incidents[index]
            merged = replace(
                current,
                last_seen=max(current.last_seen, finding.window_end),
                detected_at=min(current.detected_at, finding.available_at),
                severity=max(current.severity, finding.severity),
                findings=current.findings + 1,
            )
            if _telling(finding.evidence, finding.severity) > _telling(current.evidence, current.severity):
                loop, action = loop_of(finding.kind, finding.evidence)
                merged = replace(merged, summary=finding.summary, evidence=finding.evidence, loop=loop,
                                 action=action)
            incidents[index] = merged
            continue
        loop, action = loop_of(finding.kind, finding.evidence)
        incident_id = _unique(_incident_id(model, finding), used_ids)
        used_ids.add(incident_id)
        incidents.append(
            Incident(
                incident_id=incident_id,
                model=model,
                kind=finding.kind,
                loop=loop,
                first_seen=finding.window_start,
                last_seen=finding.window_end,
                detected_at=finding.available_at,
                severity=finding.severity,
                summary=finding.summary,
                action=action,
                findings=1,
                evidence=finding.evidence,
            )
        )
        open_by_kind[key] = len(incidents) - 1
    return sorted(incidents, key=lambda i: (i.detected_at, i.kind))


def _telling(evidence: dict[str, Any], severity: float) -> tuple[bool, float]:
    return bool(evidence.get("estimate_dropped")), severity


def _incident_id(model: str, finding: Finding) -> str:
    start = finding.window_start
    if start.tzinfo is not None:  # one instant, one id, whatever zone it was written in
        start = start.astimezone(timezone.utc)
    return f"{model}:{finding.kind}:{start:%Y%m%dT%H%M}"


def _unique(incident_id: str, used: set[str]) -> str:
    # two incidents of one kind can start within one minute when windows are short
    candidate, n = incident_id, 1
    while candidate in used:
        n += 1
        candidate = f"{incident_id}.{n}"
    return candidate


def recommendations(incidents: Iterable[Incident], signals: Iterable[Recommendation] = ()) -> list[Recommendation]:
    """One recommendation per incident, then the signals that are not incidents."""
    out = [
        Recommendation(
            loop=i.loop, reason=i.kind, action=i.action, incident_id=i.incident_id,
            evidence={"summary": i.summary, "first_seen": i.first_seen.isoformat(), "severity": i.severity},
        )
        for i in incidents
    ]
    return out + list(signals)
