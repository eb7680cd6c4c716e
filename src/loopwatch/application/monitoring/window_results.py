"""What the monitor reports per window, and the rules it applies whichever way it reads a window.

The drift monitor reads a window either from the log (:mod:`.runner`) or from its summary
(:mod:`.summary_monitor`); both report :class:`WindowReport` values and decide alarms here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.drift.config import DriftConfig
from loopwatch.drift.compare import compare
from loopwatch.drift.profile import MIN_REFERENCE_ROWS, ReferenceProfile
from loopwatch.drift.report import DriftReport, SkippedTest
from loopwatch.errors import LoopwatchError
from loopwatch.features.schema import FeatureSchema
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.records.jsonutil import utc_iso
from loopwatch.stats.practical import practical, rate_band
from loopwatch.stores.base import Store

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


def against_previous(
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


#: What a monitor-only version's windows say of the evasion score: plainly, never an alarm.
NOT_SCORED = {"not_applicable": "monitor-only model: loopwatch does not score its predictions"}


def alarms_with_evasion(
    drift: DriftReport, rejections: int, evasion: dict[str, Any] | None, config: DriftConfig
) -> tuple[list[str], dict[str, Any] | None]:
    """The window's alarms (:func:`alarms_of`), ``evasion:rate`` among them when the flagged
    share is significantly and practically above the calibrated one, and the evasion evidence
    with the threshold it was held to."""
    alarms = alarms_of(drift, rejections)
    if evasion is not None and "not_applicable" not in evasion:
        evasion = evasion | evasion_threshold(evasion, config)
        if evasion["p_value"] < config.alpha and evasion["effect"] >= evasion["practical_threshold"]:
            alarms.append("evasion:rate")
    return alarms, evasion


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
    nulls = {name: int(current[name].isna().sum()) for name in schema.names if name in current.columns}
    return with_unexpected_nulls(drift, nulls, schema, declared)


def with_unexpected_nulls(
    drift: DriftReport, nulls: Mapping[str, int], schema: FeatureSchema, declared: set[str]
) -> DriftReport:
    """:func:`with_unexpected_missing` from each feature's count of nulls in the window."""
    counts = {f.name: int(nulls[f.name]) for f in schema.features
              if not f.nullable and f.name not in declared and nulls.get(f.name)}
    if not counts:
        return drift
    return replace(drift, data_quality=replace(drift.data_quality, unexpected_missing=counts))


def rejection_times(store: Store, name: str, since: datetime | None) -> np.ndarray:
    found = store.query_rejections(name, since, limit=1_000_000)
    return np.array(sorted(r.timestamp.timestamp() for r in found), dtype=np.float64)


def count_between(times: np.ndarray, start: datetime, end: datetime) -> int:
    if times.size == 0:
        return 0
    lo, hi = np.searchsorted(times, [start.timestamp(), end.timestamp()])
    return int(hi - lo)


__all__: Sequence[str] = (
    "DEFAULT_ADVERSARIAL_FPR", "MONITOR_ALPHA", "MONITOR_CONFIG", "NOT_SCORED", "QUALITY_SHARE", "MonitorReport",
    "WindowReport", "against_previous", "alarms_of", "alarms_with_evasion", "count_between", "evasion_threshold", "rejection_times",
    "with_unexpected_missing", "with_unexpected_nulls",
)
