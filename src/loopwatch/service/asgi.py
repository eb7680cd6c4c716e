"""Entry point for uvicorn workers: ``uvicorn --factory loopwatch.service.asgi:app_from_env``.

Each worker process builds its settings from the environment the CLI set, and
runs its own scheduler of the loop engine unless ``LOOPWATCH_SCHEDULE_ENABLED=0``:
the workers agree through claims in the store, so each model is evaluated once
per period whatever their number.
"""

from __future__ import annotations

from fastapi import FastAPI

from loopwatch.config import Settings
from loopwatch.service.app import create_app


def app_from_env() -> FastAPI:
    return create_app(Settings.from_env())
