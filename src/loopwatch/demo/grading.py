"""Grade what the monitoring found against the simulator's ground truth.

This is the only place where the timeline and the monitor's findings meet:
the monitoring code never reads the timeline (an import test keeps it so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

#: Incident kinds that change what clients send, so input monitoring should see them.
INPUT_KINDS = ("covariate_shift", "selection_bias", "software_change", "adversarial_probing")
#: The kinds the drift monitoring of inputs is graded on.
GRADED_KINDS = ("covariate_shift", "selection_bias", "software_change")


@dataclass(frozen=True)
class Detection:
    kind: str
    injected_day: int
    detected_day: int | None
    deadline_day: int
    features: list[str]
    alarms: list[str]

    @property
    def in_time(self) -> bool:
        return self.detected_day is not None and self.detected_day <= self.deadline_day

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "injected_day": self.injected_day,
            "detected_day": self.detected_day,
            "deadline_day": self.deadline_day,
            "in_time": self.in_time,
            "features": self.features,
            "alarms": self.alarms,
        }


def _day(moment: str | datetime, start: datetime) -> int:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (moment - start) // timedelta(days=1)


def affected_days(incident: dict[str, Any], n_days: int) -> range:
    """Days on which an input incident may rightly raise alarms: from its start to
    its end plus its allowed delay."""
    first = int(incident["day"])
    duration = incident.get("duration_days")
    last_active = n_days - 1 if duration is None else first + math.ceil(float(duration)) - 1
    return range(first, min(n_days, last_active + math.ceil(float(incident["max_delay_days"])) + 1))


def grade(
    timeline: dict[str, Any], windows: list[dict[str, Any]], *, start: datetime, n_days: int
) -> dict[str, Any]:
    """Per graded incident, the first alarm day within its delay; and alarms on stable days."""
    by_day: dict[int, dict[str, Any]] = {}
    for window in windows:
        if window.get("segment"):
            continue
        day = _day(window["start"], start)
        entry = by_day.setdefault(day, {"alarms": [], "features": []})
        entry["alarms"] += window["alarms"]
        entry["features"] += window["drifted_features"]
    detections = []
    affected: set[int] = set()
    for incident in timeline["incidents"]:
        if incident["kind"] in INPUT_KINDS:
            affected.update(affected_days(incident, n_days))
        if incident["kind"] not in GRADED_KINDS:
            continue
        first = int(incident["day"])
        deadline = first + math.ceil(float(incident["max_delay_days"]))
        found = next((d for d in range(first, deadline + 1) if by_day.get(d, {}).get("alarms")), None)
        seen = by_day.get(found, {}) if found is not None else {}
        detections.append(
            Detection(
                kind=incident["kind"],
                injected_day=first,
                detected_day=found,
                deadline_day=deadline,
                features=sorted(set(seen.get("features", []))),
                alarms=sorted(set(seen.get("alarms", []))),
            )
        )
    false_alarms = {
        day: sorted(set(entry["alarms"]))
        for day, entry in sorted(by_day.items())
        if entry["alarms"] and day not in affected
    }
    return {
        "detections": [d.to_dict() for d in detections],
        "false_alarms": [{"day": day, "alarms": alarms} for day, alarms in false_alarms.items()],
        "stable_days": sum(1 for d in range(n_days) if d not in affected),
    }


#: The incidents the loop engine is graded on, and the loop each must be mapped to.
LOOP_GRADED: dict[str, str] = {
    "covariate_shift": "eda",
    "selection_bias": "data_collection",
    "software_change": "model_selection",
    "concept_drift": "model_selection",
    "latency_regression": "model_selection",
    "adversarial_probing": "model_selection",
    "label_poisoning": "data_collection",
}
#: Kinds whose finding must also name who did it (the client, the feedback source): the
#: timeline's ``touches`` field, the finding's evidence field with the name, and the evidence
#: field with the id it was logged under. With auth on, the id is the sender's key id and the
#: name is that key's name; the name falls back to the id when a finding carries no name.
NAMED_KINDS: dict[str, tuple[str, str, str]] = {
    "adversarial_probing": ("client_id", "client_name", "client_id"),
    "label_poisoning": ("source", "source_name", "source"),
}
#: The kinds of finding each kind of injected incident explains: its own, and what it causes
#: by construction (a probing client's queries are also evasion attempts). Any other finding,
#: even one that starts inside an incident's period (an overfitting gap during a covariate
#: shift, say, or a concept drift on the predictions of a software change), is a false alarm.
EXPLAINS: dict[str, tuple[str, ...]] = {
    "covariate_shift": ("covariate_shift",),
    "selection_bias": ("selection_bias",),
    "software_change": ("software_change",),
    "concept_drift": ("concept_drift",),
    "latency_regression": ("latency_regression",),
    "adversarial_probing": ("adversarial_probing", "adversarial_evasion"),
    "label_poisoning": ("label_poisoning",),
}


def grade_loops(
    timeline: dict[str, Any], incidents: list[dict[str, Any]], *, start: datetime, n_days: int,
    recommendations: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Per graded incident: the first incident loopwatch raised for it, when, named how, and which loop.

    An injected incident is found by the earliest raised incident of its kind whose first
    window lies in its active period plus its delay; it counts when that incident was
    detected (its evidence existed) no later than the deadline, was diagnosed as the
    injected kind and mapped to its loop.

    Every finding that the timeline does not explain is a false alarm: a raised incident
    outside every injected incident's period, one inside a period but of a kind that
    incident does not cause (:data:`EXPLAINS`), and every signal (a recommendation tied to
    no incident: an overfitting gap, low label coverage, a business metric that left the
    model), since no injected incident causes one.
    """
    raised = [dict(i, _first=_day(i["first_seen"], start), _detected=_day(i["detected_at"], start)) for i in incidents]
    graded = []
    explained: set[int] = set()
    for truth in timeline["incidents"]:
        period = affected_days(truth, n_days)
        explains = EXPLAINS.get(truth["kind"], (truth["kind"],))
        in_period = [k for k, i in enumerate(raised) if i["_first"] in period]
        matching = [k for k in in_period if raised[k]["kind"] in explains]
        explained.update(matching)
        if truth["kind"] not in LOOP_GRADED:
            continue
        deadline = int(truth["day"]) + math.ceil(float(truth["max_delay_days"]))
        # the finding graded is the earliest of the incident's own kind; when there is none,
        # the earliest raised in its period shows what it was taken for
        same_kind = [k for k in matching if raised[k]["kind"] == truth["kind"]]
        pick = min(same_kind or in_period, key=lambda k: raised[k]["_detected"], default=None)
        found = raised[pick] if pick is not None else None
        detected = None if found is None else found["_detected"]
        named, named_id = _named(truth["kind"], found)
        who = NAMED_KINDS.get(truth["kind"])
        named_right = who is None or named == (truth.get("touches") or {}).get(who[0])
        graded.append({
            "kind": truth["kind"],
            "injected_day": int(truth["day"]),
            "deadline_day": deadline,
            "detected_day": detected,
            "diagnosis": None if found is None else found["kind"],
            "loop": None if found is None else found["loop"],
            "expected_loop": LOOP_GRADED[truth["kind"]],
            "in_time": detected is not None and detected <= deadline,
            "named": named,
            "named_id": named_id,
            "correct": found is not None and detected is not None and detected <= deadline
            and found["kind"] == truth["kind"] and found["loop"] == LOOP_GRADED[truth["kind"]] and named_right,
            "incident_id": None if found is None else found["incident_id"],
            "summary": None if found is None else found["summary"],
        })
    false_alarms = [
        {"day": i["_first"], "kind": i["kind"], "loop": i["loop"], "summary": i["summary"]}
        for k, i in enumerate(raised) if k not in explained
    ]
    false_alarms += [
        {"day": None, "kind": r["reason"], "loop": r["loop"], "summary": r["action"]}
        for r in recommendations if r.get("incident_id") is None
    ]
    return {"incidents": graded, "false_alarms": false_alarms, "raised": len(raised)}


def _named(kind: str, found: dict[str, Any] | None) -> tuple[Any, Any]:
    """Who a finding names for an incident of ``kind``: the name and the id logged (None, None
    for kinds that name nobody)."""
    fields = NAMED_KINDS.get(kind)
    if found is None or fields is None:
        return None, None
    _, name_field, id_field = fields
    evidence = found.get("evidence") or {}
    logged = evidence.get(id_field)
    name = evidence.get(name_field)
    return (logged if name is None else name), logged
