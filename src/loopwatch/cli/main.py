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
    commands_summarize,
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
            # click declares message Final; capping it in place keeps the error's class and context
            exc.message = cap_message(exc.message)  # type: ignore[misc]
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # click declares message Final; capping it in place keeps the error's class and context
            exc.message = cap_message(exc.message)  # type: ignore[misc]
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
cli.add_command(commands_summarize.summarize)
