"""The demo: drives the real service from outside, as a client would, and grades what it finds."""

from loopwatch.demo.runner import DemoResult, ServiceProcess, free_port, run_demo

__all__ = ["DemoResult", "ServiceProcess", "free_port", "run_demo"]
