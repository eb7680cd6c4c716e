"""What the loop engine's diagnosis reads of one window beside its drift report, whether the
window was read from the log's rows or from window summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from loopwatch.application.monitoring.window_checks import PerformanceContext, latency_of
from loopwatch.loops.performance_evidence import MetricInterval

if TYPE_CHECKING:
    from loopwatch.performance.unmeasured import Unmeasured


@dataclass(frozen=True)
class VersionFacts:
    """One model version's events in a window and its label-free estimate (or why there is none)."""

    n: int
    estimated: MetricInterval | None
    estimated_missing: Unmeasured | None


@dataclass(frozen=True)
class WindowFacts:
    """One window of traffic: each serving version's facts, the runtime percentile of its
    requests, and the rows the software checks read (all of them, or a uniform sample), with
    ``__version``, ``__client_id`` and ``__client_version`` beside the features."""

    start: datetime
    end: datetime
    versions: dict[int, VersionFacts]
    latency_ms: float | None
    software_rows: pd.DataFrame


def facts_of_rows(start: datetime, end: datetime, rows: pd.DataFrame, contexts: dict[int, PerformanceContext],
                  *, latency_percentile: float) -> WindowFacts:
    """A window's facts from its rows (the log's frame)."""
    versions = {}
    for number in sorted(int(v) for v in rows["__version"].unique()):
        part = rows[rows["__version"] == number]
        estimated, missing = contexts[number].estimate_or_why(part)
        versions[number] = VersionFacts(n=int(len(part)), estimated=estimated, estimated_missing=missing)
    return WindowFacts(start=start, end=end, versions=versions, latency_ms=latency_of(rows, latency_percentile),
                       software_rows=rows)
