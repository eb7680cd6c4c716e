"""The pooled concept test beside the window tests: for a version that a window test already
named, a pooled finding counts only when it was available earlier (it dates the drift; it
cannot add an incident the window tests did not raise)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from loopwatch.application.monitoring.pooled_concept import pooled_findings
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.performance_evidence import DepartureTest, MetricInterval
from loopwatch.loops.report import Finding

DAY = timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def make(context: Any, start: datetime, spec: WindowSpec, moment: datetime, realized: MetricInterval,
         estimated: MetricInterval, test: DepartureTest, labels: int) -> Finding:
    return Finding(kind="concept_drift", window_start=start, window_end=start + DAY, available_at=moment,
                   severity=test.excess, summary="", evidence={"z": test.z})


def series(zs: list[float], *, excess: float = 0.05) -> list[tuple[Any, ...]]:
    """One window a day, each tested once when its labels are in, ten days after it ended."""
    out = []
    for day, z in enumerate(zs):
        start = START + day * DAY
        realized = MetricInterval(value=0.7, ci_low=0.66, ci_high=0.74, n=1000)
        test = DepartureTest(departure=excess, usual=0.0, excess=excess, z=z, baseline_windows=10,
                             basis="earlier stable windows")
        out.append((start, MetricInterval(value=0.75, ci_low=0.71, ci_high=0.79), [(start + 11 * DAY, realized, test, 1000)]))
    return out


def test_a_run_of_windows_that_each_fall_short_dates_a_named_drift_earlier() -> None:
    spec, config, contexts = WindowSpec.parse("1d"), MonitoringConfig(), {1: SimpleNamespace(metric="roc_auc")}
    judged = {1: series([0.0, 0.0, 2.9, 2.9, 2.9, 2.9])}  # each below a quarter-alpha bar; together over
    alone = pooled_findings(contexts, judged, {}, spec, config, make=make)
    finding, since = alone[1]
    # the CUSUM (drift 0.5) reaches 7.2 > 6 on the third shifted window, tested on day 4 + 11
    assert finding.window_start == START + 4 * DAY and finding.available_at == START + 15 * DAY
    assert since == START + 2 * DAY and finding.evidence["pooled_windows"] == 3
    # a window finding available a day later: the pooled finding dates the drift
    assert pooled_findings(contexts, judged, {1: START + 16 * DAY}, spec, config, make=make) == alone
    # available at the same moment or earlier: the window finding stands alone
    assert pooled_findings(contexts, judged, {1: START + 15 * DAY}, spec, config, make=make) == {}
    # no drift, no pooled finding, whatever the window tests found
    quiet = {1: series([0.3, -0.5, 1.1, -0.2, 0.4, 0.9])}
    assert pooled_findings(contexts, quiet, {}, spec, config, make=make) == {}


def test_the_practical_floor_holds_for_the_pooled_test_too() -> None:
    spec, config, contexts = WindowSpec.parse("1d"), MonitoringConfig(), {1: SimpleNamespace(metric="roc_auc")}
    tiny = {1: series([3.0] * 6, excess=config.performance_tolerance / 2)}
    assert pooled_findings(contexts, tiny, {}, spec, config, make=make) == {}


def test_a_run_that_crossed_on_small_losses_is_named_once_its_recent_windows_reach_the_size() -> None:
    # a slow build-up of small departures (excess 0.005) crosses the threshold before the drift;
    # the practical floor refuses that crossing, and the drift's windows are judged as the sum
    # stays over it: found on the second drifted window, not never
    spec, config, contexts = WindowSpec.parse("1d"), MonitoringConfig(), {1: SimpleNamespace(metric="roc_auc")}
    build_up = series([2.0] * 5, excess=0.005)
    drifted = series([3.0] * 7, excess=0.06)
    judged = {1: [*build_up, *[(start + 5 * DAY, est, [(t[0] + 5 * DAY, *t[1:]) for t in tests])
                               for start, est, tests in drifted]]}
    finding, since = pooled_findings(contexts, judged, {}, spec, config, make=make)[1]
    # recent five windows' mean excess: (3 x 0.005 + 2 x 0.06) / 5 = 0.027, then (2 x 0.005 + 3 x 0.06) / 5 = 0.038
    assert finding.window_start == START + 7 * DAY and since == START
    assert finding.evidence["pooled_windows"] == 8 and finding.severity == pytest.approx(0.038)
