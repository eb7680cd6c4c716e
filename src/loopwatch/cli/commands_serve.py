"""``loopwatch serve``."""

from __future__ import annotations

import os
import tempfile

import click

from loopwatch.cli.common import err, handle_errors, settings_options
from loopwatch.config import Settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes (default 1).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@settings_options
@handle_errors
def serve(host: str | None, port: int | None, workers: int | None, log_level: str, settings: Settings) -> None:
    """Serve every registered model over HTTP under /v1 (OpenAPI at /docs)."""
    import uvicorn

    from loopwatch.stores import open_store

    settings = settings.with_overrides(host=host, port=port, workers=workers)
    # migrate once here, so that workers never race to create the schema
    open_store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous).close()
    os.environ.update(settings.to_env())
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loopwatch-metrics-")
    err.print(
        f"loopwatch serving on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, database {settings.database_url})",
        highlight=False,
    )
    uvicorn.run(
        "loopwatch.service.asgi:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        access_log=False,
    )
