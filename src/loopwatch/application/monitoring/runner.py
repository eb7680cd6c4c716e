"""Monitor a served model: each window of its logged events against its version's reference.

For every window (and, when asked, every segment within it) the inputs are
compared with the reference profile of the model version that served them, and
with the window before (univariate only: the previous window is a sample, not
a profile); the model's outputs are compared with its outputs on held-out
reference rows; the rejections of the window are counted. A window raises an
alarm when its data drifted, its predictions drifted, or its data quality
broke down (unseen categories, values out of the training range, rejections).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pandas as pd

from loopwatch.application.configs import load_monitoring_config
from loopwatch.drift.config import DriftConfig
from loopwatch.drift.compare import compare, data_quality
from loopwatch.drift.profile import ReferenceProfile, build_profile
from loopwatch.drift.report import DataQuality, DriftReport, SkippedTest
from loopwatch.errors import InvalidInput, LoopwatchError, echo
from loopwatch.features.frames import model_frame
from loopwatch.application.monitoring.security_evidence import window_evasion
from loopwatch.application.monitoring.window_results import (
    DEFAULT_ADVERSARIAL_FPR,
    MONITOR_ALPHA,
    MONITOR_CONFIG,
    QUALITY_SHARE,
    MonitorReport,
    WindowReport,
    against_previous,
    NOT_SCORED,
    alarms_of,
    alarms_with_evasion,
    count_between,
    evasion_threshold,
    rejection_times,
    with_unexpected_missing,
)
from loopwatch.application.monitoring.windows import Window, WindowSpec, events_frame, split
from loopwatch.records import PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.registry.registry import is_monitor_only
from loopwatch.stores.base import EventQuery, Store

if TYPE_CHECKING:
    from loopwatch.application.summaries import Summariser
    from loopwatch.summaries.window import WindowSummary

logger = logging.getLogger("loopwatch.application.monitoring")


def monitor(
    store: Store,
    registry: Registry,
    name: str,
    *,
    window: str = "1d",
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    segment: str | None = None,
    compare_previous: bool = True,
    config: DriftConfig | None = None,
    events: Sequence[PredictionEvent] | None = None,
    adversarial_fpr: float | None = None,
    summariser: Summariser | None = None,
    visit: Callable[[int, datetime, WindowSummary], None] | None = None,
) -> MonitorReport:
    """Compare every window of ``name``'s logged events with its version's reference.

    ``events`` are the already-loaded events of the range (the loop engine loads them
    once for everything it checks); shadow scoring is never part of what is monitored.
    Each window's share of predictions flagged by the evasion score is tested against
    the calibration rows' share at ``adversarial_fpr`` (the model's monitoring
    configuration's when None), an ``evasion`` alarm when it is higher.

    With a ``summariser``, time windows are read from window summaries instead of the log
    (:mod:`.summary_monitor`: the cost follows the windows, not the events); ``count:N``
    windows, segments and already-loaded ``events`` still read rows. ``visit`` is handed each
    window summary read, with its version and window start (the loop engine reads the rest of
    its evidence from them in the same pass).
    """
    spec = WindowSpec.parse(window)
    if config is None or adversarial_fpr is None:
        settings, _ = load_monitoring_config(store, name)
        # the model's own practical thresholds, unless the caller configured the comparison
        config = config or replace(MONITOR_CONFIG, practical_thresholds=settings.practical_thresholds,
                                   practical_band_rows=settings.practical_band_rows)
        adversarial_fpr = settings.adversarial_fpr if adversarial_fpr is None else adversarial_fpr
    versions = {v.version: v for v in store.list_versions(name)}
    if version is not None and version not in versions:
        raise InvalidInput(f"model {echo(name)} has no version {version}")
    if summariser is not None and events is None and segment is None and spec.length is not None:
        from loopwatch.application.monitoring.summary_monitor import monitor_summaries

        return monitor_summaries(
            store, registry, summariser, name, spec=spec, window=window, since=since, until=until,
            versions=versions, version=version, compare_previous=compare_previous, config=config,
            adversarial_fpr=adversarial_fpr, declared=set(registry.settings(name, fresh=True).nullable), visit=visit,
        )
    if events is None:
        query = EventQuery(model_name=name, model_version=version, since=since, until=until, limit=10_000)
        events = list(store.iter_events(query))
    events = [e for e in events if e.request_type != "shadow"]
    report = MonitorReport(model=name, window=window, since=since, until=until)
    if not events:
        return report
    rejections = rejection_times(store, name, since)
    declared = set(registry.settings(name, fresh=True).nullable)
    by_version: dict[int, list[Any]] = {}
    for event in events:
        by_version.setdefault(event.model_version, []).append(event)
    for number, version_events in sorted(by_version.items()):
        meta = versions[number]
        profile = registry.profile(name, number)
        frame = events_frame([e for e in version_events if e.data is not None], meta.schema.classes,
                             schema=meta.schema)
        if frame.empty:
            continue
        outputs = [c for c in frame.columns if c == "prediction" or c.startswith("probability_")]
        previous: pd.DataFrame | None = None
        for part in split(frame, spec):
            for segment_value, rows in _segments(part, segment):
                # segment_value is only ever set when a segment column is named
                reference = profile if segment_value is None or segment is None else _segment_profile(
                    registry, name, number, segment, segment_value
                )
                if reference is None:
                    continue
                current = rows.drop(columns=[c for c in rows.columns if c.startswith("__")])
                drift = compare_window(reference, current, outputs=outputs, config=config, where=(name, part.start))
                if segment_value is not None and not _refused(drift):
                    # data quality is judged against the training data, as for the whole
                    # window: a segment's own sample has a narrower range and fewer categories
                    drift = replace(drift, data_quality=data_quality(profile, current, outputs=outputs))
                drift = with_unexpected_missing(drift, current, meta.schema, declared)
                before, skipped = None, list(drift.skipped)
                if compare_previous and previous is not None and segment_value is None:
                    before, not_before = against_previous(profile, previous, current, config)
                    skipped += not_before
                n_rejected = count_between(rejections, part.start, part.end) if segment_value is None else 0
                evasion: dict[str, Any] | None = None if segment_value is not None else window_evasion(
                    registry, name, number, rows, fpr=adversarial_fpr)
                if segment_value is None and is_monitor_only(meta):
                    evasion = dict(NOT_SCORED)
                alarms, evasion = alarms_with_evasion(drift, n_rejected, evasion, config)
                report.windows.append(
                    WindowReport(
                        start=part.start,
                        end=part.end,
                        n_events=len(rows),
                        model_version=number,
                        segment=None if segment_value is None else f"{segment}={segment_value}",
                        report=drift,
                        previous=before,
                        rejections=n_rejected,
                        alarms=alarms,
                        evasion=evasion,
                        skipped=skipped,
                    )
                )
            previous = part.frame.drop(columns=[c for c in part.frame.columns if c.startswith("__")])
    report.windows.sort(key=lambda w: (w.start, w.model_version, w.segment or ""))
    return report


def compare_window(
    reference: ReferenceProfile, current: pd.DataFrame, *, outputs: Sequence[str], config: DriftConfig,
    where: tuple[str, datetime],
) -> DriftReport:
    """compare() for one window; a window it refuses is reported as refused, and the others go on.

    The tests guard their own minimum sizes, so a refusal here is an input nobody foresaw:
    it is logged, and the window shows it instead of the monitor failing as a whole.
    """
    try:
        return compare(reference, current, outputs=outputs, config=config)
    except (LoopwatchError, ValueError, ArithmeticError) as exc:
        logger.warning("monitor: window %s of %r left out: %s", utc_iso(where[1]), where[0], exc)
        return DriftReport(
            dataset_drift=False, n_reference=reference.n, n_current=len(current), alpha=config.alpha,
            features={}, multivariate={}, outliers={},
            data_quality=DataQuality([], [], {}, {}, {}, {}), config=config.to_dict(),
            skipped=[SkippedTest(test="window", reason="refused", n=len(current), detail=str(exc))],
        )


def _refused(report: DriftReport) -> bool:
    return any(t.test == "window" for t in report.skipped)


def _segments(window: Window, segment: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    if segment is None:
        return [(None, window.frame)]
    if segment not in window.frame.columns:
        raise InvalidInput(f"segment column {echo(segment)} is not a logged feature")
    groups = window.frame.groupby(window.frame[segment].astype(str), sort=True)
    return [(None, window.frame)] + [(str(value), rows) for value, rows in groups]


def _segment_profile(
    registry: Registry, name: str, version: int, column: str, value: str
) -> ReferenceProfile | None:
    """A reference for one segment, built from the version's reference sample.

    ``None`` when the reference has too few rows of that segment: a segment
    never seen in training shows as an unseen category in the overall window.
    """
    meta = registry.resolve(name, version)
    # the same name and version in another database is another model: key on its reference
    key = ("segment", meta.reference_sha256, name, version, column, value)

    def build() -> ReferenceProfile | None:
        # the sample keeps the training table's types; segments are named by label
        sample = model_frame(registry.reference_sample(name, version), meta.schema)
        rows = sample[sample[column].astype(str) == value]
        if len(rows) < 200:
            return None
        return build_profile(rows[meta.schema.names], numeric=meta.schema.numeric,
                             categorical=meta.schema.categorical, seed=0)

    found: ReferenceProfile | None = registry.derived(key, build)
    return found


__all__: Sequence[str] = (
    "DEFAULT_ADVERSARIAL_FPR", "MONITOR_ALPHA", "MONITOR_CONFIG", "QUALITY_SHARE", "MonitorReport", "WindowReport",
    "alarms_of", "evasion_threshold", "monitor", "with_unexpected_missing",
)
