"""The HTTP service: FastAPI on uvicorn, versioned under ``/v1``."""

from loopwatch.service.app import create_app

__all__ = ["create_app"]
