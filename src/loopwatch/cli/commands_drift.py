"""``loopwatch drift`` (two tables) and ``loopwatch monitor`` (a served model's log)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from loopwatch.cli.common import handle_errors, out, parse_period, settings_options
from loopwatch.cli.layout import Column, print_rows
from loopwatch.config import Settings
from loopwatch.records.jsonutil import dumps
from loopwatch.errors import echo

EXIT_DRIFT = 1


@click.command()
@click.argument("reference", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("current", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--columns", "include", multiple=True, metavar="A,B",
              help="Compare only these columns (repeatable or comma-separated; default: all).")
@click.option("--exclude", multiple=True, metavar="ID,TARGET",
              help="Leave these columns out, e.g. ids and targets (repeatable or comma-separated).")
@click.option("--categorical", default="", help="Comma-separated numeric columns to treat as categories.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="False-alarm rate of the whole report.")
@click.option("--numeric-test", default="ks", show_default=True,
              type=click.Choice(["ks", "wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger"]),
              help="Statistic that decides numeric features.")
@click.option("--categorical-test", default="chi2", show_default=True,
              type=click.Choice(["chi2", "kl_divergence", "js_distance", "psi", "hellinger"]))
@click.option("--multivariate/--no-multivariate", default=True, show_default=True)
@click.option("--outliers/--no-outliers", default=True, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--practical-threshold", "practical_threshold", multiple=True, metavar="STATISTIC=VALUE",
              help="Set a practical threshold outright, e.g. js_distance=0.1 (repeatable); "
                   "the others are max(floor, reference band).")
@click.option("--practical-band-rows", type=click.IntRange(10, 10_000_000), default=1000, show_default=True,
              help="Window rows beyond which the reference band stops narrowing (N0).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (see docs/drift.md).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an HTML report with plots (aggregates only).")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse REFERENCE's profile built by an earlier run on the same file and options "
                   "(kept in HOME/cache/profiles).")
@handle_errors
def drift(reference: Path, current: Path, include: tuple[str, ...], exclude: tuple[str, ...], categorical: str,
          alpha: float, numeric_test: str, categorical_test: str, multivariate: bool, outliers: bool, seed: int,
          practical_threshold: tuple[str, ...], practical_band_rows: int, as_json: bool, html_out: Path | None,
          cache: bool) -> None:
    """Compare CURRENT with REFERENCE (CSV or Parquet files); no service or database needed.

    Exit code 0 when nothing drifted, 1 when something did, 2 for a usage or input error.
    """
    from loopwatch.drift import DriftConfig, compare
    from loopwatch.drift.html import render_drift
    from loopwatch.features.tables import read_table, select_columns, split_names

    before, after = read_table(reference), read_table(current)
    # ids and targets are not features: testing them raises alarms about nothing
    kept = select_columns(before.columns, after.columns, include=split_names(include), exclude=split_names(exclude))
    # a categorical column left out is dropped; an unknown one still gets compare()'s error
    categories = [c for c in split_names([categorical]) if c in kept or c not in {*before, *after}]
    config = DriftConfig(
        alpha=alpha, numeric_test=numeric_test, categorical_test=categorical_test, multivariate=multivariate,
        outliers=outliers, seed=seed, practical_thresholds=_practical_thresholds(practical_threshold),
        practical_band_rows=practical_band_rows,
    )
    reference_table = before[[c for c in kept if c in before.columns]]
    current_table = after[[c for c in kept if c in after.columns]]
    if cache:
        from loopwatch.application.profile_cache import reference_profile
        from loopwatch.config import Settings

        cached = reference_profile(reference, reference_table, categorical=categories, config=config,
                                   folder=Settings.from_env().home / "cache" / "profiles")
        report = compare(cached.profile, current_table, config=config)
    else:
        report = compare(reference_table, current_table, categorical=categories, config=config)
    data = report.to_dict()
    if html_out is not None:
        html_out.write_text(render_drift(data, title=f"drift: {current.name} against {reference.name}"))
    if as_json:
        click.echo(dumps(data).decode())
    else:
        _print_drift(data)
    sys.exit(EXIT_DRIFT if report.dataset_drift else 0)


def _practical_thresholds(pairs: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"{echo(pair)} is not STATISTIC=NUMBER", param_hint="--practical-threshold")
    return out


def _print_drift(data: dict[str, Any]) -> None:
    table = Table(title=f"drift: {'YES' if data['dataset_drift'] else 'no'} "
                        f"({data['n_reference']} reference rows, {data['n_current']} current rows)")
    for column in ("feature", "kind", "drift", "decided by", "p adjusted / value", "effect", "needs"):
        table.add_column(column)
    for name, f in data["features"].items():
        stats = f["statistics"]
        main = stats.get(f["decided_by"])
        shown = main.get("p_value_adjusted") if isinstance(main, dict) else main
        table.add_row(name, f["kind"], "[red]drift[/]" if f["drift"] else "ok", f["decided_by"],
                      _fmt(shown), _fmt(f.get("effect")), _fmt(f.get("practical_threshold")))
    out.print(table)
    for family in ("multivariate", "outliers"):
        for name, result in data[family].items():
            verdict = "[red]drift[/]" if result["drift"] else "ok"
            out.print(f"{family} {name}: {verdict} (p={_fmt(result['p_value'])}, effect={_fmt(result.get('effect'))}, "
                      f"practical threshold={_fmt(result.get('practical_threshold'))})")


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def _print_skipped(windows: list[Any]) -> None:
    """Which tests each window was too small or too odd for, so a quiet window is not mistaken
    for a clean one."""
    lines = []
    for w in windows:
        if not w.skipped:
            continue
        why = "; ".join(
            f"{t.test} {t.reason} ({t.n}" + (f", needs {t.minimum})" if t.minimum is not None else ")")
            for t in w.skipped
        )
        lines.append(f"  {w.start.isoformat()[:16]} v{w.model_version}{'' if w.segment is None else ' ' + w.segment}: {why}")
    if lines:
        out.print("Tests left out:", highlight=False)
        for line in lines:
            out.print(line, highlight=False, markup=False)


@click.command()
@click.argument("model")
@click.option("--window", default="1d", show_default=True, help="1h, 1d, 7d, 1w or count:N.")
@click.option("--since", default=None, help="Event time from (ISO-8601; UTC when no zone).")
@click.option("--until", default=None, help="Event time to, exclusive.")
@click.option("--version", type=click.IntRange(1), default=None, help="Only this model version.")
@click.option("--segment", default=None, help="Also report each value of this categorical feature.")
@click.option("--json", "as_json", is_flag=True, help="Print every window's report as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write an HTML report with plots (aggregates only).")
@click.option("--source", type=click.Choice(["auto", "log", "summaries"]), default="auto", show_default=True,
              help="Read time windows from window summaries or the log; auto: summaries when they are on "
                   "(LOOPWATCH_SUMMARIES_ENABLED). Segments and count:N windows read the log.")
@settings_options
@handle_errors
def monitor(model: str, window: str, since: str | None, until: str | None, version: int | None,
            segment: str | None, as_json: bool, html_out: Path | None, source: str, settings: Settings) -> None:
    """Each window of MODEL's logged events against its version's reference.

    Exit code 1 when any window raises an alarm (for cron and CI), 0 when none does, 2 for errors.
    """
    period = parse_period(since, until)
    from loopwatch.drift.html import render_monitor
    from loopwatch.application.monitoring import monitor as run_monitor
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        use_summaries = source == "summaries" or (source == "auto" and settings.summaries_enabled)
        result = run_monitor(
            ws.store, ws.registry, model, window=window, since=period.since,
            until=period.until, version=version, segment=segment,
            summariser=ws.summariser if use_summaries else None,
        )
    data = result.to_dict()
    if html_out is not None:
        html_out.write_text(render_monitor(data))
    if as_json:
        click.echo(dumps(data).decode())
    else:
        print_rows(
            out, title=f"{model}: {len(result.windows)} windows of {window}",
            columns=[Column("window"), Column("version"), Column("segment"), Column("events", justify="right"),
                     Column("alarms", wrap=True)],
            rows=[[w.start.isoformat()[:16], str(w.model_version), escape(w.segment or "-"), str(w.n_events),
                   "[red]" + escape(", ".join(w.alarms)) + "[/]" if w.alarms else "-"] for w in result.windows],
        )
        _print_skipped(result.windows)
    sys.exit(EXIT_DRIFT if result.alarm else 0)
