"""``loopwatch summarize [MODEL]``: bring window summaries up to date with the log."""

from __future__ import annotations

import click

from loopwatch.cli.common import handle_errors, out, settings_options
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.records.jsonutil import dumps


@click.command()
@click.argument("name", required=False)
@click.option("--rebuild", is_flag=True, help="Forget MODEL's summaries and summarise its whole log again.")
@settings_options
@handle_errors
def summarize(name: str | None, rebuild: bool, settings: Settings) -> None:
    """Summarise what each model (or NAME) logged since its last summary, and apply the
    summaries' retention (docs/summaries.md). The service does this as events land; run it
    after writing to the store some other way, or with --rebuild to start over."""
    from loopwatch.application.workspace import Workspace

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
