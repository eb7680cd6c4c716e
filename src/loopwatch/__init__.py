"""loopwatch: serve scikit-learn models, log every prediction durably, and close
the feedback loops of models in production.

Importing ``loopwatch`` is cheap: the public names below are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["Settings", "Workspace", "LoopwatchError", "create_app", "open_store"]

_LAZY = {
    "Settings": "loopwatch.config",
    "Workspace": "loopwatch.application.workspace",
    "LoopwatchError": "loopwatch.errors",
    "create_app": "loopwatch.service",
    "open_store": "loopwatch.stores",
}

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.config import Settings
    from loopwatch.errors import LoopwatchError
    from loopwatch.service import create_app
    from loopwatch.stores import open_store
    from loopwatch.application.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopwatch' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
