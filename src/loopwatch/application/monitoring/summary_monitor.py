"""The drift monitor on window summaries: its cost follows the windows, not the log.

The summariser first catches up with the log (the events logged since its watermark: a cost
that follows what is new, not what is stored). Then each window of the period is merged on
read from the stored hours (and days, once hours are rolled up) of each version, and compared
with the version's reference by :func:`~loopwatch.drift.summary_compare.compare_summary`:
exact bins and counts, sketches with their error bounds, and the window's uniform row sample
for the tests that need rows. The comparison with the window before runs on the two windows'
row samples (univariate, as from the log).

Summaries are kept per hour, so a period is read in whole hours: ``since`` is rounded down and
``until`` up to the hour, and the report's ``since`` and ``until`` say so. A window for which only a rolled-up day is left (hours older than
``summary_hourly_days``) is read whole when the window is a day or longer, and left out of a
shorter window, with a note in the log. Segments and ``count:N`` windows read the log.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pandas as pd

from loopwatch.application.monitoring.security_evidence import evasion_of_counts
from loopwatch.application.monitoring.window_results import (
    NOT_SCORED,
    MonitorReport,
    WindowReport,
    against_previous,
    alarms_with_evasion,
    count_between,
    rejection_times,
    with_unexpected_nulls,
)
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.drift.config import DriftConfig
from loopwatch.drift.report import DataQuality, DriftReport, SkippedTest
from loopwatch.drift.summary_compare import compare_summary
from loopwatch.errors import LoopwatchError
from loopwatch.features.frames import with_canonical_features
from loopwatch.records import ModelVersion
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.registry.registry import is_monitor_only
from loopwatch.stores.base import Store
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.window import BASE_WINDOW, WindowSummary

if TYPE_CHECKING:
    from loopwatch.application.summaries import Summariser

logger = logging.getLogger("loopwatch.application.monitoring")


def monitor_summaries(
    store: Store, registry: Registry, summariser: Summariser, name: str, *, spec: WindowSpec, window: str,
    since: datetime | None, until: datetime | None, versions: dict[int, ModelVersion], version: int | None,
    compare_previous: bool, config: DriftConfig, adversarial_fpr: float, declared: set[str],
    visit: Callable[[int, datetime, WindowSummary], None] | None = None,
) -> MonitorReport:
    """Every window of ``name`` in ``[since, until)`` from its stored summaries (see the module)."""
    assert spec.length is not None
    summariser.catch_up(name)
    start = None if since is None else _floor_hour(since)
    end = None if until is None else _ceil_hour(until)
    # the report says what was read: whole hours
    report = MonitorReport(model=name, window=window, since=start, until=end)
    rejections = rejection_times(store, name, since)
    previous_of: dict[int, pd.DataFrame | None] = {}
    for (number, window_start), summary in _windows(store, name, spec, start=start, end=end, version=version):
        meta = versions[number]
        profile = registry.profile(name, number)
        # in the order the log's frame has them, so alarms are listed alike
        probabilities = [f"probability_{c}" for c in meta.schema.classes]
        previous = previous_of.get(number)
        shadow = int(summary.traffic.request_types.get("shadow", 0))
        if shadow == summary.n:  # a candidate scoring in the shadow: not what was served
            continue
        if visit is not None:
            visit(number, window_start, summary)
        sample = _sample_frame(summary, meta)
        # probabilities a file of predictions did not carry are not outputs (as from the log)
        outputs = ["prediction", *(p for p in probabilities if _has_values(summary, p))]
        drift = _compare(profile, summary, sample, outputs=outputs, config=config, where=(name, window_start))
        drift = with_unexpected_nulls(drift, _nulls(summary), meta.schema, declared)
        before, skipped = None, list(drift.skipped)
        if compare_previous and previous is not None:
            if sample is None:
                skipped.append(SkippedTest(test="previous", reason="no_row_sample", n=0, minimum=1))
            else:
                before, not_before = against_previous(profile, previous, sample, config)
                skipped += not_before
        window_end = window_start + spec.length
        n_rejected = count_between(rejections, window_start, window_end)
        evasion: dict[str, Any] | None = evasion_of_counts(
            registry, name, number, flagged=summary.traffic.evasion_flagged,
            scored=summary.traffic.evasion_scored, fpr=adversarial_fpr)
        if is_monitor_only(meta):
            evasion = dict(NOT_SCORED)
        alarms, evasion = alarms_with_evasion(drift, n_rejected, evasion, config)
        report.windows.append(WindowReport(
            start=window_start, end=window_end, n_events=summary.n, model_version=number, segment=None,
            report=drift, previous=before, rejections=n_rejected, alarms=alarms, evasion=evasion,
            skipped=skipped,
        ))
        previous_of[number] = sample
    report.windows.sort(key=lambda w: (w.start, w.model_version))
    return report


def _windows(store: Store, name: str, spec: WindowSpec, *, start: datetime | None, end: datetime | None,
             version: int | None) -> Iterator[tuple[tuple[int, datetime], WindowSummary]]:
    """Each (version, window start) of the period in order, merged from its stored hours and days.

    Which windows there are is read from the stored rows' columns; each window's payloads are
    then read and merged alone, so memory holds one window's hours at a time, not the period's."""
    assert spec.length is not None
    length = spec.length
    days: dict[tuple[int, datetime], list[tuple[datetime, datetime]]] = defaultdict(list)
    covered: set[tuple[int, datetime]] = set()
    for v, day_start, day_end in store.summary_spans(name, kind="day", start=start, end=end, version=version):
        window_start = spec.start_of(day_start)
        if day_end > window_start + length or (end is not None and day_end > end):
            logger.info("monitor: the rolled-up day %s of %r v%s does not fit a %s window: left out",
                        utc_iso(day_start), name, v, length)
            continue
        days[(v, window_start)].append((day_start, day_end))
        covered.add((v, day_start))
    hours: dict[tuple[int, datetime], bool] = {}
    for v, hour_start, _ in store.summary_spans(name, kind="hour", start=start, end=end, version=version):
        day_start = datetime(hour_start.year, hour_start.month, hour_start.day, tzinfo=timezone.utc)
        if (v, day_start) not in covered:
            hours[(v, spec.start_of(hour_start))] = True
    for key in sorted(set(days) | set(hours)):
        v, window_start = key
        lo = window_start if start is None else max(window_start, start)
        hi = window_start + length if end is None else min(window_start + length, end)
        # hours and days read in one snapshot (Store.read_window): an hour is rolled up into its
        # day in the same transaction that deletes it, so each hour is read once, even while the
        # service's summariser rolls hours up during this read
        found = store.read_window(name, version=v, start=lo, end=hi)
        if found is not None:
            yield key, found


def _sample_frame(summary: WindowSummary, meta: ModelVersion) -> pd.DataFrame | None:
    rows = summary.sample.values()
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    # the features and outputs only: who sent a row is no input to compare
    return with_canonical_features(frame.drop(columns=[c for c in frame.columns if c.startswith("__")]), meta.schema)


def _has_values(summary: WindowSummary, name: str) -> bool:
    part = summary.features.get(name)
    return part is not None and part.count > 0


def _nulls(summary: WindowSummary) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, part in summary.features.items():
        if isinstance(part, NumericPart):
            out[name] = part.n_null
        elif isinstance(part, CategoricalPart):
            out[name] = part.n_null
    return out


def _compare(profile: Any, summary: WindowSummary, sample: pd.DataFrame | None, *, outputs: Sequence[str],
             config: DriftConfig, where: tuple[str, datetime]) -> DriftReport:
    """compare_summary() for one window; one it refuses is reported as refused, and the others go on."""
    try:
        return compare_summary(profile, summary.features, n_events=summary.n, sample=sample, outputs=outputs,
                               config=config)
    except (LoopwatchError, ValueError, ArithmeticError) as exc:
        logger.warning("monitor: window %s of %r left out: %s", utc_iso(where[1]), where[0], exc)
        return DriftReport(
            dataset_drift=False, n_reference=profile.n, n_current=summary.n, alpha=config.alpha,
            features={}, multivariate={}, outliers={}, data_quality=DataQuality([], [], {}, {}, {}, {}),
            config=config.to_dict(),
            skipped=[SkippedTest(test="window", reason="refused", n=summary.n, detail=str(exc))],
        )


def _floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.utc)
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment.astimezone(timezone.utc) else floor + BASE_WINDOW


__all__: Sequence[str] = ("monitor_summaries",)
