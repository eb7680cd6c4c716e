"""Entry point for uvicorn workers: ``uvicorn --factory loopwatch.service.asgi:app_from_env``.

Each worker process builds its settings from the environment the CLI set.
"""

from __future__ import annotations

from fastapi import FastAPI

from loopwatch.config import Settings
from loopwatch.service.app import create_app


def app_from_env() -> FastAPI:
    return create_app(Settings.from_env())
