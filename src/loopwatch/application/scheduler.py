"""The loop engine on a schedule: evaluate each served model when it is due, record, alert.

Every model with a production version is evaluated once per its monitoring
configuration's ``schedule_seconds``. Several workers (or a ``loopwatch serve``
and a ``loopwatch watch``) may run a :class:`Scheduler` on the same store: before
evaluating, each claims the key ``schedule:<model>`` in the store, and only the
winner of the claim evaluates, so a model is evaluated once per period whatever
the number of workers. The new incidents, and the open unacknowledged ones whose
alert cooldown has passed, go to the model's webhooks (see :mod:`loopwatch.application.alerts`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from loopwatch.application.alerts import DeliveryResult, deliver_alerts
from loopwatch.application.configs import load_monitoring_config
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.records.jsonutil import utc_iso

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from loopwatch.application.summaries import Summariser

    from loopwatch.records.incidents import IncidentRecord
    from loopwatch.registry import Registry

_log = logging.getLogger("loopwatch.application.scheduler")

#: The scheduler looks at least this often (seconds) at which models are due.
MAX_TICK_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class ScheduledRun:
    """One scheduled evaluation of one model: what it found and which alerts went out."""

    model: str
    ran_at: datetime
    config_version: int | None
    incidents: int = 0
    new_incidents: tuple[str, ...] = ()
    recommendations: int = 0
    deliveries: tuple[DeliveryResult, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ran_at": utc_iso(self.ran_at),
            "config_version": self.config_version,
            "incidents": self.incidents,
            "new_incidents": list(self.new_incidents),
            "recommendations": self.recommendations,
            "deliveries": [d.to_dict() for d in self.deliveries],
            "error": self.error,
        }


def scheduled_models(store: Any) -> list[str]:
    """The models the schedule covers: those with a production version."""
    return sorted(m.name for m in store.list_models() if m.aliases.get("production") is not None)


def run_due(
    store: Any,
    registry: Registry,
    *,
    now: datetime,
    models: Sequence[str] | None = None,
    client: httpx.Client | None = None,
    summariser: Summariser | None = None,
) -> list[ScheduledRun]:
    """Evaluate every model (or the given ones) whose schedule is due, once across all workers.

    Returns the runs this call made; a model another worker evaluated within its
    period is skipped. One model failing never stops the others: its run carries
    the error. With a ``summariser``, evaluations read window summaries, not the log.
    """
    runs, _ = _run_due(store, registry, now=now, models=models, client=client, summariser=summariser)
    return runs


def evaluate_and_alert(
    store: Any,
    registry: Registry,
    model: str,
    *,
    now: datetime,
    config: MonitoringConfig,
    config_version: int | None,
    client: httpx.Client | None = None,
    summariser: Summariser | None = None,
) -> ScheduledRun:
    """One evaluation of ``model`` up to ``now``: record its incidents and send the alerts due."""
    from loopwatch.application.monitoring.loops_runner import evaluate_loops, record_incidents

    try:
        report = evaluate_loops(store, registry, model, until=now, config=config,
                                config_version=config_version, summariser=summariser)
        new = record_incidents(store, report, now=now)
        candidates: dict[str, IncidentRecord] = {i.incident_id: i for i in new}
        for incident in store.list_incidents(model, status="open"):
            candidates[incident.incident_id] = incident
        deliveries = deliver_alerts(store, candidates.values(), config, now=now, client=client)
    except Exception as exc:  # one model's failure is logged, recorded and reported, never raised
        _log.exception("scheduled evaluation of %s failed", model)
        record_outcome(store, model, now=now, error=exc)
        return ScheduledRun(model=model, ran_at=now, config_version=config_version,
                            error=f"{type(exc).__name__}: {exc}")
    record_outcome(store, model, now=now, error=None)
    return ScheduledRun(
        model=model,
        ran_at=now,
        config_version=config_version,
        incidents=len(report.incidents),
        new_incidents=tuple(i.incident_id for i in new),
        recommendations=len(report.recommendations),
        deliveries=tuple(deliveries),
    )


def record_outcome(store: Any, model: str, *, now: datetime, error: BaseException | None) -> None:
    """Record an evaluation in the store (a failure with its cause), so that ``/metrics`` and
    the model's loop status show a schedule that keeps failing. A store that cannot take the
    record either (it is down) leaves it to the log: the schedule goes on."""
    try:
        if error is None:
            store.record_evaluation(model, at=now)
        else:
            store.record_evaluation(model, at=now, cause=type(error).__name__, message=str(error))
    except Exception as exc:
        _log.error("could not record the evaluation of %s: %s", model, exc)


def _run_due(
    store: Any,
    registry: Registry,
    *,
    now: datetime,
    models: Sequence[str] | None,
    client: httpx.Client | None,
    summariser: Summariser | None = None,
) -> tuple[list[ScheduledRun], float | None]:
    """The runs made, and the shortest schedule among the models looked at (for the next tick)."""
    names = list(models) if models is not None else scheduled_models(store)
    runs: list[ScheduledRun] = []
    shortest: float | None = None
    for name in names:
        try:
            config, version = load_monitoring_config(store, name)
            shortest = config.schedule_seconds if shortest is None else min(shortest, config.schedule_seconds)
            if not store.claim(f"schedule:{name}", now=now, cooldown_seconds=config.schedule_seconds):
                continue
        except Exception as exc:
            _log.error("could not schedule %s: %s", name, exc)
            record_outcome(store, name, now=now, error=exc)
            runs.append(ScheduledRun(model=name, ran_at=now, config_version=None,
                                     error=f"{type(exc).__name__}: {exc}"))
            continue
        runs.append(evaluate_and_alert(store, registry, name, now=now, config=config,
                                       config_version=version, client=client, summariser=summariser))
    return runs, shortest


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Scheduler:
    """Calls :func:`run_due` in a background thread, every tick, until stopped.

    The tick is ``tick_seconds``, shortened to the shortest schedule among the
    models (and never longer than :data:`MAX_TICK_SECONDS`). The thread never
    dies on an exception: it logs it and tries again at the next tick.

    ``rounds_`` counts the rounds done, ``runs_`` holds the runs of the latest
    round that evaluated anything, ``errors_`` counts rounds that failed, and
    ``pause_`` is the wait before the next round.
    """

    def __init__(
        self,
        store: Any,
        registry: Registry,
        *,
        tick_seconds: float = 30.0,
        models: Iterable[str] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        client: httpx.Client | None = None,
        on_round: Callable[[list[ScheduledRun]], None] | None = None,
        summariser: Summariser | None = None,
    ) -> None:
        if not tick_seconds > 0:
            raise ValueError("tick_seconds must be positive")
        self.store = store
        self.registry = registry
        self.summariser = summariser
        self.tick_seconds = tick_seconds
        self.models = list(models) if models is not None else None
        self.clock = clock
        self.client = client
        self.on_round = on_round
        self.rounds_ = 0
        self.errors_ = 0
        self.runs_: list[ScheduledRun] = []
        self.pause_ = min(tick_seconds, MAX_TICK_SECONDS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_once(self) -> list[ScheduledRun]:
        """One round, in the caller's thread."""
        runs, shortest = _run_due(self.store, self.registry, now=self.clock(), models=self.models,
                                  summariser=self.summariser,
                                  client=self.client)
        self.pause_ = min(self.tick_seconds, MAX_TICK_SECONDS, shortest or MAX_TICK_SECONDS)
        self.rounds_ += 1
        if runs:
            self.runs_ = runs
        if self.on_round is not None:
            self.on_round(runs)
        return runs

    def start(self, *, delay: float = 0.0) -> Scheduler:
        """Run rounds in a daemon thread; the first one after ``delay`` seconds."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(delay,), name="loopwatch-scheduler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop after the round in progress (waiting at most ``timeout`` seconds for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("the scheduler's round did not finish within %.0f s", timeout)
            self._thread = None

    def _loop(self, delay: float) -> None:
        if delay > 0 and self._stop.wait(delay):
            return
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the schedule must outlive a broken round (a locked or lost database)
                self.errors_ += 1
                _log.exception("scheduled round failed")
            self._stop.wait(self.pause_)
