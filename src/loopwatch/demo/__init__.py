"""The demo: drives the real service from outside, as a client would, and grades what it finds.

The names below load on first use: ``loopwatch --help`` imports :mod:`loopwatch.demo.command`,
which must not pull in the simulator and the service.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DemoResult", "ServiceProcess", "free_port", "run_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from loopwatch.demo import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'loopwatch.demo' has no attribute {name!r}")
