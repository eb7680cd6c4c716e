"""``loopwatch``: serve, train, predict, logs, models, demo."""

from __future__ import annotations

from typing import Any

import click

from loopwatch.cli import (
    commands_drift,
    commands_feedback,
    commands_ingest,
    commands_keys,
    commands_logs,
    commands_loops,
    commands_models,
    commands_quarantine,
    commands_register,
    commands_selection,
    commands_serve,
    commands_train,
)
from loopwatch.errors import cap_message


class CappedGroup(click.Group):
    """The top command: click's own usage errors (a bad choice, a bad number) repeat the value
    given, so their message is capped like every loopwatch error (:func:`cap_message`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            exc.message = cap_message(exc.message)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = cap_message(exc.message)
            raise


@click.group(cls=CappedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="loopwatch")
def cli() -> None:
    """Serve scikit-learn models, log every prediction durably, and watch them in production.

    Exit codes: 0 success, 1 a finding, 2 a usage or input error.
    """


cli.add_command(commands_serve.serve)
cli.add_command(commands_train.train)
cli.add_command(commands_train.predict)
cli.add_command(commands_register.register)
cli.add_command(commands_logs.logs)
cli.add_command(commands_ingest.ingest)
cli.add_command(commands_models.models)
cli.add_command(commands_drift.drift)
cli.add_command(commands_drift.monitor)
cli.add_command(commands_feedback.feedback)
cli.add_command(commands_feedback.business)
cli.add_command(commands_loops.loops)
cli.add_command(commands_loops.watch)
cli.add_command(commands_loops.incidents)
cli.add_command(commands_loops.ack)
cli.add_command(commands_loops.rebaseline)
cli.add_command(commands_loops.config)
cli.add_command(commands_selection.label_queue)
cli.add_command(commands_selection.retrain)
cli.add_command(commands_selection.gate)
cli.add_command(commands_keys.keys)
cli.add_command(commands_quarantine.quarantine)


@cli.command()
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
def demo(as_json: bool, seed: int, days: int, per_day: int, workdir: str | None, port: int) -> None:
    """Run the churn demo: train v1, serve it on loopback, replay a production period."""
    from loopwatch.cli.commands_demo import run

    run(as_json=as_json, seed=seed, days=days, per_day=per_day, workdir=workdir, port=port)


def main() -> None:
    cli(prog_name="loopwatch")


if __name__ == "__main__":  # pragma: no cover
    main()
