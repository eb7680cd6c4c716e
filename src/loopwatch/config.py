"""Settings, built once at the edge (CLI flags and environment) and passed down.

Nothing below the edges reads the environment: the service and the CLI build
one :class:`Settings` and hand it to what they create.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from loopwatch.errors import InvalidInput, echo

ENV_PREFIX = "LOOPWATCH_"


def default_home() -> Path:
    return Path.home() / ".loopwatch"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a loopwatch process is configured with.

    Each field can be set from the environment as ``LOOPWATCH_<FIELD>``
    (upper case) or overridden by the CLI.
    """

    home: Path = field(default_factory=default_home)
    #: ``sqlite:///path``, a plain file path, or ``postgresql://...``; empty means
    #: ``<home>/loopwatch.db``.
    database: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: API keys: ``auto`` (on whenever ``host`` is not a loopback address), ``on``, or
    #: ``off`` (refused unless ``host`` is loopback). See docs/security.md.
    auth: str = "auto"
    #: Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = 16 * 1024 * 1024
    #: Most rows in one predict request (413 above it).
    max_rows_per_request: int = 10_000
    #: Most rows a log query returns in one page.
    max_page_size: int = 10_000
    #: Bound of the log writer's queue, in requests; when full the service answers 503.
    queue_max_requests: int = 4096
    #: Group commit: most requests in one transaction, and how long the writer waits
    #: for more before committing what it has.
    batch_max_requests: int = 512
    batch_max_wait_ms: float = 2.0
    #: SQLite ``synchronous`` pragma; FULL survives power loss, NORMAL only a crash.
    sqlite_synchronous: str = "FULL"
    #: How many model versions a process keeps loaded.
    model_cache_size: int = 8
    #: Seconds a 503 asks the client to wait before retrying.
    retry_after_seconds: int = 1
    #: Turn durable prediction logging off (benchmarks only: compare the cost of logging).
    logging_enabled: bool = True
    #: Run the loop engine on each model's schedule inside ``loopwatch serve`` (every
    #: worker runs the scheduler; a claim in the store lets one of them evaluate a model).
    schedule_enabled: bool = True
    #: Score live traffic with a model's candidate in shadow mode (off the request path; it
    #: costs CPU on the same machine while a candidate exists).
    shadow_enabled: bool = True
    #: Longest pause of the scheduler between two looks at which models are due, in seconds
    #: (it looks more often when a model's schedule is shorter).
    schedule_tick_seconds: float = 30.0
    #: Types beyond scikit-learn's that ``POST /v1/models/{name}/register`` may load from an
    #: artifact, comma-separated (e.g. ``xgboost.core.Booster,xgboost.sklearn.XGBClassifier``).
    #: Set by whoever runs the service, never by a request: an admin key alone cannot make the
    #: service load code it was not told to trust. Empty: scikit-learn's types only.
    trusted_types: str = ""
    #: Window summaries (docs/summaries.md): kept as events land, by a summariser that follows
    #: the log inside ``loopwatch serve`` and after ``loopwatch ingest``; ``monitor``, ``loops``,
    #: the schedule and their routes read them, so their cost follows the windows, not the log.
    #: Off (``LOOPWATCH_SUMMARIES_ENABLED=0``): everything reads the log, and a bulk ingest costs
    #: a third of the CPU (docs/benchmarks.md).
    summaries_enabled: bool = True
    #: Hourly summaries are kept this many days, then rolled up into daily ones...
    summary_hourly_days: int = 35
    #: ...which are kept this many days: a dashboard can show a year of days.
    summary_daily_days: int = 400
    #: PostgreSQL: seconds the summariser stays behind the newest commit, so that a write
    #: transaction still open when it reads is summarised on its next run (one that takes longer
    #: than this to commit is only caught by ``loopwatch summarize --rebuild``). SQLite commits
    #: one transaction at a time and needs no wait.
    summary_settle_seconds: float = 5.0
    #: Longest pause of the service's summariser between two runs, in seconds.
    summary_tick_seconds: float = 10.0

    @property
    def trusted_type_names(self) -> tuple[str, ...]:
        return tuple(sorted({t.strip() for t in self.trusted_types.split(",") if t.strip()}))

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need an API key; always when listening beyond loopback."""
        return self.auth.lower() == "on" or not is_loopback(self.host)

    @property
    def database_url(self) -> str:
        if not self.database:
            return f"sqlite:///{self.home / 'loopwatch.db'}"
        if "://" not in self.database:
            return f"sqlite:///{Path(self.database).expanduser().resolve()}"
        return self.database

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _validated(replace(self, **_coerce_all(given)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return _validated(cls(**_coerce_all(values)))

    def to_env(self) -> dict[str, str]:
        """The environment that rebuilds these settings in a child process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[ENV_PREFIX + f.name.upper()] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
        return out


_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _coerce(name, value) for name, value in values.items()}


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES.get(name)
    if kind is None:
        raise InvalidInput(f"unknown setting {echo(name)}")
    if not isinstance(value, str):
        return Path(value) if kind == "Path" else value
    try:
        if kind == "Path":
            return Path(value).expanduser()
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
    except ValueError as exc:
        raise InvalidInput(f"setting {name} must be {kind}, got {echo(value)}") from exc
    return value


def _validated(settings: Settings) -> Settings:
    positive = (
        "max_body_bytes",
        "max_rows_per_request",
        "max_page_size",
        "queue_max_requests",
        "batch_max_requests",
        "model_cache_size",
        "workers",
        "summary_hourly_days",
        "summary_daily_days",
    )
    for name in positive:
        if getattr(settings, name) < 1:
            raise InvalidInput(f"setting {name} must be at least 1")
    if settings.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise InvalidInput("setting sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
    if not 0 < settings.port < 65536:
        raise InvalidInput("setting port must be between 1 and 65535")
    if not 0 < settings.schedule_tick_seconds <= 3600:
        raise InvalidInput("setting schedule_tick_seconds must lie in (0, 3600]")
    if settings.summary_daily_days < settings.summary_hourly_days:
        raise InvalidInput("setting summary_daily_days must be at least summary_hourly_days")
    if not 0 <= settings.summary_settle_seconds <= 3600 or not 0 < settings.summary_tick_seconds <= 3600:
        raise InvalidInput("settings summary_settle_seconds and summary_tick_seconds must lie within an hour")
    if settings.auth.lower() not in {"auto", "on", "off"}:
        raise InvalidInput("setting auth must be auto, on or off")
    if settings.auth.lower() == "off" and not is_loopback(settings.host):
        raise InvalidInput(
            f"setting auth cannot be off when the service listens beyond loopback (host {echo(settings.host)})"
        )
    return settings


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``0.0.0.0`` does not)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
