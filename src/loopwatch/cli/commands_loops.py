"""``loopwatch loops``, ``watch``, ``incidents``, ``ack``, ``rebaseline`` and ``config``: the feedback loops."""

from __future__ import annotations

import getpass
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from loopwatch.cli.common import err, handle_errors, out, parse_period, settings_options
from loopwatch.cli.layout import Column, print_rows
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, UnreadableData, echo
from loopwatch.records.jsonutil import dumps, loads

#: Exit code of ``loopwatch loops`` when an incident is open and nobody has acknowledged it.
EXIT_OPEN_INCIDENTS = 1


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _echo_json(data: Any) -> None:
    click.echo(dumps(data).decode())


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        return "cli"


@click.command()
@click.argument("model")
@click.option("--since", default=None, help="Event time from (ISO-8601; UTC when no zone).")
@click.option("--until", default=None, help="Event time to, exclusive (default: now).")
@click.option("--window", default=None, help="Window length (1h, 1d, 7d); the configured one by default.")
@click.option("--recorded", is_flag=True, help="Show the recorded incidents instead of evaluating now.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@click.option("--source", type=click.Choice(["auto", "log", "summaries"]), default="auto", show_default=True,
              help="Read the evidence from window summaries or the log; auto: summaries when they are on "
                   "(LOOPWATCH_SUMMARIES_ENABLED, the default). The log adds realized performance per "
                   "segment and the loss stream; count:N windows and earlier --until read it.")
@settings_options
@handle_errors
def loops(model: str, since: str | None, until: str | None, window: str | None, recorded: bool,
          as_json: bool, source: str, settings: Settings) -> None:
    """Evaluate MODEL's feedback loops now: its incidents and the loops they call for.

    The incidents found are recorded (so they can be acknowledged); alerts are only
    sent by the schedule. Exit code 1 when an incident is open and unacknowledged
    (for cron), 0 otherwise, 2 for errors.
    """
    period = parse_period(since, until)
    from loopwatch.application.loop_actions import loop_status
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        use_summaries = source == "summaries" or (source == "auto" and settings.summaries_enabled)
        data = loop_status(ws.store, ws.registry, model, now=_now(), fresh=not recorded,
                           since=period.since, until=period.until, window=window,
                           summariser=ws.summariser if use_summaries else None)
    if as_json:
        _echo_json(data)
    else:
        _print_loops(data)
    sys.exit(EXIT_OPEN_INCIDENTS if data["open_incidents"] else 0)


def _print_loops(data: dict[str, Any]) -> None:
    title = f"{data['model']}: {len(data['incidents'])} incidents, {data['open_incidents']} open"
    config = data["config_version"]
    out.print(f"[bold]{title}[/] (configuration {'v' + str(config) if config else 'defaults'}, "
              f"windows of {data['window']})", highlight=False)
    if data["incidents"]:
        _print_incidents(data["incidents"], title="incidents")
    if data["recommendations"]:
        print_rows(out, title="open recommendations",
                   columns=[Column("loop", wrap=True), Column("why"), Column("what to do", wrap=True)],
                   rows=[[escape(r["loop_title"]), escape(r["reason"]), escape(r["action"])]
                         for r in data["recommendations"]])
    elif not data["incidents"]:
        out.print("nothing to act on")
    schedule = data.get("scheduled_evaluations") or {}
    if schedule.get("failing"):
        latest = (schedule.get("recent_failures") or [{}])[0]
        out.print(f"[red]scheduled evaluations are failing[/]: {schedule['failures']} failed, the last at "
                  f"{schedule['last_failure_at']} ({escape(str(latest.get('cause')))}: {escape(str(latest.get('message')))}); "
                  "last success "
                  f"{schedule['last_success_at'] or 'never'}", highlight=False)


def _print_incidents(incidents: list[dict[str, Any]], *, title: str) -> None:
    style = {"open": "[red]open[/]", "acknowledged": "[yellow]acknowledged[/]", "resolved": "resolved"}
    # the id is what ``loopwatch ack`` takes: never broken over lines, nor the words of the summary
    print_rows(out, title=title,
               columns=[Column("incident"), Column("status"), Column("since"), Column("summary", wrap=True)],
               rows=[[escape(i["incident_id"]), style.get(i["status"], escape(i["status"])), i["first_seen"][:10],
                      escape(i["summary"])] for i in incidents])


@click.command()
@click.option("--model", "-m", "models", multiple=True, help="Only this model (repeatable; default: every "
              "model with a production version).")
@click.option("--once", is_flag=True, help="Run one round and exit.")
@click.option("--tick", type=click.FloatRange(0.01, 3600), default=None,
              help="Longest pause between rounds, in seconds (default $LOOPWATCH_SCHEDULE_TICK_SECONDS or 30).")
@click.option("--json", "as_json", is_flag=True, help="Print each evaluation as one JSON line.")
@settings_options
@handle_errors
def watch(models: tuple[str, ...], once: bool, tick: float | None, as_json: bool, settings: Settings) -> None:
    """Run the loop engine on each model's schedule, without the server; alerts go to the webhooks.

    Each model is evaluated once per its schedule_seconds (see loopwatch config), however
    many watchers and servers share the database. Stop with Ctrl-C. With --once, exit
    code 2 when an evaluation failed.
    """
    from loopwatch.application.scheduler import Scheduler
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        for name in models:
            ws.registry.resolve(name)  # an unknown model, or one with nothing in production: exit 2
        scheduler = Scheduler(ws.store, ws.registry, models=list(models) or None,
                              tick_seconds=tick or settings.schedule_tick_seconds,
                              on_round=lambda runs: _print_runs(runs, as_json=as_json),
                              summariser=ws.summariser if settings.summaries_enabled else None)
        if once:
            runs = scheduler.run_once()
            if not runs and not as_json:
                out.print("nothing was due")
            sys.exit(2 if any(not r.ok for r in runs) else 0)
        if not as_json:
            err.print(f"watching {', '.join(models) if models else 'every model in production'} "
                      f"(database {settings.database_url}); Ctrl-C stops", highlight=False)
        scheduler.start()
        try:
            while scheduler.running:
                time.sleep(0.5)
        finally:
            scheduler.stop()


def _print_runs(runs: list[Any], *, as_json: bool) -> None:
    for run in runs:
        if as_json:
            _echo_json(run.to_dict())
            continue
        when = run.ran_at.isoformat()[:19]
        if not run.ok:
            out.print(f"{when} {escape(run.model)}: [red]failed[/]: {escape(str(run.error))}", highlight=False)
            continue
        sent = sum(1 for d in run.deliveries if d.sent)
        failed = [d for d in run.deliveries if d.outcome == "failed"]
        out.print(f"{when} {run.model}: {run.incidents} incidents ({len(run.new_incidents)} new), "
                  f"{run.recommendations} recommendations, {sent} alerts sent"
                  + (f", [red]{len(failed)} alerts failed[/]" if failed else ""), highlight=False)


@click.command()
@click.argument("model")
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved"]), default=None,
              help="Only incidents with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print the incidents as JSON.")
@settings_options
@handle_errors
def incidents(model: str, status: str | None, as_json: bool, settings: Settings) -> None:
    """MODEL's recorded incidents, oldest first."""
    from loopwatch.application.loop_actions import incident_view, list_incidents
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        found = [incident_view(r) for r in list_incidents(ws.store, model, status=status)]
    if as_json:
        _echo_json(found)
    elif found:
        _print_incidents(found, title=f"{model}: incidents")
    else:
        out.print(f"{model}: no {status + ' ' if status else ''}incidents")


@click.command()
@click.argument("incident_id")
@click.option("--by", default=None, help="Who acknowledges it (default: your user name).")
@click.option("--note", default=None, help="What is being done about it.")
@click.option("--json", "as_json", is_flag=True, help="Print the acknowledged incident as JSON.")
@settings_options
@handle_errors
def ack(incident_id: str, by: str | None, note: str | None, as_json: bool, settings: Settings) -> None:
    """Acknowledge INCIDENT_ID: it stays listed, and no alert is sent for it again."""
    from loopwatch.application.loop_actions import acknowledge, incident_view
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        done = acknowledge(ws.store, incident_id, by=by or _user(), at=_now(), note=note)
    if as_json:
        _echo_json(incident_view(done))
    else:
        out.print(f"{done.incident_id}: {done.status} by {done.acknowledged_by}", highlight=False)


@click.command()
@click.argument("model")
@click.option("--since", required=True, help="Start of the traffic that becomes the new reference (ISO-8601).")
@click.option("--until", required=True, help="End of that traffic, exclusive.")
@click.option("--version", type=click.IntRange(1), default=None, help="The model version (default: production).")
@click.option("--reason", required=True, help="Why this change is the new normal.")
@click.option("--json", "as_json", is_flag=True, help="Print the rebaseline as JSON.")
@settings_options
@handle_errors
def rebaseline(model: str, since: str, until: str, version: int | None, reason: str, as_json: bool,
               settings: Settings) -> None:
    """Accept MODEL's traffic in [--since, --until) as the new normal: monitoring compares with it from now on."""
    from loopwatch.application.loop_actions import rebaseline as run_rebaseline
    from loopwatch.application.workspace import Workspace

    period = parse_period(since, until)
    assert period.since is not None and period.until is not None  # both options are required
    with Workspace(settings) as ws:
        done = run_rebaseline(ws.registry, model, since=period.since, until=period.until,
                              reason=reason, at=_now(), version=version)
    if as_json:
        _echo_json(done.to_dict())
    else:
        out.print(f"{model} v{done.model_version}: rebaseline {done.number} from "
                  f"{done.since.isoformat()} to {done.until.isoformat()}", highlight=False)


@click.command()
@click.argument("model")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Change one setting; VALUE is JSON when it parses as JSON, else text (repeatable).")
@click.option("--file", "from_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A JSON object of settings to change (--set wins over it).")
@click.option("--history", is_flag=True, help="List every version of the configuration.")
@click.option("--version", type=click.IntRange(1), default=None, help="Show this version.")
@click.option("--author", default=None, help="Who makes the change (default: your user name).")
@settings_options
@handle_errors
def config(model: str, assignments: tuple[str, ...], from_file: Path | None, history: bool,
           version: int | None, author: str | None, settings: Settings) -> None:
    """Show or change MODEL's monitoring configuration (JSON); every change is a new version.

    loopwatch config churn --set latency_budget_ms=50 --set 'webhooks=["https://..."]'
    """
    from loopwatch.application import loop_actions
    from loopwatch.application.workspace import Workspace

    changes = _changes(assignments, from_file)
    if changes and (history or version is not None):
        raise InvalidInput("--history and --version show a configuration: do not combine them with changes")
    with Workspace(settings) as ws:
        if changes:
            saved = loop_actions.change_monitoring_config(ws.store, model, changes, at=_now(),
                                                       author=author or _user())
            _echo_json(saved.to_dict())
        elif history:
            _echo_json([v.to_dict() for v in loop_actions.monitoring_config_versions(ws.store, model)])
        else:
            _echo_json(loop_actions.monitoring_config(ws.store, model, version))


def _changes(assignments: tuple[str, ...], from_file: Path | None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if from_file is not None:
        try:
            text = from_file.read_bytes()
        except OSError as exc:
            raise UnreadableData(f"cannot read {from_file}: {exc.strerror or exc}") from None
        changes = loads(text)
        if not isinstance(changes, dict):
            raise InvalidInput(f"{from_file} must hold a JSON object of settings")
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set {echo(assignment)}: write KEY=VALUE")
        try:
            value = loads(raw)
        except UnreadableData:
            value = raw
        changes[key.strip()] = value
    return changes
