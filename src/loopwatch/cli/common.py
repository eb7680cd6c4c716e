"""What every command shares: settings options, error handling, output."""

from __future__ import annotations

import functools
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ParamSpec, TypeVar, overload

import click
from rich.console import Console

from loopwatch.records.period import Period
from loopwatch.config import Settings
from loopwatch.errors import LoopwatchError, echo

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")

out = Console()
err = Console(stderr=True)

#: Exit codes: 0 success, 1 a finding (drift, say), 2 a usage or input error.
EXIT_ERROR = 2


def settings_options(func: F) -> F:
    """--home and --database on every command that touches a store."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="loopwatch's folder (default $LOOPWATCH_HOME or ~/.loopwatch).",
    )
    @click.option(
        "--database",
        default=None,
        help="sqlite:///path, a file path, or postgresql://... (default $LOOPWATCH_DATABASE "
        "or HOME/loopwatch.db).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, home: Path | None, database: str | None, **kwargs: Any) -> Any:
        settings = Settings.from_env(home=home, database=database)
        return func(*args, settings=settings, **kwargs)

    # click reads the options off the wrapper and the command gets settings in their place:
    # not a signature a type can state, so the command keeps its own for callers
    return wrapper  # type: ignore[return-value]


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """A loopwatch error becomes one clear line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except LoopwatchError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            detail = exc.detail
            if isinstance(detail, dict) and "problems" in detail:
                for problem in detail["problems"][:10]:
                    err.print(f"  - {problem}", highlight=False)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper


@overload
def parse_time(value: str, what: str) -> datetime: ...
@overload
def parse_time(value: str | None, what: str) -> datetime | None: ...
def parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{echo(value)} is not an ISO-8601 time", param_hint=what) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_period(since: str | None, until: str | None) -> Period:
    """``--since`` and ``--until`` as one checked :class:`Period` (a backwards one is refused)."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter(f"--since {echo(since)} must be before --until {echo(until)}", param_hint="--since")
    return Period(since=start, until=end)
