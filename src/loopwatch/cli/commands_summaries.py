"""``loopwatch summarize``: bring window summaries up to date with the log, or compute them
from a Parquet export, in process or on Spark's executors."""

from __future__ import annotations

import click

from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.records.jsonutil import dumps

#: The engines an export can be summarised with (engines/summarize.py; named here so that the
#: command's help does not import them).
EXPORT_ENGINES = ("in-process", "spark")


def _conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--conf takes KEY=VALUE, got {echo(pair)}")
        conf[key.strip()] = value
    return conf


@click.command()
@click.argument("name", required=False)
@click.option("--rebuild", is_flag=True, help="Forget MODEL's summaries and summarise its whole log (or the export) again.")
@click.option("--export", "export_dir", default=None, metavar="DIR",
              help="Summarise this Parquet export of the log (`loopwatch logs --format parquet --partition-by date`) "
                   "into the store instead of the store's log (docs/spark.md).")
@click.option("--engine", type=click.Choice(EXPORT_ENGINES), default="in-process", show_default=True,
              help="With --export: spark builds on Spark's executors (pip install 'loopwatch[spark]'; Java 17).")
@click.option("--master", default="local[*]", show_default=True,
              help="With --engine spark: the master URL (local[N], spark://host:7077, yarn, k8s://...).")
@click.option("--conf", "conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable).")
@settings_options
@handle_errors
def summarize(name: str | None, rebuild: bool, export_dir: str | None, engine: str, master: str,
              conf: tuple[str, ...], settings: Settings) -> None:
    """Summarise what each model (or NAME) logged since its last summary, and apply the
    summaries' retention (docs/summaries.md). Run it after writing to the store some other
    way, or with --rebuild to start over. With --export, summarise a Parquet export of the log
    into the store instead, in process or on Spark (docs/spark.md): the export's windows are
    written with the model's watermark at the export's newest event, so the summariser then
    follows the log from there; a model that has summaries already needs --rebuild."""
    from loopwatch.application.workspace import Workspace

    if export_dir is None and (engine != "in-process" or conf or master != "local[*]"):
        raise InvalidInput("--engine, --master and --conf go with --export DIR")
    if export_dir is not None:
        if rebuild and name is None:
            raise InvalidInput("--rebuild needs a MODEL: replacing every model's summaries at once is rarely meant")
        settings_conf = _conf(conf)
        from loopwatch.engines.summarize import summarise_export_into_store

        with Workspace(settings) as ws:
            written = summarise_export_into_store(ws.summariser, export_dir, engine=engine, master=master,
                                                  conf=settings_conf, model_name=name, rebuild=rebuild)
        out.print(dumps([w.to_dict() for w in written]).decode(), highlight=False, soft_wrap=True)
        return
    if rebuild and name is None:
        raise InvalidInput("--rebuild needs a MODEL: rebuilding every model's summaries at once is rarely meant")
    with Workspace(settings) as ws:
        if name is not None and not ws.store.model_exists(name):
            raise NotFound(f"no model named {echo(name)}")
        summariser = ws.summariser
        if name is None:
            runs = [run.to_dict() for run in summariser.run_all()]
        else:
            run = summariser.rebuild(name) if rebuild else summariser.catch_up(name)
            summariser.apply_retention(name)
            runs = [run.to_dict()]
    out.print(dumps(runs).decode(), highlight=False, soft_wrap=True)
