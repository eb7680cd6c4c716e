"""What the feedback loops of a model say now, and the changes people make to them.

The API's loops routes and the CLI's loops commands are thin layers over these
functions: a fresh or recorded evaluation with each incident's acknowledgement,
the versioned monitoring configuration, and rebaselines.

A fresh evaluation records the incidents it finds (an upsert keyed by the
incident id, so evaluating twice records nothing new), so that every incident
anyone has seen can be acknowledged. Alerts are only sent by the schedule.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.kinds import LOOP_TITLES
from loopwatch.records.jsonutil import utc_iso
from loopwatch.records.period import Period
from loopwatch.application.configs import load_monitoring_config

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.application.summaries import Summariser
    from loopwatch.records.incidents import ConfigVersion, IncidentRecord, Rebaseline
    from loopwatch.registry import Registry

#: What an incident's acknowledgement adds to the engine's view of it.
_STATE_FIELDS = ("status", "acknowledged_at", "acknowledged_by", "note")


def require_model(store: Any, name: str) -> None:
    """Raise NotFound unless the model exists."""
    store.get_model_settings(name)


def loop_status(
    store: Any,
    registry: Registry,
    name: str,
    *,
    now: datetime,
    fresh: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    window: str | None = None,
    summariser: Summariser | None = None,
) -> dict[str, Any]:
    """The model's incidents and open recommendations, as JSON-ready data.

    ``fresh`` evaluates the loops now (over ``[since, until)``, windows of
    ``window`` or the configured length) and records the incidents found;
    otherwise the recorded incidents that are not resolved are answered.
    ``open_incidents`` counts those nobody has acknowledged.
    """
    Period(since=since, until=until)  # InvalidInput for a period without timezones or backwards
    require_model(store, name)
    config, version = load_monitoring_config(store, name)
    if window is not None:
        from loopwatch.application.monitoring.windows import WindowSpec

        WindowSpec.parse(window)  # a clear 422 before anything is evaluated
        config = config.merged({"window": window})
    if not fresh:
        return _recorded_status(store, name, config=config, version=version, now=now)

    from loopwatch.application.monitoring.loops_runner import evaluate_loops, record_incidents

    report = evaluate_loops(store, registry, name, since=since, until=until, config=config,
                            config_version=version, summariser=summariser)
    record_incidents(store, report, now=now)
    data = report.to_dict()
    states: dict[str, dict[str, Any]] = {}
    for incident in data["incidents"]:
        try:
            state = _state_of(store.get_incident(incident["incident_id"]))
        except NotFound:  # pragma: no cover - recorded just above
            state = {"status": "open", "acknowledged_at": None, "acknowledged_by": None, "note": None}
        incident.update(state)
        states[incident["incident_id"]] = state
    data["recommendations"] = [
        {**r, "incident_status": states.get(r["incident_id"], {}).get("status")}
        for r in data["recommendations"]
        if r["incident_id"] is None or states.get(r["incident_id"], {}).get("status") != "resolved"
    ]
    data["fresh"] = True
    data["open_incidents"] = sum(1 for i in data["incidents"] if i["status"] == "open")
    data["scheduled_evaluations"] = scheduled_evaluations(store, name)
    return data


def scheduled_evaluations(store: Any, name: str, *, failures: int = 5) -> dict[str, Any]:
    """The schedule's record of the model: last success, last failure, how many failed, and the
    latest failures with their cause (a schedule that keeps failing must not look quiet)."""
    found = store.evaluation_status(name)
    status = found[0].to_dict() if found else {"last_success_at": None, "last_failure_at": None,
                                                "failures": 0, "failing": False}
    status["recent_failures"] = [f.to_dict() for f in store.list_evaluation_failures(name, limit=failures)]
    return status


def _recorded_status(
    store: Any, name: str, *, config: MonitoringConfig, version: int | None, now: datetime
) -> dict[str, Any]:
    records = [r for r in store.list_incidents(name) if r.status != "resolved"]
    incidents = [incident_view(r) for r in records]
    recommendations = [
        {
            "loop": r.loop,
            "loop_title": LOOP_TITLES.get(r.loop, r.loop),
            "reason": r.kind,
            "action": r.action,
            "incident_id": r.incident_id,
            "evidence": {"summary": r.summary, "first_seen": r.first_seen.isoformat()},
            "incident_status": r.status,
        }
        for r in records
    ]
    return {
        "model": name,
        "fresh": False,
        "evaluated_at": utc_iso(now),
        "config_version": version,
        "window": config.window,
        "incidents": incidents,
        "recommendations": recommendations,
        "open_incidents": sum(1 for r in records if r.status == "open"),
        "scheduled_evaluations": scheduled_evaluations(store, name),
    }


def _state_of(record: IncidentRecord) -> dict[str, Any]:
    data = record.to_dict()
    return {k: data[k] for k in _STATE_FIELDS}


def incident_view(record: IncidentRecord) -> dict[str, Any]:
    """A recorded incident as JSON, with its loop's title."""
    return {**record.to_dict(), "loop_title": LOOP_TITLES.get(record.loop, record.loop)}


def list_incidents(store: Any, name: str, *, status: str | None = None) -> list[IncidentRecord]:
    from loopwatch.records.incidents import INCIDENT_STATUSES

    if status is not None and status not in INCIDENT_STATUSES:
        raise InvalidInput(f"status must be one of: {', '.join(INCIDENT_STATUSES)}")
    require_model(store, name)
    return list(store.list_incidents(name, status=status))


def acknowledge(
    store: Any, incident_id: str, *, by: str | None, at: datetime, note: str | None = None
) -> IncidentRecord:
    """Acknowledge an incident: it stays listed, but is never alerted again."""
    for value, what, limit in ((by, "by", 200), (note, "note", 2000)):
        if value is not None and (len(value) > limit or "\x00" in value):
            raise InvalidInput(f"{what} must be text of at most {limit} characters")
    found: IncidentRecord = store.acknowledge_incident(incident_id, by=by or "unknown", at=at, note=note)
    return found


def monitoring_config(store: Any, name: str, version: int | None = None) -> dict[str, Any]:
    """A version of the model's monitoring configuration (the latest by default), every setting shown.

    A model nobody configured has the defaults, as version ``None``.
    """
    require_model(store, name)
    found = store.get_monitor_config(name, version)
    if found is None:
        if version is not None:
            raise NotFound(f"model {echo(name)} has no monitoring configuration version {version}")
        return {"model_name": name, "version": None, "config": MonitoringConfig().to_dict(),
                "created_at": None, "author": None}
    data = found.to_dict()
    data["config"] = MonitoringConfig.from_dict(found.config).to_dict()
    return data


def change_monitoring_config(
    store: Any, name: str, changes: Mapping[str, Any], *, at: datetime, author: str | None = None
) -> ConfigVersion:
    """Merge ``changes`` onto the latest configuration and store the result as the next version."""
    if not isinstance(changes, Mapping):
        raise InvalidInput("a monitoring configuration change is a JSON object of settings")
    if not changes:
        raise InvalidInput("name at least one setting to change")
    if author is not None and (len(author) > 200 or "\x00" in author):
        raise InvalidInput("author must be text of at most 200 characters")
    require_model(store, name)
    current, _ = load_monitoring_config(store, name)
    changed = current.merged(changes)
    from loopwatch.application.monitoring.windows import WindowSpec

    WindowSpec.parse(changed.window)  # else every scheduled evaluation would fail on it
    saved: ConfigVersion = store.put_monitor_config(name, changed.to_dict(), at=at, author=author)
    return saved


def monitoring_config_versions(store: Any, name: str) -> list[ConfigVersion]:
    require_model(store, name)
    return list(store.list_monitor_configs(name))


def rebaseline(
    registry: Registry,
    name: str,
    *,
    since: datetime,
    until: datetime,
    reason: str,
    at: datetime,
    version: int | None = None,
) -> Rebaseline:
    """Rebuild a version's (the production one's by default) reference from its traffic in [since, until)."""
    Period(since=since, until=until)
    if not reason.strip() or len(reason) > 2000 or "\x00" in reason:
        raise InvalidInput("reason must be a non-empty text of at most 2000 characters")
    number = registry.resolve(name, version).version
    done: Rebaseline = registry.rebaseline(name, number, since, until, reason=reason, at=at)
    return done
