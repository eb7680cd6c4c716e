"""What the labels say, read from window summaries: the label part of the loop engine without rows.

:func:`label_findings_from_summaries` returns the :class:`LabelPart` that
:func:`~loopwatch.application.monitoring.label_evidence.label_findings` computes from the
prediction log, from each (window, version)'s merged :class:`~loopwatch.summaries.labels.LabelSums`
instead: its cost follows the windows, not the events. What differs, and why:

* **Realized metrics** are the sums' exact values (ROC AUC within its stated bound, on the
  rank score bins); their intervals are analytic, not bootstrapped
  (:mod:`loopwatch.summaries.label_intervals` says which, per metric).
* **Checkpoints by arrival day.** The row path tests a window again at the end of every window
  in which some of its labels arrived. A summary splits its labels by the UTC day they arrived
  on (``LabelSums.arrivals``), so a window is tested at the end of each window that closes an
  arrival day (:func:`checkpoints_of`): with daily windows, the row path's checkpoints. A part
  without the split (built before it existed) is tested once, dated at the end of the window
  holding ``window end + largest label delay``: an upper bound on when its evidence existed.
* **Coverage** counts are exact. The delay percentiles are read from log-spaced bins (4.4%
  wide: ``delay_relative_error`` says how far each may be from the exact one, which the row
  path interpolates); the maximum is exact to the second. Mature coverage counts whole
  windows: a window is mature when it ended before the last window's end less the p90 delay
  (the row path cuts at the last event's time less that delay, event by event).
* **Business value and target drift of a classifier** are the rows': its realized value and
  the chi-square test of its labels read only the confusion counts.
* **Not measured**, and named in ``performance.not_measured``: realized performance per
  segment (``performance.segments`` stays empty, as when no segment feature is known), the
  river detector over the loss stream in label-arrival order (``labels.concept_stream`` stays
  None), a regressor's target drift, the expected value and a regressor's cost. Each needs
  the labelled rows, or each prediction's probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Sequence

from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.performance_evidence import (
    CoverageWindow, LabelCoverage, MetricInterval, PerformanceEvidence, PerformanceWindow, VersionPerformance,
)
from loopwatch.application.monitoring.concept_baseline import ConceptBaseline
from loopwatch.application.monitoring.label_evidence import (
    BASELINE_BASIS, CONCEPT_ALPHA_SHARE, LabelPart, _concept_finding, _departure_test, against_holdout,
)
from loopwatch.application.monitoring.outcomes import target_drift_of_sums, window_value_of_sums
from loopwatch.application.monitoring.pooled_concept import pooled_findings
from loopwatch.application.monitoring.window_checks import PerformanceContext
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.performance.unmeasured import Unmeasured
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.summaries.label_intervals import SCORED_METRICS, realized_interval
from loopwatch.summaries.labels import LabelSums
from loopwatch.summaries.log_bins import BINS_PER_OCTAVE, LogHistogram, bin_edges

#: What the label part cannot measure from summaries, and why.
NOT_MEASURED = {
    "segments": "realized performance per segment needs each labelled row's segment value",
    "concept_stream": "the loss stream in label-arrival order needs each labelled row",
    "target_drift": "a regressor's target drift compares the labels themselves with the holdout's "
                    "(a classifier's is tested on its label counts)",
    "value": "the expected value needs each prediction's probabilities, and a regressor's cost each error "
             "(a classifier's realized value is exact from its label counts)",
}
#: How far a delay percentile read from the log-spaced bins may be from the exact one.
DELAY_RELATIVE_ERROR = round(2 ** (1 / BINS_PER_OCTAVE) - 1, 4)


@dataclass(frozen=True)
class LabelledWindow:
    """What the label part needs of one (window, version), read from its merged summary."""

    start: datetime
    end: datetime
    version: int
    predictions: int  # events of this version in the window
    labels: LabelSums | None  # the merged label part of the window (None: no label yet)
    estimated: MetricInterval | None  # the label-free estimate (computed by the caller)
    estimated_missing: Unmeasured | None  # why there is none


def label_findings_from_summaries(
    windows: Sequence[LabelledWindow],
    contexts: dict[int, PerformanceContext],
    config: MonitoringConfig,
    *,
    spec: WindowSpec,
    drifted_windows: set[datetime],
) -> LabelPart:
    """The label part of the loop engine from window summaries (see the module for what differs
    from :func:`~loopwatch.application.monitoring.label_evidence.label_findings`).

    ``windows``: every (window, version) with predictions, in any order, each with its labels
    as they stand; ``spec``: the windows' length (summaries are time windows)."""
    if spec.length is None:
        raise InvalidInput("window summaries are windows of time: a count window has none")
    ordered = sorted(windows, key=lambda w: (w.start, w.version))
    part = LabelPart()
    part.labels = coverage_of(ordered)
    z_crit = float(stats.norm.isf(config.drift_alpha * CONCEPT_ALPHA_SHARE))
    entries: list[PerformanceWindow] = []
    baselines: dict[int, ConceptBaseline[datetime]] = {}
    judged: dict[int, list[tuple[Any, ...]]] = {}  # per version, the windows judged without a finding
    found_at: dict[int, datetime] = {}  # per version, when its first window finding was available
    concept_since: dict[int, datetime] = {}
    for window in ordered:
        context = contexts[window.version]
        labels = window.labels.n if window.labels is not None else 0
        entry = PerformanceWindow(start=window.start, model_version=window.version, metric=context.metric,
                                  predictions=window.predictions, labels=labels, estimated=window.estimated,
                                  inputs_drifted=window.start in drifted_windows,
                                  estimated_missing=window.estimated_missing)
        entries.append(entry)
        entry.value = window_value_of_sums(context, window.labels, config)
        entry.target_drift = target_drift_of_sums(context, window.labels, config)
        estimated = window.estimated
        testable = estimated is not None and window.start not in drifted_windows
        found = None
        departure: float | None = None
        tests: list[tuple[datetime, MetricInterval, Any, int]] = []
        # each checkpoint the window's labels reached, with the labels known by then (as the row
        # path tests it); a part without its split by arrival day has one: all of them
        for checkpoint, seen in checkpoints_of(window, spec):
            if seen.n < config.min_labels:
                continue
            realized = _realized(context, seen)
            if realized is None:
                continue
            entry.realized = realized
            if not testable or found is not None or estimated is None or not _has_interval(realized):
                continue
            departure = realized.value - estimated.value
            departure = -departure if context.higher_is_better else departure
            baseline = baselines.setdefault(window.version, ConceptBaseline())
            test = _departure_test(departure, realized, estimated, baseline.known(checkpoint))
            entry.departure = test
            tests.append((checkpoint, realized, test, seen.n))
            if test.excess > config.performance_tolerance and test.z > z_crit:
                found = _concept_finding(context, window.start, spec, checkpoint, realized, estimated, test, seen.n)
        if tests and departure is not None:
            # the usual gap: a window enters it once it is known not to be part of a drift
            baselines[window.version].record(at=tests[-1][0], departure=departure, drifted=found is not None,
                                             baselined=tests[-1][2].basis == BASELINE_BASIS)
        if entry.realized is None:  # a null metric says why: too few labels, one class, ...
            entry.realized_missing = _unrealized(context, window.labels, config.min_labels)
            continue
        if found is not None:
            part.findings.append(found)
            found_at[window.version] = min(found_at.get(window.version, found.available_at), found.available_at)
            concept_since[window.version] = min(concept_since.get(window.version, window.start), window.start)
        elif tests:
            judged.setdefault(window.version, []).append((window.start, estimated, tests))
    for number, (finding, since) in pooled_findings(contexts, judged, found_at, spec, config,
                                                    make=_concept_finding).items():
        part.findings.append(finding)
        concept_since[number] = min(concept_since.get(number, since), since)
    unstable = drifted_windows | {f.window_start for f in part.findings}
    stable = [w for w in ordered if w.labels is not None and w.start not in unstable
              and not (w.version in concept_since and w.start >= concept_since[w.version])]
    part.performance = PerformanceEvidence(windows=entries, versions=_overall(contexts, stable, config),
                                           not_measured=dict(NOT_MEASURED))
    return part


def checkpoints_of(window: LabelledWindow, spec: WindowSpec) -> list[tuple[datetime, LabelSums]]:
    """Each moment the window's labels were tested at, with the labels known by then: the end
    of each window in which some arrived (of the day they arrived on, for windows shorter than
    a day), from the part's split by arrival day; without the split, one, when all were in
    (:func:`evidence_available_at`)."""
    assert spec.length is not None
    labels = window.labels
    if labels is None:
        return []
    if not labels.arrivals:
        return [(evidence_available_at(window, spec), labels)]
    out = []
    for day in sorted({spec.start_of(from_micros(d) + timedelta(days=1) - timedelta(microseconds=1)) + spec.length
                       for d in labels.arrivals}):
        seen = labels.known_by(to_micros(day))
        if seen is not None:
            out.append((day, seen))
    return out


def evidence_available_at(window: LabelledWindow, spec: WindowSpec) -> datetime:
    """When a window's labels as they stand were all in, at the latest: the end of the window
    that holds the window's end plus its largest label delay (an upper bound: see the module)."""
    assert spec.length is not None
    delay = window.labels.delay if window.labels is not None else LogHistogram()
    if delay.max is not None:
        longest = delay.max + 1.0  # delays are kept in whole seconds, rounded down
    elif delay.counts:
        longest = bin_edges(max(delay.counts))[1]
    else:
        longest = 0.0
    # every prediction precedes the window's end and every delay is below ``longest``
    latest = window.end + timedelta(seconds=longest) - timedelta(microseconds=1)
    return spec.start_of(latest) + spec.length


def coverage_of(windows: Sequence[LabelledWindow]) -> LabelCoverage:
    """Coverage (share of predictions labelled) and label delay, overall and per window."""
    predictions = sum(w.predictions for w in windows)
    labelled = sum(w.labels.n for w in windows if w.labels is not None)
    out = LabelCoverage(predictions=predictions, labelled=labelled)
    if not labelled:
        return out
    delay = LogHistogram()
    for w in windows:
        if w.labels is not None:
            delay = delay.merge(w.labels.delay)
    out.delay_hours = {f"p{q}": round(delay.quantile(q / 100).value / 3600.0, 2) for q in (10, 50, 90)}
    out.delay_hours["max"] = round(float(delay.max or 0) / 3600.0, 2)
    out.delay_relative_error = DELAY_RELATIVE_ERROR
    per_start: dict[datetime, list[int]] = {}
    for w in windows:
        counts = per_start.setdefault(w.start, [0, 0])
        counts[0] += w.predictions
        counts[1] += w.labels.n if w.labels is not None else 0
    out.windows = [CoverageWindow(start=start, predictions=total, labelled=done)
                   for start, (total, done) in sorted(per_start.items())]
    # windows older than the usual label delay: their coverage is what labelling achieves
    horizon = max(w.end for w in windows) - timedelta(seconds=delay.quantile(0.9).value)
    mature = [w for w in windows if w.end <= horizon]
    total = sum(w.predictions for w in mature)
    done = sum(w.labels.n for w in mature if w.labels is not None)
    out.coverage_mature = round(done / total, 4) if total else None
    return out


def _realized(context: PerformanceContext, sums: LabelSums | None) -> MetricInterval | None:
    if sums is None:
        return None
    value = realized_interval(sums, context.metric, n_classes=len(context.classes))
    if value is None or not math.isfinite(value.value):
        return None
    return MetricInterval(value=float(value.value), ci_low=float(value.ci_low), ci_high=float(value.ci_high),
                          n=int(value.n))


def _has_interval(value: MetricInterval) -> bool:
    # without one (log loss, ECE, MAPE from sums) the standard error would read as zero
    return math.isfinite(value.ci_low) and math.isfinite(value.ci_high)


def _unrealized(context: PerformanceContext, sums: LabelSums | None, min_labels: int) -> Unmeasured:
    """Why a window's realized metric is null, told from its sums as the row path tells it from its labels."""
    n = sums.n if sums is not None else 0
    classification = context.version.task == "classification"
    if n < min_labels:
        reason = "too_few_labels"
    elif classification and sums is not None and len({t for (t, _), c in sums.confusion.items() if c}) < 2:
        reason = "single_class"
    elif classification and sums is not None and context.metric in SCORED_METRICS and sums.scored is None:
        reason = "no_probabilities"
    else:
        reason = "undefined"
    return Unmeasured(metric=context.metric, reason=reason, counted="labels", n=n, minimum=min_labels)


def merged_labels(windows: Sequence[LabelledWindow]) -> LabelSums | None:
    """The label sums of several windows together; without the probabilities when some windows
    were summarised with them and some without (their confusion counts still add up)."""
    parts = [w.labels for w in windows if w.labels is not None]
    if not parts:
        return None
    try:
        total = parts[0]
        for other in parts[1:]:
            total = total.merge(other)
        return total
    except InvalidInput:
        total = replace(parts[0], scored=None)
        for other in parts[1:]:
            total = total.merge(replace(other, scored=None))
        return total


def _overall(contexts: dict[int, PerformanceContext], stable: Sequence[LabelledWindow],
             config: MonitoringConfig) -> dict[int, VersionPerformance]:
    """Realized performance of each version on its stable windows (no input drift, no concept
    drift) against its holdout: an overfitting gap is a difference beyond both samples' noise."""
    out: dict[int, VersionPerformance] = {}
    for number, context in contexts.items():
        sums = merged_labels([w for w in stable if w.version == number])
        n = sums.n if sums is not None else 0
        realized = _realized(context, sums) if n >= config.min_labels else None
        if realized is None:
            out[number] = VersionPerformance(metric=context.metric, realized=None,
                                             realized_missing=_unrealized(context, sums, config.min_labels))
            continue
        # a metric without an interval from sums (log loss, ECE, MAPE) gives a gap, not a test
        found = against_holdout(context, realized, config, testable=_has_interval(realized))
        if found is not None:
            out[number] = found
    return out
