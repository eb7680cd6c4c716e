"""``loopwatch summarize``: window summaries computed from a Parquet export, in process or on Spark."""

from __future__ import annotations

from pathlib import Path

import click

from loopwatch.application.workspace import Workspace
from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.engines.summarize import ENGINES, summarise_to_file
from loopwatch.errors import InvalidInput


def _conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--conf takes KEY=VALUE, got {pair!r}")
        conf[key.strip()] = value
    return conf


@click.command()
@click.argument("parquet_dir")
@click.option("--engine", type=click.Choice(ENGINES), default="in-process", show_default=True,
              help="spark: build on Spark's executors (pip install 'loopwatch[spark]'; needs Java 17).")
@click.option("--master", default="local[*]", show_default=True,
              help="Spark master URL: local[N], spark://host:7077, yarn, k8s://...")
@click.option("--conf", "conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable).")
@click.option("--model", "-m", default=None, help="Only this model's versions.")
@click.option("--out", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the merged parts here, one JSON line per (model, version, hour, feature).")
@settings_options
@handle_errors
def summarize(parquet_dir: str, engine: str, master: str, conf: tuple[str, ...], model: str | None,
              output: Path, settings: Settings) -> None:
    """Summarise a Parquet export (from `loopwatch logs --format parquet --partition-by date`)
    per model version, hour and feature, on the reference's bins."""
    with Workspace(settings) as ws:
        written = summarise_to_file(ws.store, ws.registry, parquet_dir, output, engine=engine, master=master,
                                    conf=_conf(conf), model_name=model)
    out.print(f"{written} summary parts written to {output}")
