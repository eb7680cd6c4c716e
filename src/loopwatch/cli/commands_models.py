"""``loopwatch models``: list, show, promote, rollback, rename, settings."""

from __future__ import annotations

import click
from rich.table import Table

from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.records import ModelSettings
from loopwatch.records.jsonutil import dumps
from loopwatch.application.workspace import Workspace


@click.group()
def models() -> None:
    """List models and versions, move aliases, set per-model settings."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def list_models(as_json: bool, settings: Settings) -> None:
    """List models with their aliases."""
    with Workspace(settings) as ws:
        found = ws.store.list_models()
    if as_json:
        click.echo(dumps([m.to_dict() for m in found]).decode())
        return
    table = Table(title="models")
    for column in ("name", "latest", "production", "candidate", "log data", "retention days"):
        table.add_column(column)
    for m in found:
        table.add_row(
            m.name,
            str(m.latest_version or "-"),
            str(m.aliases.get("production", "-")),
            str(m.aliases.get("candidate", "-")),
            "yes" if m.settings.log_data else "no",
            str(m.settings.retention_days or "-"),
        )
    out.print(table)


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def show(name: str, as_json: bool, settings: Settings) -> None:
    """Show a model's versions with their holdout metrics."""
    with Workspace(settings) as ws:
        versions = ws.store.list_versions(name)
    if as_json:
        click.echo(dumps([v.to_dict() for v in versions]).decode())
        return
    table = Table(title=f"{name} versions")
    for column in ("version", "created", "estimator", "aliases", "metrics"):
        table.add_column(column)
    for v in versions:
        metrics = ", ".join(
            f"{k}={val:.3f}" for k, val in v.metrics.items() if isinstance(val, float) and k != "n_holdout"
        )
        # a version made by ingestion is known to its senders by their own label
        label = v.params.get("external_version")
        estimator = v.estimator if label is None else f"{v.estimator} (external {label})"
        table.add_row(str(v.version), v.created_at.strftime("%Y-%m-%d %H:%M"), estimator,
                      ", ".join(v.aliases) or "-", metrics)
    out.print(table)
    for v in versions:  # what a version registered from outside trusts, and what does not apply to it
        if v.params.get("trusted_types"):
            out.print(f"v{v.version} trusts: {', '.join(v.params['trusted_types'])}", highlight=False)
        for part, reason in (v.params.get("not_applicable") or {}).items():
            out.print(f"v{v.version} {part}: not applicable ({reason})", highlight=False)


@models.command()
@click.argument("name")
@click.option("--version", type=click.IntRange(1), default=None, help="Default: the candidate.")
@click.option("--alias", type=click.Choice(["production", "candidate"]), default="production",
              show_default=True)
@settings_options
@handle_errors
def promote(name: str, version: int | None, alias: str, settings: Settings) -> None:
    """Point an alias at a version (by default: production at the candidate).

    When production takes the candidate's version, the candidate alias is cleared; a
    rollback makes that version the candidate again.
    """
    with Workspace(settings) as ws:
        change = ws.registry.promote(name, version, alias=alias)
        candidate = ws.registry.aliases(name, fresh=True).get("candidate")
    out.print(f"{name}: {alias} is now v{change.version} (was {_v(change.previous_version)}); "
              f"candidate {_v(candidate)}", highlight=False)


@models.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def rename(old: str, new: str, as_json: bool, settings: Settings) -> None:
    """Rename a model everywhere it is stored, in one transaction.

    The way to give a model stored before the name rule (for example '..' or a name with a
    space) a name the service accepts: 1-100 ASCII letters, digits, '.', '_' or '-', starting
    with a letter or digit. Stop anything still sending predictions under the old name first.
    """
    with Workspace(settings) as ws:
        moved = ws.rename_model(old, new)
    if as_json:
        click.echo(dumps({"old": old, "new": new, "rows": moved}).decode())
        return
    rows = sum(n for table, n in moved.items() if table != "incident_ids")
    out.print(f"renamed {old!r} to {new!r}: {rows} rows in {sum(1 for n in moved.values() if n)} tables",
              highlight=False)


@models.command()
@click.argument("name")
@settings_options
@handle_errors
def rollback(name: str, settings: Settings) -> None:
    """Return production to the version it held before its latest change."""
    with Workspace(settings) as ws:
        change = ws.registry.rollback(name)
        candidate = ws.registry.aliases(name, fresh=True).get("candidate")
    out.print(f"{name}: production rolled back to v{change.version} (was {_v(change.previous_version)}); "
              f"candidate {_v(candidate)}", highlight=False)


@models.command("settings")
@click.argument("name")
@click.option("--log-data/--no-log-data", default=None, help="Log input features with each event.")
@click.option("--retention-days", type=click.IntRange(0, 36500), default=None,
              help="Days events are kept, counted from when they were logged, not from their event time, "
                   "so backfilled history is kept as long as live traffic (0: keep until deleted).")
@click.option("--nullable", default=None, metavar="F1,F2",
              help="Features to declare nullable, comma-separated (replaces the list; '' clears it): a null "
                   "in one is accepted and counted as missing, without a data-quality finding.")
@settings_options
@handle_errors
def model_settings(name: str, log_data: bool | None, retention_days: int | None, nullable: str | None,
                   settings: Settings) -> None:
    """Show or change a model's settings."""
    with Workspace(settings) as ws:
        current = ws.registry.settings(name, fresh=True)
        if log_data is not None or retention_days is not None or nullable is not None:
            current = ws.registry.update_settings(
                name,
                ModelSettings(
                    log_data=current.log_data if log_data is None else log_data,
                    retention_days=current.retention_days
                    if retention_days is None
                    else (retention_days or None),
                    nullable=current.nullable if nullable is None
                    else tuple(n.strip() for n in nullable.split(",") if n.strip()),
                ),
            )
    click.echo(dumps(current.to_dict()).decode())


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
