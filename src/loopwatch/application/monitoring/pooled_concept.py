"""The pooled concept-drift test: a one-sided CUSUM over the label windows' departures.

``make`` builds the finding as the per-window test does (:mod:`label_evidence`), so both
kinds of concept finding carry the same evidence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.report import Finding
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.stats.cusum import cusum_alarm, cusum_path

#: Windows, up to the crossing, whose mean excess must reach the tolerance for a pooled finding.
POOLED_PRACTICAL_WINDOWS = 5


def pooled_concept_finding(context: Any, series: list[tuple[Any, ...]], spec: WindowSpec,
                           config: MonitoringConfig, *, make: Callable[..., Finding]) -> tuple[Finding, Any] | None:
    """A concept drift found by pooling windows: a one-sided CUSUM over the windows' departure
    z scores (:mod:`loopwatch.stats.cusum`), in time order, when the mean excess of the windows
    nearest the crossing also reaches the practical tolerance. Each window alone may fall short
    of the per-window bar while a run of them is overwhelming evidence (a drift costing every
    day a little).

    ``series`` holds, per window, its start, its estimate and its tests, one per label
    checkpoint. The pooled test is run as of each checkpoint, on each window's latest test by
    then, so that the finding is dated when the evidence first existed. Returns the finding and
    the start of the run's first window (from where the version's concept changed)."""
    assert spec.length is not None
    moments = sorted({test[0] for item in series for test in item[2]})
    for moment in moments:
        current = []
        for start, estimated, tests in series:
            known = [t for t in tests if t[0] <= moment]
            if known:
                current.append((start, estimated, known[-1]))
        zs = [item[2][2].z for item in current]
        alarm = cusum_alarm(zs)
        if alarm is None:
            continue
        first, last = alarm
        run = current[first:last + 1]
        # the practical size is judged on the windows nearest the crossing: a run begins wherever
        # the sum last touched zero, and the small excesses of its first windows would dilute it
        recent = run[-POOLED_PRACTICAL_WINDOWS:]
        excess = float(np.mean([item[2][2].excess for item in recent]))
        if excess <= config.performance_tolerance:
            continue
        start, estimated, (_, realized, test, labels) = current[last]
        pooled = replace(test, excess=round(excess, 4))
        cusum = round(float(cusum_path(zs)[last]), 2)
        finding = make(context, start, spec, moment, realized, estimated, pooled, labels)
        finding = replace(finding, evidence={**finding.evidence, "pooled_windows": len(run),
                                             "pooled_since": run[0][0].isoformat(), "cusum": cusum})
        # dated by the window where the pooled evidence crossed, as the window test dates by
        # its window; where the run began is in the evidence
        return replace(finding, severity=excess, summary=(
            f"realized {context.metric} fell {excess:.3f} further below the label-free estimate than usual, on "
            f"average over the {len(recent)} windows to {start:%Y-%m-%d} (CUSUM of the z scores of the {len(run)} "
            f"windows since {run[0][0]:%Y-%m-%d}: {cusum:.1f}) while the inputs held: the relation "
            "between inputs and outcome changed")), run[0][0]
    return None


def pooled_findings(contexts: Mapping[int, Any], judged: Mapping[int, Sequence[tuple[Any, ...]]],
                    found_in: set[int], spec: WindowSpec, config: MonitoringConfig, *,
                    make: Callable[..., Finding]) -> dict[int, tuple[Finding, datetime]]:
    """Per version whose windows no test named one by one, the pooled test's finding and the
    start of its run (:func:`pooled_concept_finding`), where it finds one."""
    out = {}
    for number, series in judged.items():
        if number in found_in:  # the per-window test already named this version's drift
            continue
        pooled = pooled_concept_finding(contexts[number], list(series), spec, config, make=make)
        if pooled is not None:
            out[number] = pooled
    return out
