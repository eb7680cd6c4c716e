"""``loopwatch train`` and ``loopwatch predict``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import Progress
from rich.table import Table

from loopwatch.cli.common import err, handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, echo
from loopwatch.records.jsonutil import dumps
from loopwatch.features.tables import read_table

#: Longest client id, as the HTTP API keeps of X-Client-ID.
MAX_CLIENT_ID_LENGTH = 200
from loopwatch.application.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.features.schema import Task


@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", "name", required=True, help="Model name to register the version under.")
@click.option("--target", "-t", required=True, help="Target column.")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              help="Inferred from the target when absent.")
@click.option("--estimator", default=None,
              help="classification: logistic_regression (default), random_forest, hist_gradient_boosting; "
              "regression: ridge (default), random_forest, hist_gradient_boosting.")
@click.option("--categorical", default="", help="Comma-separated numeric columns to treat as categorical.")
@click.option("--test-size", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--alias", type=click.Choice(["production", "candidate"]), default=None,
              help="Alias for the new version (first version: production; later: candidate).")
@click.option("--screen/--no-screen", default=True, show_default=True,
              help="Screen the rows for poisoning (label flips, backdoor patterns, rows far from production's "
                   "reference) and leave out those set aside; --no-screen trains on every row.")
@click.option("--json", "as_json", is_flag=True, help="Print the new version (and the screening) as JSON.")
@settings_options
@handle_errors
def train(data: Path, name: str, target: str, task: Task | None, estimator: str | None,
          categorical: str, test_size: float, seed: int, alias: str | None, screen: bool, as_json: bool,
          settings: Settings) -> None:
    """Train a pipeline on DATA (CSV or Parquet) and register it as a new version.

    The rows are screened for poisoning first; the rows set aside are listed (by their
    place in DATA, from 0) and left out.
    """
    from loopwatch.application.training import train_from_table

    # progress goes to stderr: stdout holds only the result
    with Workspace(settings) as ws, Progress(console=err, transient=True, disable=as_json) as progress:
        progress.add_task(f"training {name} on {data.name}", total=None)
        frame = read_table(data)
        done = train_from_table(
            ws.registry, name, frame, target=target, task=task, estimator=estimator,
            categorical=[c for c in categorical.split(",") if c], test_size=test_size, seed=seed,
            alias=alias, screen=screen,
        )
    version = done.version
    if as_json:
        click.echo(dumps({**version.to_dict(), "screening": done.screening}).decode())
        return
    table = Table(title=f"{name} v{version.version} ({version.estimator}, {version.task})")
    table.add_column("holdout metric")
    table.add_column("value", justify="right")
    for key, value in version.metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
    out.print(f"aliases: {', '.join(version.aliases) or '-'}   artifact sha256: {version.artifact_sha256[:16]}…")
    if done.screening is not None:
        screening = done.screening
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(screening["reasons"].items()))
        rows = ", ".join(str(r["index"]) for r in screening["quarantined"][:20])
        more = " ..." if screening["n_quarantined"] > 20 else ""
        out.print(f"screened: {screening['n_quarantined']} of {screening['n_rows']} rows left out"
                  + (f" ({reasons}); rows {rows}{more}" if screening["n_quarantined"] else "")
                  + (f"; not run: {', '.join(sorted(screening['skipped']))}" if screening["skipped"] else ""))


@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", "name", required=True, help="Model name.")
@click.option("--version", "version", default=None, help="Version number or alias (default production).")
@click.option("--batch-rows", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Rows per logged request.")
@click.option("--out", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write rows with their predictions here (.csv or .parquet); default: CSV to stdout.")
@click.option("--timestamp-column", default=None, metavar="COL",
              help="Each row's event time (ISO-8601, UTC when no zone): the events are logged at those "
                   "times and marked replayed, as a backfill.")
@click.option("--entity-column", default=None, metavar="COL",
              help="Each row's entity id (a customer, an order), so labels sent later by entity_id find it.")
@click.option("--client", "client_id", default=None, help="The client id logged with each event.")
@settings_options
@handle_errors
def predict(data: Path, name: str, version: str | None, batch_rows: int, output: Path | None,
            timestamp_column: str | None, entity_column: str | None, client_id: str | None,
            settings: Settings) -> None:
    """Predict the rows of DATA (CSV or Parquet) and log them, as request type "cli".

    Columns the model does not know (ids, the target) are kept in the output but not sent;
    nor are the timestamp and entity columns.
    """
    from loopwatch.features.tables import column_ids, column_times

    if client_id is not None and not (0 < len(client_id) <= MAX_CLIENT_ID_LENGTH and "\x00" not in client_id):
        raise InvalidInput(f"--client must be 1-{MAX_CLIENT_ID_LENGTH} characters without NUL")
    named = {"--timestamp-column": timestamp_column, "--entity-column": entity_column}
    frame = read_table(data, text_columns=[c for c in (entity_column,) if c])
    for option, column in named.items():
        if column is not None and column not in frame.columns:
            raise InvalidInput(f"{option} {echo(column)}: {data.name} has no such column; its columns are: "
                               + ", ".join(map(str, frame.columns)))
    predictions: list[object] = []
    probabilities: list[list[float] | None] = []
    classes = None
    # progress goes to stderr: stdout holds only the scored rows
    with Workspace(settings) as ws, Progress(console=err, transient=True) as progress:
        task = progress.add_task("predicting", total=len(frame))
        schema = ws.registry.resolve(name, version).schema
        for option, column in named.items():
            if column is not None and column in schema.names:
                raise InvalidInput(f"{option} {echo(column)} is a feature of model {echo(name)}: "
                                   "a column cannot be both an input and the event's time or entity")
        timestamps = None if timestamp_column is None else column_times(frame[timestamp_column],
                                                                        name=timestamp_column)
        entity_ids = None if entity_column is None else column_ids(frame[entity_column])
        # other columns (ids, the target) stay in the output but are not sent
        features = frame[[c for c in frame.columns if c in set(schema.names)]]
        for result in ws.predict_table(name, features, version=version, batch_rows=batch_rows,
                                       progress=lambda n: progress.advance(task, n), client_id=client_id,
                                       entity_ids=entity_ids, timestamps=timestamps):
            predictions.extend(p[0] if len(p) == 1 else p for p in result.predictions)
            probabilities.extend(result.probabilities or [None] * len(result.predictions))
            classes = result.classes
    result_frame = frame.copy()
    result_frame["prediction"] = predictions
    if classes is not None:
        for i, label in enumerate(classes):
            result_frame[f"probability_{label}"] = [p[i] if p else None for p in probabilities]
    if output is None:
        result_frame.to_csv(sys.stdout, index=False)
    elif output.suffix.lower() in {".parquet", ".pq"}:
        from loopwatch.errors import require

        require("pyarrow", "parquet")
        result_frame.to_parquet(output, index=False)
    else:
        result_frame.to_csv(output, index=False)
    if output is not None:
        out.print(f"{len(result_frame)} predictions written to {output}")
