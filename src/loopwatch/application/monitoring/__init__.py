"""Monitoring a served model's logged events, window by window."""

from loopwatch.application.monitoring.runner import MONITOR_ALPHA, MonitorReport, WindowReport, alarms_of, monitor
from loopwatch.application.monitoring.windows import Window, WindowSpec, events_frame, split

__all__ = [
    "MONITOR_ALPHA",
    "MonitorReport",
    "Window",
    "WindowReport",
    "WindowSpec",
    "alarms_of",
    "events_frame",
    "monitor",
    "split",
]
