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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.application.configs import load_monitoring_config
from loopwatch.drift.compare import DriftConfig, compare, data_quality
from loopwatch.drift.profile import MIN_REFERENCE_ROWS, ReferenceProfile, build_profile
from loopwatch.drift.report import DataQuality, DriftReport, SkippedTest
from loopwatch.errors import InvalidInput, LoopwatchError, echo
from loopwatch.features.frames import model_frame
from loopwatch.features.schema import FeatureSchema
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.application.monitoring.security_evidence import window_evasion
from loopwatch.application.monitoring.windows import Window, WindowSpec, events_frame, split
from loopwatch.records import PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.registry.registry import is_monitor_only
from loopwatch.stats.practical import practical, rate_band
from loopwatch.stores.base import EventQuery, Store

#: Per-window false-alarm rate of the monitor's drift decision. A monitor looks
#: at many windows, so it is stricter than a one-off comparison of two tables.
MONITOR_ALPHA = 0.002
#: The monitor's defaults: lighter permutation and classifier settings than a
#: one-off comparison, because it runs once per window.
MONITOR_CONFIG = DriftConfig(
    alpha=MONITOR_ALPHA, mmd_permutations=199, domain_max_samples=1000, domain_iterations=40
)
#: Least share of a window's rows with a category or value never seen in training
#: for a data-quality alarm (a single odd row is not an incident).
QUALITY_SHARE = 0.02
#: The evasion threshold's false-positive rate for a model with no monitoring configuration.
DEFAULT_ADVERSARIAL_FPR = MonitoringConfig().adversarial_fpr

logger = logging.getLogger("loopwatch.application.monitoring")


@dataclass(frozen=True)
class WindowReport:
    start: datetime
    end: datetime
    n_events: int
    model_version: int
    segment: str | None
    report: DriftReport
    previous: DriftReport | None
    rejections: int
    alarms: list[str]
    #: The share of the window's predictions the evasion score flagged against the calibration
    #: rows' share (None for a segment, or a version without an adversarial detector; for a
    #: monitor-only version, ``{"not_applicable": reason}``).
    evasion: dict[str, Any] | None = None
    #: Tests the window was too small or too odd for, the comparison with the window before
    #: included: each with its reason, the window's size and the size the test needs.
    skipped: list[SkippedTest] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return bool(self.alarms)

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "n_events": self.n_events,
            "model_version": self.model_version,
            "segment": self.segment,
            "alarm": self.alarm,
            "alarms": self.alarms,
            "drifted_features": self.report.drifted_features,
            "rejections": self.rejections,
            "evasion": self.evasion,
            "skipped": [t.to_dict() for t in self.skipped],
        }
        if full:
            out["report"] = self.report.to_dict()
            out["previous"] = None if self.previous is None else self.previous.to_dict()
        return out


@dataclass(frozen=True)
class MonitorReport:
    model: str
    window: str
    since: datetime | None
    until: datetime | None
    windows: list[WindowReport] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return any(w.alarm for w in self.windows)

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        return {
            "model": self.model,
            "window": self.window,
            "since": None if self.since is None else utc_iso(self.since),
            "until": None if self.until is None else utc_iso(self.until),
            "alarm": self.alarm,
            "windows": [w.to_dict(full=full) for w in self.windows],
        }


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
) -> MonitorReport:
    """Compare every window of ``name``'s logged events with its version's reference.

    ``events`` are the already-loaded events of the range (the loop engine loads them
    once for everything it checks); shadow scoring is never part of what is monitored.
    Each window's share of predictions flagged by the evasion score is tested against
    the calibration rows' share at ``adversarial_fpr`` (the model's monitoring
    configuration's when None), an ``evasion`` alarm when it is higher.
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
    if events is None:
        query = EventQuery(model_name=name, model_version=version, since=since, until=until, limit=10_000)
        events = list(store.iter_events(query))
    events = [e for e in events if e.request_type != "shadow"]
    report = MonitorReport(model=name, window=window, since=since, until=until)
    if not events:
        return report
    rejections = _rejection_times(store, name, since)
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
                drift = _compare_window(reference, current, outputs=outputs, config=config, where=(name, part.start))
                if segment_value is not None and not _refused(drift):
                    # data quality is judged against the training data, as for the whole
                    # window: a segment's own sample has a narrower range and fewer categories
                    drift = replace(drift, data_quality=data_quality(profile, current, outputs=outputs))
                drift = with_unexpected_missing(drift, current, meta.schema, declared)
                before, skipped = None, list(drift.skipped)
                if compare_previous and previous is not None and segment_value is None:
                    before, not_before = _against_previous(profile, previous, current, config)
                    skipped += not_before
                n_rejected = _count_between(rejections, part.start, part.end) if segment_value is None else 0
                evasion: dict[str, Any] | None = None if segment_value is not None else window_evasion(
                    registry, name, number, rows, fpr=adversarial_fpr)
                if segment_value is None and is_monitor_only(meta):  # said plainly, never an alarm
                    evasion = {"not_applicable": "monitor-only model: loopwatch does not score its predictions"}
                alarms = alarms_of(drift, n_rejected)
                if evasion is not None and "not_applicable" not in evasion:
                    evasion = evasion | evasion_threshold(evasion, config)
                    if evasion["p_value"] < config.alpha and evasion["effect"] >= evasion["practical_threshold"]:
                        alarms.append("evasion:rate")
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


def _compare_window(
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


def _against_previous(
    profile: ReferenceProfile, previous: pd.DataFrame, current: pd.DataFrame, config: DriftConfig
) -> tuple[DriftReport | None, list[SkippedTest]]:
    """The window against the window before it (univariate only), or why it could not be.

    The window before is a reference built on the spot, so it needs as many rows as any
    reference and at least one value in each column it compares.
    """
    if len(previous) < MIN_REFERENCE_ROWS:
        return None, [SkippedTest(test="previous", reason="too_few_rows", n=len(previous), minimum=MIN_REFERENCE_ROWS)]
    names = [f for f in profile.features if f in previous.columns and f in current.columns]
    empty = [f for f in names if previous[f].isna().all()]
    skipped = [SkippedTest(test=f"previous:feature:{f}", reason="no_values", n=0, minimum=1) for f in empty]
    names = [f for f in names if f not in empty]
    if not names:
        return None, skipped + [SkippedTest(test="previous", reason="no_values", n=len(previous), minimum=1)]
    try:
        before = compare(
            previous[names], current[names],
            categorical=[c for c in profile.univariate.categorical if c in names],
            config=DriftConfig(
                alpha=config.alpha, multivariate=False, outliers=False, seed=config.seed,
                practical_thresholds=config.practical_thresholds, practical_band_rows=config.practical_band_rows,
            ),
        )
    except (LoopwatchError, ValueError, ArithmeticError) as exc:
        return None, skipped + [SkippedTest(test="previous", reason="refused", n=len(previous), detail=str(exc))]
    return before, skipped + [replace(t, test=f"previous:{t.test}") for t in before.skipped]


def alarms_of(report: DriftReport, rejections: int = 0) -> list[str]:
    """The alarm names of one window: what a person would be paged for."""
    alarms = [f"feature:{name}" for name in report.drifted_features]
    alarms += [f"multivariate:{n}" for n, m in report.multivariate.items() if m.drift]
    alarms += [f"outliers:{n}" for n, o in report.outliers.items() if o.drift]
    alarms += [f"prediction:{n}" for n, p in report.predictions.items() if p.drift]
    quality = report.data_quality
    n = max(1, report.n_current)
    for feature, counts in quality.unseen_categories.items():
        if sum(counts.values()) / n >= QUALITY_SHARE:
            alarms.append(f"quality:unseen_categories:{feature}")
    for feature, share in quality.out_of_range_rate.items():
        if share >= QUALITY_SHARE:
            alarms.append(f"quality:out_of_range:{feature}")
    for feature, count in quality.unexpected_missing.items():
        if count / n >= QUALITY_SHARE:
            alarms.append(f"quality:unexpected_missing:{feature}")
    if quality.missing_columns:
        alarms.append("quality:missing_columns")
    if rejections and rejections / (n + rejections) >= QUALITY_SHARE:
        alarms.append("quality:rejections")
    return alarms


def evasion_threshold(evasion: dict[str, Any], config: DriftConfig) -> dict[str, Any]:
    """The flagged share's excess over the calibrated share, and the practical threshold it must
    reach (max(floor, band at min(n, N0) rows), or the configured ``evasion_rate``)."""
    rows = config.practical_band_rows
    threshold = practical(
        "evasion_rate", evasion["rate"] - evasion["calibrated_rate"],
        band=rate_band(evasion["calibrated_rate"], int(evasion["n_scored"]), int(evasion["n_calibration"]),
                       band_rows=rows),
        band_rows=rows, overrides=config.practical_thresholds,
    )
    return {"effect": threshold.effect, "practical_threshold": threshold.threshold, "practical": threshold.to_dict()}


def with_unexpected_missing(
    drift: DriftReport, current: pd.DataFrame, schema: FeatureSchema, declared: set[str]
) -> DriftReport:
    """``drift`` with the window's nulls in features neither the schema nor the settings
    declare nullable: the model filled them in, so they were served, but training never saw
    them, and a person should hear of it (a stage upstream may have broken)."""
    counts = {}
    for feature in schema.features:
        if feature.nullable or feature.name in declared or feature.name not in current.columns:
            continue
        n_null = int(current[feature.name].isna().sum())
        if n_null:
            counts[feature.name] = n_null
    if not counts:
        return drift
    return replace(drift, data_quality=replace(drift.data_quality, unexpected_missing=counts))


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


def _rejection_times(store: Store, name: str, since: datetime | None) -> np.ndarray:
    found = store.query_rejections(name, since, limit=1_000_000)
    return np.array(sorted(r.timestamp.timestamp() for r in found), dtype=np.float64)


def _count_between(times: np.ndarray, start: datetime, end: datetime) -> int:
    if times.size == 0:
        return 0
    lo, hi = np.searchsorted(times, [start.timestamp(), end.timestamp()])
    return int(hi - lo)


__all__: Sequence[str] = ("MonitorReport", "WindowReport", "alarms_of", "monitor")
