"""``loopwatch demo``: print what the demo did."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopwatch.cli.common import err, handle_errors, out
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps


@handle_errors
def run(*, as_json: bool, seed: int, days: int, per_day: int, workdir: str | None, port: int) -> None:
    from loopwatch.demo import run_demo

    folder = Path(workdir) if workdir else Settings.from_env().home / "demo"
    columns = (TextColumn("replaying days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=as_json) as progress:
        task = progress.add_task("days", total=days)
        result = run_demo(
            seed=seed, days=days, per_day=per_day, workdir=folder, port=port,
            on_day=lambda index, n: progress.advance(task),
        )
    summary = result.summary()
    if as_json:
        click.echo(dumps(summary).decode())
        return
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
    table.add_row("database", summary["database"])
    out.print(table)
    incidents = Table(title="injected incidents (ground truth; later issues teach loopwatch to find them)")
    for column in ("day", "kind", "touches", "max delay (days)"):
        incidents.add_column(column)
    for incident in summary["timeline"]["incidents"]:
        incidents.add_row(
            str(incident["day"]), incident["kind"], dumps(incident.get("touches", {})).decode(),
            str(incident.get("max_delay_days", "")),
        )
    out.print(incidents)
    monitoring = summary.get("monitoring") or {}
    if monitoring:
        found = Table(title=f"what the monitor found ({monitoring['windows']} daily windows, {monitoring['seconds']} s)")
        for column in ("incident", "injected", "detected", "in time", "features that moved", "alarms"):
            found.add_column(column)
        for d in monitoring["detections"]:
            found.add_row(
                d["kind"], f"day {d['injected_day']}",
                "-" if d["detected_day"] is None else f"day {d['detected_day']}",
                "yes" if d["in_time"] else "[red]no[/]", ", ".join(d["features"]) or "-",
                ", ".join(a for a in d["alarms"] if not a.startswith("feature:"))[:80] or "-",
            )
        out.print(found)
        false = monitoring["false_alarms"]
        out.print(
            f"alarms on the {monitoring['stable_days']} stable days: "
            + ("none" if not false else ", ".join(f"day {f['day']}: {', '.join(f['alarms'])}" for f in false))
        )
    out.print(f"query the log: loopwatch logs --database {summary['database']} --model churn --limit 3")
