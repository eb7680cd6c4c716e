"""The app factory: settings in, a FastAPI app out; the store and writer live in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI

from loopwatch.config import Settings
from loopwatch.errors import echo
from loopwatch.application.ingestion import Ingestor
from loopwatch.application.workspace import Workspace
from loopwatch.records.names import NAME_RULE, is_model_name
from loopwatch.registry import Registry
from loopwatch.service.auth import include_protected, install_auth
from loopwatch.service.errors import install_error_handlers, refuse_nul_characters, refuse_unsafe_model_names
from loopwatch.service.metrics import ServiceMetrics
from loopwatch.service.middleware import BodyLimitMiddleware, MetricsMiddleware
from loopwatch.service.routers import feedback, health, ingest, logs, models, monitor, predict, selection, train
from loopwatch.service.routers import keys as keys_router
from loopwatch.service.routers import register as register_router
from loopwatch.service.routers import loops as loops_router
from loopwatch.service.shadow import ShadowScorer
from loopwatch.service.state import CLIENT_ID_HEADER, ServiceState, predict_model_name
from loopwatch.stores.base import Store

_log = logging.getLogger("loopwatch.service")

#: How often the service deletes events past each model's retention period.
RETENTION_INTERVAL_SECONDS = 3600.0


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the service. ``store`` lets tests hand in one they opened themselves."""
    settings = settings or Settings.from_env()
    metrics = ServiceMetrics()
    holder: dict[str, ServiceState] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the same construction as the library's and the CLI's (Workspace)
        workspace = Workspace(settings, store=store, on_commit=lambda n, rows, seconds: metrics.commits.observe(seconds))
        opened, registry, writer = workspace.store, workspace.registry, workspace.writer
        # the candidate scores live traffic off the request path; never the caller's answer
        shadow = (
            ShadowScorer(registry, writer, max_queue=1000, max_rows=settings.max_rows_per_request,
                         on_count=metrics.count_shadow)
            if settings.shadow_enabled else None
        )
        state = ServiceState(
            settings=settings,
            store=opened,
            registry=registry,
            predictor=workspace.predictor,
            writer=writer,
            metrics=metrics,
            shadow=shadow,
            ingestor=Ingestor(registry, max_events=settings.max_rows_per_request),
            # kept even with summaries off: a deleted request must leave summaries built on demand
            summariser=workspace.summariser,
        )
        app.state.loopwatch = state
        holder["state"] = state
        await asyncio.to_thread(report_unsafe_names, opened)
        metrics.watch_evaluations(opened)
        retention = asyncio.create_task(_retention_loop(opened))
        scheduler = _start_scheduler(settings, opened, registry,
                                     state.summariser if settings.summaries_enabled else None)
        summarising = _start_summariser(settings, state.summariser) if settings.summaries_enabled else None
        try:
            yield
        finally:
            retention.cancel()
            if summarising is not None:
                await asyncio.to_thread(summarising.stop)
            if scheduler is not None:
                await asyncio.to_thread(scheduler.stop)
            if shadow is not None:
                await asyncio.to_thread(shadow.close)
            await app.state.key_guard.aclose()
            workspace.close()

    app = FastAPI(
        title="loopwatch",
        version=_version(),
        summary="Serve scikit-learn models and log every prediction as a durable event.",
        lifespan=lifespan,
        # NUL first: its message says what is wrong with such a URL more precisely
        dependencies=[Depends(refuse_nul_characters), Depends(refuse_unsafe_model_names)],
    )
    install_error_handlers(app)
    # every router with the scope its routes need to read and to change (docs/security.md)
    include_protected(app, predict.router, "predict")
    include_protected(app, ingest.router, "ingest")
    include_protected(app, train.router, "admin")
    include_protected(app, register_router.router, "admin")
    include_protected(app, models.router, "read", write="admin")
    include_protected(app, logs.router, "read", write="admin")
    include_protected(app, monitor.router, "read")
    # open: probes and scrapers carry no key, and these answer no data or model
    app.include_router(health.router, prefix="/v1")
    app.include_router(health.metrics_router)
    include_protected(app, feedback.router, "feedback")
    include_protected(app, feedback.read_router, "read")
    include_protected(app, loops_router.router, "read", write="admin")
    include_protected(app, selection.router, "read", write="admin")
    include_protected(app, keys_router.router, "admin")

    def on_too_large(scope: dict[str, Any], message: str) -> None:
        name = predict_model_name(scope.get("path", ""))
        state = holder.get("state")
        if name is None or state is None:
            return
        client = None
        for key, value in scope.get("headers", ()):
            if key.decode("latin-1") == CLIENT_ID_HEADER:
                client = value.decode("latin-1")
        state.reject(name, client, "payload_too_large", 413, message)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_reject=on_too_large)
    install_auth(app, settings)  # outside the body limit: no key, no body read
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def report_unsafe_names(store: Store) -> list[str]:
    """Warn about every stored model whose name breaks the name rule (stored before it): the
    service refuses such a name on every route, the library and the CLI still take it, and
    ``loopwatch models rename`` gives it another. Returns those names."""
    unsafe = [m.name for m in store.list_models() if not is_model_name(m.name)]
    for name in unsafe:
        _log.warning(
            "model %s breaks the model name rule (%s): the service refuses it on every route; "
            "rename it with: loopwatch models rename OLD NEW", echo(name), NAME_RULE,
        )
    return unsafe


async def _retention_loop(store: Store) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(store.apply_retention, datetime.now(timezone.utc))
            if any(removed.values()):
                _log.info("retention removed events: %s", removed)
        except Exception as exc:  # retention must never take the service down
            _log.error("retention failed: %s", exc)
        await asyncio.sleep(RETENTION_INTERVAL_SECONDS)


def _start_scheduler(settings: Settings, store: Store, registry: Registry, summariser: Any) -> Any:
    """The loop engine on each model's schedule, in this worker; every worker runs one, and a
    claim in the store lets one of them evaluate each model per period. The first round waits
    one tick, so that starting the service stays light."""
    if not settings.schedule_enabled:
        return None
    from loopwatch.application.scheduler import Scheduler

    scheduler = Scheduler(store, registry, tick_seconds=settings.schedule_tick_seconds, summariser=summariser)
    return scheduler.start(delay=settings.schedule_tick_seconds)


def _start_summariser(settings: Settings, summariser: Any) -> Any:
    """The summariser's thread: it follows the log every ``summary_tick_seconds``, off the request
    path (a predict request costs what it did without it). With several workers each runs one;
    the store's watermark check lets one of them summarise each batch."""
    if summariser is None:
        return None
    from loopwatch.application.summaries import SummariserThread

    thread = SummariserThread(summariser, tick_seconds=settings.summary_tick_seconds)
    thread.start()
    return thread


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("loopwatch")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "0+unknown"
