"""``loopwatch logs``: query and export events; delete a request; apply retention."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from loopwatch.cli.common import err, handle_errors, out, parse_period, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.records.jsonutil import dumps
from loopwatch.stores.base import EventQuery
from loopwatch.stores.export import export_schemas, write_ndjson, write_parquet, write_partitioned_parquet
from loopwatch.application.workspace import Workspace


@click.group(invoke_without_command=True)
@click.option("--model", "-m", default=None, help="Model name.")
@click.option("--version", type=click.IntRange(1), default=None)
@click.option("--since", default=None, help="Event time from (ISO-8601; UTC when no zone).")
@click.option("--until", default=None, help="Event time to, exclusive.")
@click.option("--request-id", default=None)
@click.option("--client-id", default=None)
@click.option("--request-type", default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many events (default: all).")
@click.option("--format", "fmt", type=click.Choice(["json", "ndjson", "parquet"]), default="ndjson",
              show_default=True)
@click.option("--out", "output", type=click.Path(path_type=Path), default=None,
              help="Write here instead of stdout (required for parquet).")
@click.option("--partition-by", "partition_by", type=click.Choice(["date"]), default=None,
              help="Parquet: write a directory partitioned by model and UTC date of event time "
                   "(model_name=NAME/date=YYYY-MM-DD/), as Spark reads it; --out names the directory.")
@click.option("--include-shadow", is_flag=True,
              help="Parquet: keep the candidate's shadow events (left out by default; NDJSON and JSON keep them).")
@settings_options
@handle_errors
@click.pass_context
def logs(ctx: click.Context, model: str | None, version: int | None, since: str | None,
         until: str | None, request_id: str | None, client_id: str | None,
         request_type: str | None, limit: int | None, fmt: str, output: Path | None,
         partition_by: str | None, include_shadow: bool, settings: Settings) -> None:
    """Print or export logged prediction events, filtered.

    Parquet has a typed column per feature, per output and per class probability, and
    leaves the candidate's shadow events out unless --include-shadow (or --request-type
    shadow) asks for them.
    """
    period = parse_period(since, until)
    if ctx.invoked_subcommand is not None:
        return
    if fmt == "parquet" and output is None:
        raise InvalidInput("--format parquet needs --out FILE (a directory with --partition-by)")
    if partition_by is not None and fmt != "parquet":
        raise InvalidInput("--partition-by needs --format parquet")
    if output is not None and output.is_dir() and partition_by is None:
        raise InvalidInput(f"--out {output} is a directory: name a file (or add --partition-by date)")
    query = EventQuery(
        model_name=model, model_version=version, since=period.since,
        until=period.until, request_id=request_id, client_id=client_id,
        request_type=request_type, limit=settings.max_page_size,
    )
    with Workspace(settings) as ws:
        events = ws.store.iter_events(query)
        if limit is not None:
            events = (e for i, e in zip(range(limit), events))
        if fmt == "parquet":
            assert output is not None
            write = write_parquet if partition_by is None else write_partitioned_parquet
            written = write(
                events, output, schemas=export_schemas(ws.store, model_name=model, model_version=version),
                include_shadow=include_shadow or request_type == "shadow",
            )
            count = written.events
            if written.shadow_left_out:
                err.print(f"{written.shadow_left_out} shadow events left out (--include-shadow keeps them)")
            if written.unfit_values:
                err.print(f"{written.unfit_values} values did not fit their column's type and were written as "
                          "null; the NDJSON export keeps every value as it was logged")
        elif fmt == "json":
            body = dumps([e.to_dict() for e in events])
            count = body.count(b'"request_id"')
            _write(body + b"\n", output)
        else:
            if output is None:
                count = write_ndjson(events, sys.stdout.buffer)
            else:
                with output.open("wb") as handle:
                    count = write_ndjson(events, handle)
    if output is not None:
        out.print(f"{count} events written to {output}")


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


@logs.command()
@click.argument("request_id")
@settings_options
@handle_errors
def delete(request_id: str, settings: Settings) -> None:
    """Delete a request and its events (for erasure requests), and rebuild the summary
    windows it was in, so that their row samples no longer hold it."""
    with Workspace(settings) as ws:
        deleted = ws.delete_request(request_id)
    if deleted == 0:
        raise NotFound(f"no logged request with id {echo(request_id)}")
    out.print(f"deleted request {request_id} ({deleted} events)")


@logs.command()
@settings_options
@handle_errors
def purge(settings: Settings) -> None:
    """Delete events logged longer ago than each model's retention period.

    Age counts from when the store logged an event, not from its event time: replayed
    history is kept for the whole period after it was backfilled."""
    with Workspace(settings) as ws:
        removed = ws.store.apply_retention(datetime.now(timezone.utc))
    if not removed:
        err.print("no model has a retention period; set one with: loopwatch models settings NAME --retention-days N")
    for name, count in removed.items():
        out.print(f"{name}: {count} events past retention deleted")
