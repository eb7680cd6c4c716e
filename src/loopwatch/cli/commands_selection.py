"""``loopwatch label-queue``, ``loopwatch retrain`` and ``loopwatch gate``."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click
from rich.markup import escape

from loopwatch.cli.common import handle_errors, out, parse_period, settings_options
from loopwatch.cli.layout import Column, print_rows
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps

#: Exit code of ``loopwatch gate`` when the candidate does not pass.
EXIT_NOT_PASSED = 1

_since = click.option("--since", default=None, help="Event time from (ISO-8601; UTC when no zone).")
_until = click.option("--until", default=None, help="Event time to, exclusive.")


@click.command("label-queue")
@click.argument("model")
@click.option("--budget", type=click.IntRange(0, 1_000_000), default=100, show_default=True,
              help="How many predictions to send for labelling.")
@_since
@_until
@click.option("--random-share", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Share chosen uniformly at random (unbiased realized metrics).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the queue to this file instead of stdout: JSON for a .json name or --format json, "
                   "else CSV.")
@settings_options
@handle_errors
def label_queue(model: str, budget: int, since: str | None, until: str | None, random_share: float, seed: int,
                fmt: str, out_path: Path | None, settings: Settings) -> None:
    """Choose MODEL's unlabelled predictions to label next, within a budget.

    A share is drawn uniformly at random; the rest are the most uncertain, novel, or
    in drifted segments. Export with --format csv or json for a labelling tool.
    """
    period = parse_period(since, until)
    from loopwatch.application.workspace import Workspace

    if out_path is not None and fmt == "table":  # a file gets data, not a drawing of a table
        fmt = "json" if out_path.suffix.lower() == ".json" else "csv"
    with Workspace(settings) as ws:
        items = ws.labelling_queue(model, budget=budget, since=period.since,
                                   until=period.until, random_share=random_share, seed=seed)
    if fmt == "json":
        text = dumps([item.to_dict() for item in items]).decode() + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["request_id", "row_index", "entity_id", "score", "random", "reasons"])
        for item in items:
            writer.writerow([item.request_id, item.row_index, item.entity_id or "", f"{item.score:.6g}",
                             str(item.random).lower(), ";".join(item.reasons)])
        text = buffer.getvalue()
    else:
        print_rows(
            out, title=f"{model}: {len(items)} predictions to label",
            columns=[Column("request id"), Column("row", justify="right"), Column("entity"),
                     Column("score", justify="right"), Column("why", wrap=True)],
            rows=[[escape(item.request_id), str(item.row_index), escape(item.entity_id or "-"), f"{item.score:.3f}",
                   escape(", ".join(item.reasons))] for item in items],
        )
        return
    if out_path is not None:
        out_path.write_text(text)
    else:
        click.echo(text, nl=False)


@click.command()
@click.argument("model")
@_since
@_until
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also train on the production version's reference sample.")
@click.option("--estimator", default=None, help="Default: the production version's estimator.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--min-rows", type=click.IntRange(10), default=200, show_default=True,
              help="Fewest usable labelled rows to train on.")
@click.option("--adversarial-share", type=click.FloatRange(0, 0.5), default=0.0, show_default=True,
              help="Adversarial training: attack this share of the screened training rows against production "
                   "and add the flipped rows with their true labels (classifiers; 0 is off).")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def retrain(model: str, since: str | None, until: str | None, reference: bool, estimator: str | None, seed: int,
            min_rows: int, adversarial_share: float, as_json: bool, settings: Settings) -> None:
    """Train a candidate of MODEL on its labelled predictions, screened first.

    The new version becomes the candidate; compare it with `loopwatch gate`.
    """
    period = parse_period(since, until)
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        result = ws.retrain(
            model, since=period.since, until=period.until,
            include_reference=reference, estimator=estimator, seed=seed, min_rows=min_rows,
            adversarial_share=adversarial_share,
        )
    if as_json:
        click.echo(dumps(result.to_dict()).decode())
        return
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items() if k != "n_holdout")
    out.print(f"{model} v{result.version} is the candidate (from v{result.from_version}): "
              f"{result.rows_window} labelled rows, {result.rows_quarantined} quarantined, "
              f"{result.rows_reference} reference rows"
              + (f", {result.rows_adversarial} adversarial rows" if adversarial_share else "")
              + f"; holdout {metrics}")


@click.command()
@click.argument("model")
@_since
@_until
@click.option("--metric", type=click.Choice(["accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse"]),
              default=None, help="Default: accuracy for classifiers, mae for regressors.")
@click.option("--margin", type=float, default=0.0, show_default=True,
              help="Loss of the metric tolerated; 0 asks for a better candidate.")
@click.option("--confidence", type=click.FloatRange(0.5, 1, max_open=True), default=0.95, show_default=True)
@click.option("--latency-budget-ms", type=click.FloatRange(0, min_open=True), default=None,
              help="Most p95 milliseconds the candidate may take.")
@click.option("--candidate", type=click.IntRange(1), default=None, help="Default: the candidate alias.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--promote", is_flag=True, help="Point production at the candidate when the gate passes.")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def gate(model: str, since: str | None, until: str | None, metric: str | None, margin: float, confidence: float,
         latency_budget_ms: float | None, candidate: int | None, seed: int, promote: bool, as_json: bool,
         settings: Settings) -> None:
    """Compare MODEL's candidate with production on the same labelled predictions.

    Exit code 0 when the gate passes, 1 when it does not, 2 for errors.
    """
    period = parse_period(since, until)
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        decision, change = ws.gate(model, since=period.since, until=period.until,
                                   metric=metric, margin=margin, confidence=confidence,
                                   latency_budget_ms=latency_budget_ms, candidate=candidate, seed=seed,
                                   promote=promote)
    if as_json:
        click.echo(dumps({"decision": decision.to_dict(),
                          "promoted": None if change is None else change.to_dict()}).decode())
    else:
        verdict = "[green]passed[/]" if decision.passed else "[red]not passed[/]"
        out.print(f"{model}: v{decision.candidate_version} against v{decision.production_version}: {verdict}")
        for reason in decision.reasons:
            out.print(f"  - {reason}", highlight=False)
        if change is not None:
            out.print(f"production is now v{change.version} (was v{change.previous_version})")
    sys.exit(0 if decision.passed else EXIT_NOT_PASSED)
