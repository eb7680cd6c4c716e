"""``loopwatch keys``: create, list and revoke API keys, straight in the store.

Working on the store (not through the service) is what lets the first admin key
be made while the service already refuses requests without one.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click
from rich.table import Table

from loopwatch.auth.keys import MAX_DAILY_BUDGET, MAX_EXPIRY_DAYS, MAX_RATE_PER_SECOND, SCOPES
from loopwatch.auth.manage import issue_key, key_view, list_keys, revoke_key
from loopwatch.cli.common import err, handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps
from loopwatch.application.workspace import Workspace


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (needed whenever the service listens beyond loopback)."""


@keys.command("create")
@click.option("--name", required=True, help="Who the key is for (shown in lists).")
@click.option(
    "--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
    help="What the key may do; repeat for several. admin may do everything.",
)
@click.option("--expires-days", type=click.IntRange(1, MAX_EXPIRY_DAYS), default=None,
              help="Days until the key expires (default: never).")
@click.option("--rate", type=click.IntRange(1, MAX_RATE_PER_SECOND), default=None,
              help="Requests per second, across all workers (default: no limit).")
@click.option("--daily-budget", type=click.IntRange(1, MAX_DAILY_BUDGET), default=None,
              help="Requests per UTC day, across all workers (default: no budget).")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its token as JSON.")
@settings_options
@handle_errors
def create(
    name: str,
    scopes: tuple[str, ...],
    expires_days: int | None,
    rate: int | None,
    daily_budget: int | None,
    as_json: bool,
    settings: Settings,
) -> None:
    """Create a key and print its token, this once: only its hash is stored."""
    now = datetime.now(timezone.utc)
    with Workspace(settings) as ws:
        key, token = issue_key(
            ws.store, name=name, scopes=list(scopes), now=now, expires_days=expires_days,
            rate_per_second=rate, daily_budget=daily_budget, created_by="cli",
        )
        view = key_view(ws.store, key, now=now)
    if as_json:
        click.echo(dumps({"key": view, "token": token}).decode())
        return
    err.print(f"created key {key.key_id} ({', '.join(key.scopes)}); store the token now, "
              "it is not shown again:", highlight=False)
    click.echo(token)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def list_(as_json: bool, settings: Settings) -> None:
    """List keys with their scopes, state and limits (never a token)."""
    with Workspace(settings) as ws:
        found = list_keys(ws.store, now=datetime.now(timezone.utc))
    if as_json:
        click.echo(dumps(found).decode())
        return
    table = Table(title="API keys")
    table.add_column("key id", no_wrap=True, min_width=16)
    for column in ("name", "scopes", "state", "expires", "rate/s", "daily budget", "used today"):
        table.add_column(column)
    for k in found:
        table.add_row(
            k["key_id"], k["name"], ", ".join(k["scopes"]), k["state"], (k["expires_at"] or "-")[:10],
            _text(k["rate_per_second"]), _text(k["daily_budget"]), _text(k["budget_used_today"]),
        )
    out.print(table)


@keys.command("revoke")
@click.argument("key_id")
@settings_options
@handle_errors
def revoke(key_id: str, settings: Settings) -> None:
    """Revoke a key; running services stop accepting it within 5 seconds."""
    with Workspace(settings) as ws:
        view = revoke_key(ws.store, key_id, now=datetime.now(timezone.utc))
    click.echo(f"revoked key {view['key_id']} ({view['name']}) at {view['revoked_at']}")


def _text(value: object) -> str:
    return "-" if value is None else str(value)
