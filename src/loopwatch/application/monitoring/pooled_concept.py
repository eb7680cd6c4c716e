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
from loopwatch.stats.cusum import cusum_alarms, cusum_path

#: Windows, up to the crossing, whose mean excess must reach the tolerance for a pooled finding.
POOLED_PRACTICAL_WINDOWS = 5


def pooled_concept_finding(context: Any, series: list[tuple[Any, ...]], spec: WindowSpec,
                           config: MonitoringConfig, *, make: Callable[..., Finding]) -> tuple[Finding, Any] | None:
    """A concept drift found by pooling windows: a one-sided CUSUM over the windows' departure
    z scores (:mod:`loopwatch.stats.cusum`), in time order, at the first window where the sum is
    over its threshold and the mean excess of the windows nearest it also reaches the practical
    tolerance. Each window alone may fall short
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
        for first, last in cusum_alarms(zs):
            run = current[first:last + 1]
            # the practical size is judged on the windows nearest the crossing: a run begins
            # wherever the sum last touched zero, and the small excesses of its first windows
            # would dilute it. While the sum stays over the threshold, each later window is
            # judged too: a run that began with windows of no practical loss (a sum that
            # crossed early on a slow build-up) is named once its recent windows reach the size
            recent = run[-POOLED_PRACTICAL_WINDOWS:]
            excess = float(np.mean([item[2][2].excess for item in recent]))
            if excess > config.performance_tolerance:
                break
        else:
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
                    found_at: Mapping[int, datetime], spec: WindowSpec, config: MonitoringConfig, *,
                    make: Callable[..., Finding]) -> dict[int, tuple[Finding, datetime]]:
    """Per version, the pooled test's finding over the windows no test named one by one, and the
    start of its run (:func:`pooled_concept_finding`), where it finds one; for a version with a
    window finding (``found_at``: when the first was available), only a pooled finding available
    before it. The version then has an incident either way, so the pooled test adds no false
    alarm to the window tests': it can only date a drift earlier, when a run of windows that
    each fall short is overwhelming before any one window's labels are."""
    out = {}
    for number, series in judged.items():
        pooled = pooled_concept_finding(contexts[number], list(series), spec, config, make=make)
        if pooled is None:
            continue
        if number in found_at and pooled[0].available_at >= found_at[number]:
            continue
        out[number] = pooled
    return out
