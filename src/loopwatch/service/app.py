"""The app factory: settings in, a FastAPI app out; the store and writer live in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI

from loopwatch.config import Settings
from loopwatch.prediction import Predictor
from loopwatch.registry import Registry
from loopwatch.service.errors import install_error_handlers, refuse_nul_characters
from loopwatch.service.metrics import ServiceMetrics
from loopwatch.service.middleware import BodyLimitMiddleware, MetricsMiddleware
from loopwatch.service.routers import health, logs, models, monitor, predict, train
from loopwatch.service.state import CLIENT_ID_HEADER, ServiceState, predict_model_name
from loopwatch.stores import open_store
from loopwatch.stores.base import Store
from loopwatch.stores.writer import GroupCommitWriter

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
        own_store = store is None
        opened = store or open_store(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        registry = Registry(opened, cache_size=settings.model_cache_size)
        writer = GroupCommitWriter(
            opened,
            queue_max_requests=settings.queue_max_requests,
            batch_max_requests=settings.batch_max_requests,
            batch_max_wait_ms=settings.batch_max_wait_ms,
            retry_after_seconds=settings.retry_after_seconds,
            on_commit=lambda n, rows, seconds: metrics.commits.observe(seconds),
        ).start()
        state = ServiceState(
            settings=settings,
            store=opened,
            registry=registry,
            predictor=Predictor(registry, max_rows=settings.max_rows_per_request),
            writer=writer,
            metrics=metrics,
        )
        app.state.loopwatch = state
        holder["state"] = state
        retention = asyncio.create_task(_retention_loop(opened))
        try:
            yield
        finally:
            retention.cancel()
            writer.close()
            if own_store:
                opened.close()

    app = FastAPI(
        title="loopwatch",
        version=_version(),
        summary="Serve scikit-learn models and log every prediction as a durable event.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_characters)],
    )
    install_error_handlers(app)
    for router in (predict.router, train.router, models.router, logs.router, monitor.router, health.router):
        app.include_router(router, prefix="/v1")
    app.include_router(health.metrics_router)

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
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _retention_loop(store: Store) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(store.apply_retention, datetime.now(timezone.utc))
            if any(removed.values()):
                _log.info("retention removed events: %s", removed)
        except Exception as exc:  # retention must never take the service down
            _log.error("retention failed: %s", exc)
        await asyncio.sleep(RETENTION_INTERVAL_SECONDS)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("loopwatch")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "0+unknown"
