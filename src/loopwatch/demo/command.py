"""``loopwatch demo``: run the demo and print what it did.

The command lives with the demo, above the CLI: the program (:mod:`loopwatch.__main__`) adds
it to the CLI's commands, so the CLI never imports the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from loopwatch.cli.common import err, handle_errors, out
from loopwatch.cli.layout import Column, print_rows
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary and the incident timeline as JSON.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulated period.")
@click.option("--days", type=click.IntRange(7, 365), default=70, show_default=True, help="Days to simulate.")
@click.option(
    "--per-day", type=click.IntRange(10, 100_000), default=1000, show_default=True, help="Predictions per day."
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the demo's database (default HOME/demo; its demo database is replaced).",
)
@click.option("--port", type=int, default=0, help="Port of the demo service (default: a free one).")
@click.option("--summaries/--log", default=True, show_default=True,
              help="Evaluate the loops from window summaries kept as events land (docs/summaries.md), "
                   "or from the prediction log.")
def demo(as_json: bool, seed: int, days: int, per_day: int, workdir: str | None, port: int, summaries: bool) -> None:
    """Run the churn demo: train v1, serve it on loopback, replay a production period."""
    run(as_json=as_json, seed=seed, days=days, per_day=per_day, workdir=workdir, port=port, summaries=summaries)


@handle_errors
def run(*, as_json: bool, seed: int, days: int, per_day: int, workdir: str | None, port: int,
        summaries: bool = True) -> None:
    from loopwatch.demo.runner import run_demo

    folder = Path(workdir) if workdir else Settings.from_env().home / "demo"
    columns = (TextColumn("replaying days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("days", total=days)
        result = run_demo(
            seed=seed, days=days, per_day=per_day, workdir=folder, port=port, summaries=summaries,
            on_day=lambda index, n: progress.advance(task),
        )
    summary = result.summary()
    if as_json:
        click.echo(dumps(summary).decode())
        return
    render(summary, out)


def render(summary: dict[str, Any], console: Console) -> None:
    """The demo's summary as tables, for a person."""
    days, seed = summary["days"], summary["seed"]
    table = Table(title=f"loopwatch demo: {days} days of a churn model (seed {seed})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("events logged", f"{summary['events_logged']:,} (rows sent {summary['rows_sent']:,})")
    table.add_row("requests", f"{summary['requests']:,} in {summary['replay_seconds']:.1f} s")
    table.add_row(
        "throughput",
        f"{summary['throughput']['requests_per_second']:,} requests/s, "
        f"{summary['throughput']['events_per_second']:,} events/s",
    )
    lat = summary["latency_ms"]
    table.add_row("latency (ms)", f"p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    for v in summary["versions"]:
        auc = v["metrics"].get("roc_auc")
        table.add_row(
            f"model v{v['version']}",
            f"{v['estimator']} {('AUC %.3f' % auc) if auc else ''} {', '.join(v['aliases'])}",
        )
    for d in summary["deployments"]:
        table.add_row("deployed", f"day {d['day']}: production v{d['previous_version']} -> v{d['version']}")
    auth = summary.get("auth") or {}
    if auth.get("enabled"):
        keys = auth.get("keys", {})
        table.add_row("API keys", f"{len(keys.get('clients', []))} prediction clients, "
                                  f"{len(keys.get('feedback_sources', []))} feedback sources, an operator")
        for check in auth.get("checks", []):
            table.add_row("refused", f"{check['request']} with {check['key']}: {check['status']}"
                                     + ("" if check["ok"] else f" [red](expected {check['expected_status']})[/]"))
    table.add_row("database", summary["database"])
    if summary.get("files"):  # for trying the README's commands on the demo's world
        table.add_row("files", ", ".join(Path(p).name for p in summary["files"].values()))
    console.print(table)
    loops = summary.get("loops") or {}
    # a narrow terminal gets one block per incident rather than names broken inside words
    print_rows(
        console, title=f"what loopwatch found and which loop it recommends ({loops.get('seconds', '-')} s)",
        columns=[Column("injected"), Column("day"), Column("detected", wrap=True), Column("diagnosis"),
                 Column("loop"), Column("names"), Column("right")],
        rows=[[d["kind"], str(d["injected_day"]),
               "-" if d["detected_day"] is None else f"day {d['detected_day']} (deadline {d['deadline_day']})",
               d["diagnosis"] or "-", d["loop"] or "-", escape(str(d.get("named") or "-")),
               "yes" if d["correct"] else "[red]no[/]"] for d in loops.get("incidents", [])],
    )
    false = loops.get("false_alarms", [])
    console.print(
        "incidents raised outside every injected incident: "
        + ("none" if not false else ", ".join(f"day {f['day']}: {f['kind']}" for f in false))
    )
    perf = loops.get("performance", {})
    meant, cannot = perf.get("meant_for") or {}, perf.get("cannot_know") or {}
    if meant.get("days") or cannot.get("days"):
        console.print("label-free estimate vs realized performance, mean absolute error:")
        console.print(f"  on the {meant.get('days', 0)} labelled days it is meant for (inputs may move, their "
                      f"relation to the outcome holds): {meant.get('mean_abs_error')}", highlight=False)
        console.print(f"  on the {cannot.get('days', 0)} labelled days it cannot know (concept drift, inputs "
                      f"broken by a software change): {cannot.get('mean_abs_error')}", highlight=False)
    for r in loops.get("recommendations", []):
        if r["incident_id"] is None:
            console.print(f"[bold]{r['loop_title']}[/]: {r['action']}")
