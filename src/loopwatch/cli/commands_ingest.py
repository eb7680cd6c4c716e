"""``loopwatch ingest FILE``: log a file of predictions made elsewhere as events."""

from __future__ import annotations

from pathlib import Path

import click

from loopwatch.cli.common import err, handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, echo
from loopwatch.records.jsonutil import dumps

FIELDS = ("request_id", "row_index", "timestamp", "prediction", "probabilities", "entity_id",
          "model_version", "client_version", "latency_ms")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "-m", "name", required=True, help="Model name.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help=f"Read a field from a column ({', '.join(FIELDS)}); repeat. A column named like a "
                   "field is read as that field unless it is a feature. The remaining columns are the "
                   "features. prediction is required.")
@click.option("--probability-prefix", default=None, metavar="PREFIX",
              help="Probabilities from the columns PREFIX<class>, one per class (e.g. proba_).")
@click.option("--ignore", "ignored", multiple=True, metavar="COLUMN", help="A column to leave out; repeat.")
@click.option("--client", "client_id", default=None, help="The client id logged with each event.")
@click.option("--batch-rows", type=click.IntRange(1, 1_000_000), default=50_000, show_default=True,
              help="Rows per transaction. Keep it when re-running a file: event ids derive from it.")
@settings_options
@handle_errors
def ingest(file: Path, name: str, maps: tuple[str, ...], probability_prefix: str | None,
           ignored: tuple[str, ...], client_id: str | None, batch_rows: int, settings: Settings) -> None:
    """Log FILE (.csv, .parquet or .ndjson) as ingested events of model NAME.

    Each batch of rows is validated like predict's rows and committed whole. Re-running
    a file (after an interruption, say) stores nothing twice: the events' ids derive from
    the rows' content unless a request id column is mapped.
    """
    from loopwatch.application.file_ingestion import ColumnMap, ingest_file
    from loopwatch.application.workspace import Workspace

    fields: dict[str, str] = {}
    for item in maps:
        key, sep, column = item.partition("=")
        if not sep or key not in FIELDS or not column:
            raise InvalidInput(f"--map {echo(item)}: use FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}")
        fields[key] = column
    if client_id is not None and not (0 < len(client_id) <= 200 and "\x00" not in client_id):
        raise InvalidInput("--client must be 1-200 characters without NUL")
    mapping = ColumnMap(fields=fields, probability_prefix=probability_prefix, ignore=tuple(ignored))

    def progress(rows: int, seconds: float) -> None:
        err.print(f"{rows:,} rows, {rows / max(seconds, 1e-9):,.0f} rows/s", highlight=False)

    with Workspace(settings) as ws:
        report = ingest_file(ws.registry, file, model=name, mapping=mapping, client_id=client_id,
                             batch_rows=batch_rows, progress=progress)
        result = report.to_dict()
        if settings.summaries_enabled:
            # the ingested events land in their windows' summaries now, old timestamps included
            result["summaries"] = ws.summariser.catch_up(name).to_dict()
    out.print(dumps(result).decode(), highlight=False, soft_wrap=True)
