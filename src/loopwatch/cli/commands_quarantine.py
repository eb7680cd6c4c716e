"""``loopwatch quarantine``: list the training rows the poisoning screens set aside, release some."""

from __future__ import annotations

import click
from rich.markup import escape

from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.cli.layout import Column, print_rows
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps


@click.command()
@click.argument("model")
@click.option("--release", "release_ids", multiple=True, metavar="ID",
              help="Release this row (REQUEST_ID:ROW_INDEX); repeat for more. All or none are released.")
@click.option("--by", default=None, help="Who releases (recorded with the release).")
@click.option("--status", type=click.Choice(["held", "released", "all"]), default="held", show_default=True,
              help="Which rows to list: held out of training, released, or both.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Rows to list.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
@handle_errors
def quarantine(model: str, release_ids: tuple[str, ...], by: str | None, status: str, limit: int, offset: int,
               as_json: bool, settings: Settings) -> None:
    """List MODEL's quarantined training rows, or release some with --release.

    Retraining screens its labelled window for poisoning (label flips, rows far
    from the reference, a skewed feedback source, a backdoor pattern) and leaves
    the rows it sets aside out of training until they are released.
    """
    from loopwatch.application import quarantine as library
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        if release_ids:
            released = library.release(ws.store, ws.registry, model, list(release_ids), by=by)
            if as_json:
                click.echo(dumps({"model": model, "released": [e.to_dict() for e in released]}).decode())
            else:
                out.print(f"{model}: released {len(released)} rows; the next retraining trains on them")
            return
        flag = {"held": False, "released": True, "all": None}[status]
        page = library.list_quarantine(ws.store, ws.registry, model, released=flag, limit=limit, offset=offset)
    if as_json:
        click.echo(dumps({**page, "status": status}).decode())
        return
    counts = page["counts"]
    rows = []
    for row in page["rows"]:
        released_text = "-" if row["released_at"] is None else f"{row['released_at']} by {row['released_by'] or '?'}"
        rows.append([escape(row["id"]), escape(row["source"] or "-"), escape(", ".join(row["reasons"])),
                     row["quarantined_at"], escape(released_text)])
    print_rows(out, title=f"{model}: {counts['quarantined']} rows held out of training, {counts['released']} released",
               columns=[Column("id"), Column("source"), Column("reasons", wrap=True), Column("quarantined at"),
                        Column("released", wrap=True)], rows=rows)
