"""The loop engine's evidence from window summaries: its cost follows the windows, not the log.

One pass of the drift monitor over the period's summaries (:mod:`.summary_monitor`) also hands
each merged window, per version, to :class:`_Collector`, which keeps only what the diagnosis
needs of it:

* the label-free estimate, from the window's CBPE or DLE sums (:func:`estimate_of_sums`);
* the runtime percentile, from the latency histograms of every version serving in the window;
* the rows the software checks read: the versions' uniform row samples, combined in
  proportion to each version's events so that the union is a uniform sample of the window;
* each client's queries for the extraction watch, measured on the client's sample with its
  exact count, times and boundary share, and each client's exact evasion counts;
* the label join's counts and sums for the label evidence.

What the row path does that sums cannot: a probing client's queries stay in the drift
windows (the log path takes them out before comparing), the software checks read a sample
(new software must hold 2% of a window's events, so a daily sample of 2,000 rows holds 40 or
more of them), and the label evidence is computed from counts (see :mod:`.summary_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopwatch.application.monitoring.extraction_watch import ClientQueries, ClientWatch
from loopwatch.application.monitoring.runner import MONITOR_CONFIG, compare_window, monitor
from loopwatch.application.monitoring.window_results import alarms_with_evasion, with_unexpected_missing
from loopwatch.application.monitoring.window_checks import MIN_ESTIMATE_ROWS, PerformanceContext
from loopwatch.application.monitoring.window_facts import VersionFacts, WindowFacts
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.drift.config import DriftConfig
from loopwatch.features.frames import with_canonical_features
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.performance_evidence import MetricInterval
from loopwatch.records import ModelVersion
from loopwatch.registry import Registry
from loopwatch.stores.base import Store
from loopwatch.summaries.label_intervals import delong_variance
from loopwatch.summaries.outcomes import ConfidenceSums, LossSums
from loopwatch.summaries.traffic import TrafficSums
from loopwatch.summaries.window import WindowSummary

if TYPE_CHECKING:
    from loopwatch.application.monitoring.extraction_watch import ClientAlert
    from loopwatch.application.monitoring.summary_labels import LabelledWindow
    from loopwatch.application.summaries import Summariser
    from loopwatch.performance.unmeasured import Unmeasured

#: Two-sided normal quantile of the estimate's 95% interval.
_Z95 = 1.959963984540054


@dataclass
class SummaryEvidence:
    """What the loop engine reads of a period's summaries (see the module)."""

    spec: WindowSpec
    drift: Any  # the drift monitor's report (MonitorReport)
    facts: list[WindowFacts]
    contexts: dict[int, PerformanceContext]
    alerts: list[ClientAlert]
    evasion_counts: list[tuple[datetime, dict[int, dict[str, tuple[int, int]]]]]
    labelled: list[LabelledWindow]


def gather_summaries(store: Store, registry: Registry, summariser: Summariser, name: str, *,
                     since: datetime | None, until: datetime | None, config: MonitoringConfig,
                     versions: dict[int, ModelVersion]) -> SummaryEvidence | None:
    """The period's evidence from its window summaries; ``None`` without traffic."""
    spec = WindowSpec.parse(config.window)
    collector = _Collector(registry, name, versions, config)
    drift_config = replace(MONITOR_CONFIG, alpha=config.drift_alpha, practical_thresholds=config.practical_thresholds,
                           practical_band_rows=config.practical_band_rows)
    drift = monitor(
        store, registry, name, window=config.window, since=since, until=until, compare_previous=False,
        config=drift_config, adversarial_fpr=config.adversarial_fpr, summariser=summariser, visit=collector.visit,
    )
    if not collector.windows:
        return None
    assert spec.length is not None
    alerts = collector.alerts(name, spec)
    mapping = {(a.window_start, a.client_id) for a in alerts if list(a.reasons) != ["boundary"]}
    if mapping:
        drift = collector.without_clients(drift, mapping, drift_config)
    return SummaryEvidence(spec=spec, drift=drift, facts=collector.facts(spec), contexts=collector.contexts,
                           alerts=alerts, evasion_counts=collector.evasion_counts(), labelled=collector.labelled)


@dataclass
class _Window:
    """One window's parts across the versions serving in it."""

    versions: dict[int, VersionFacts] = field(default_factory=dict)
    traffic: TrafficSums = field(default_factory=TrafficSums)
    samples: dict[int, pd.DataFrame] = field(default_factory=dict)
    queries: dict[int, dict[str | None, ClientQueries]] = field(default_factory=dict)
    evasion: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)


class _Collector:
    """Keeps what the diagnosis needs of each merged window the monitor reads, and no more."""

    def __init__(self, registry: Registry, name: str, versions: dict[int, ModelVersion],
                 config: MonitoringConfig) -> None:
        self.registry, self.name, self.versions, self.config = registry, name, versions, config
        self.contexts: dict[int, PerformanceContext] = {}
        #: per version, the half-width of its holdout metric's 95% interval (see estimate_of_sums)
        self.calibration: dict[int, float] = {}
        self.windows: dict[datetime, _Window] = {}
        self.labelled: list[LabelledWindow] = []
        self.watch = ClientWatch(registry, versions, fpr=0.01, seed=0)
        #: each software fingerprint's client version, read once
        self.client_versions: dict[str, str | None] = {}

    def visit(self, number: int, start: datetime, summary: WindowSummary) -> None:
        from loopwatch.application.monitoring.summary_labels import LabelledWindow

        if number not in self.contexts:
            self.contexts[number] = PerformanceContext.build(self.registry, self.name, self.versions[number],
                                                             self.config)
            holdout = self.contexts[number].holdout_interval()
            self.calibration[number] = 0.0 if holdout is None else (holdout.ci_high - holdout.ci_low) / 2
        window = self.windows.setdefault(start, _Window())
        estimated, missing = estimate_of_sums(self.contexts[number], summary.estimation, summary.n,
                                              calibration=self.calibration[number])
        window.versions[number] = VersionFacts(n=summary.n, estimated=estimated, estimated_missing=missing)
        window.traffic = window.traffic.merge(summary.traffic)
        sample = _sample_rows(summary)
        if sample is not None:
            window.samples[number] = sample
        window.queries[number] = self.watch.queries_of_summary(number, summary)
        window.evasion[number] = {client or "": (a.evasion_flagged, a.evasion_scored)
                                  for client, a in summary.clients.activity.items() if a.evasion_scored}
        self.labelled.append(LabelledWindow(start=start, end=summary.end, version=number, predictions=summary.n,
                                            labels=summary.labels, estimated=estimated,
                                            estimated_missing=missing))

    def facts(self, spec: WindowSpec) -> list[WindowFacts]:
        assert spec.length is not None
        out = []
        for start in sorted(self.windows):
            window = self.windows[start]
            latency = None
            if window.traffic.latency_us.n:
                latency = window.traffic.latency_ms(self.config.latency_percentile / 100).value
            out.append(WindowFacts(start=start, end=start + spec.length, versions=dict(sorted(window.versions.items())),
                                   latency_ms=latency, software_rows=self._software_rows(window)))
        return out

    def alerts(self, name: str, spec: WindowSpec) -> list[ClientAlert]:
        assert spec.length is not None
        found = []
        for start in sorted(self.windows):
            queries: dict[str | None, ClientQueries] = {}
            for per_version in self.windows[start].queries.values():
                for client, q in per_version.items():
                    # a client served by several versions is judged with the one that served most
                    if client not in queries or q.features.n_rows > queries[client].features.n_rows:
                        queries[client] = q
            found += [a for a in self.watch.window(name, start, start + spec.length, queries) if a.flagged]
        return found

    def without_clients(self, drift: Any, mapping: set[tuple[datetime, str | None]], config: DriftConfig) -> Any:
        """``drift`` with each window in which a client mapped the model judged without that
        client's queries, as the log path judges it (:func:`~loopwatch.loops.policies.mapping_clients`):
        compared on the window's row sample less the client's rows, which is every row of a
        window the sample holds whole and a uniform sample of the rest otherwise. Sums cannot
        take one client's queries out of exact counts or sketches."""
        declared = set(self.registry.settings(self.name, fresh=True).nullable)
        windows = []
        for window in drift.windows:
            clients = {client for start, client in mapping if start == window.start}
            sample = self.windows.get(window.start, _Window()).samples.get(window.model_version)
            if not clients or sample is None or window.segment is not None:
                windows.append(window)
                continue
            meta = self.versions[window.model_version]
            kept = sample[~sample["__client_id"].isin(clients)] if "__client_id" in sample else sample
            current = with_canonical_features(kept.drop(columns=[c for c in kept.columns if c.startswith("__")]),
                                              meta.schema)
            outputs = [c for c in current.columns if c == "prediction" or c.startswith("probability_")]
            report = compare_window(self.registry.profile(self.name, window.model_version), current, outputs=outputs,
                                    config=config, where=(self.name, window.start))
            report = with_unexpected_missing(report, current, meta.schema, declared)
            alarms, evasion = alarms_with_evasion(report, window.rejections, window.evasion, config)
            windows.append(replace(window, report=report, alarms=alarms, evasion=evasion))
        return replace(drift, windows=windows)

    def evasion_counts(self) -> list[tuple[datetime, dict[int, dict[str, tuple[int, int]]]]]:
        return [(start, {n: c for n, c in sorted(self.windows[start].evasion.items()) if c})
                for start in sorted(self.windows)]

    def _software_rows(self, window: _Window) -> pd.DataFrame:
        """The versions' samples combined in proportion to their events: each version's sample is
        uniform over its own events, so taking the same share of every version's events (its
        rows of smallest priority, which are a uniform subsample) gives a uniform sample of all."""
        parts = []
        if window.samples:
            share = min(len(rows) / window.versions[n].n for n, rows in window.samples.items())
            for number, rows in sorted(window.samples.items()):
                parts.append(rows.iloc[: max(1, round(share * window.versions[number].n))].assign(__version=number))
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["__version", "__client_id", "__fingerprint_id"])
        if "__fingerprint_id" not in frame:  # summaries stored before samples kept their source
            frame["__fingerprint_id"] = None
        if "__client_id" not in frame:
            frame["__client_id"] = None
        frame["__client_version"] = [self._client_version(f) for f in frame["__fingerprint_id"]]
        return frame

    def _client_version(self, fingerprint_id: Any) -> str | None:
        if not isinstance(fingerprint_id, str) or not fingerprint_id:
            return None
        if fingerprint_id not in self.client_versions:  # one read per fingerprint
            found = self.registry.store.get_fingerprint(fingerprint_id)
            self.client_versions[fingerprint_id] = None if found is None else found.client_version
        return self.client_versions[fingerprint_id]


def _sample_rows(summary: WindowSummary) -> pd.DataFrame | None:
    """The window's sampled rows in priority order (smallest first: any head of them is a
    uniform subsample), or ``None`` when the version logs no data."""
    rows = sorted(summary.sample.rows, key=lambda r: r.order())
    if not rows:
        return None
    return pd.DataFrame([dict(r.values) for r in rows])


def estimate_of_sums(context: PerformanceContext, sums: ConfidenceSums | LossSums | None, n: int, *,
                     calibration: float = 0.0) -> tuple[MetricInterval | None, Unmeasured | None]:
    """The label-free estimate of ``context.metric`` from a window's CBPE or DLE sums, with a
    95% interval, or why there is none (as :meth:`PerformanceContext.estimate_or_why`).

    CBPE: accuracy's interval is the realized accuracy's spread if the model is as calibrated
    as on its holdout (``accuracy_sd``); ROC AUC's is DeLong's standard error on the calibration
    bins at their expected class counts, widened by the binned AUC's stated bound. DLE: the interval the sums
    give (:meth:`LossSums.estimate`). ``calibration``: the half-width of the holdout metric's
    interval, added in quadrature to a CBPE interval: the calibration was fitted on the holdout,
    so the estimate knows the model no better than the holdout does (the row path's bootstrap
    over the window's inputs carries that uncertainty too)."""
    from loopwatch.performance.unmeasured import Unmeasured

    def none(reason: str, minimum: int | None = None) -> tuple[None, Unmeasured]:
        return None, Unmeasured(metric=context.metric, reason=reason, counted="rows", n=n, minimum=minimum)

    if context.estimator is None:
        return none("no_estimator")
    if n < MIN_ESTIMATE_ROWS:
        return none("too_few_rows", MIN_ESTIMATE_ROWS)
    if sums is None:
        return none("no_probabilities" if context.version.task == "classification" else "undefined")
    if isinstance(sums, LossSums):
        found = sums.estimate(context.estimator).get(context.metric)
        if found is None or not np.isfinite(found.value):
            return none("undefined")
        return MetricInterval(value=float(found.value), ci_low=float(found.ci_low), ci_high=float(found.ci_high)), None
    estimate = sums.estimate()
    value = getattr(estimate, context.metric, None)
    if value is None or not np.isfinite(value):
        return none("undefined")
    if context.metric == "roc_auc":
        sampling = _Z95 * _auc_standard_error(sums)
    elif context.metric == "accuracy":
        sampling = _Z95 * estimate.accuracy_sd
    else:
        sampling = _Z95 * float(np.sqrt(max(value * (1 - value), 0.0) / sums.n))
    spread = float(np.hypot(sampling, calibration))
    if context.metric == "roc_auc":
        spread += estimate.roc_auc_bound
    return MetricInterval(value=float(value), ci_low=float(value - spread), ci_high=float(value + spread)), None


def _auc_standard_error(sums: ConfidenceSums) -> float:
    """The spread of the realized AUC around CBPE's: DeLong's standard error on the calibration
    bins, at each bin's expected positives and negatives (the calibrated probabilities' sums),
    averaged over the ranked classes as the macro AUC is."""
    errors = []
    for c in sums.ranked():
        bins = sorted(sums.bin_counts.get(c, {}))
        counts = np.array([sums.bin_counts[c][b] for b in bins], dtype=np.float64)
        mass = np.array([sums.bin_mass[c][b].value for b in bins], dtype=np.float64)
        errors.append(float(np.sqrt(delong_variance(mass, counts - mass))))
    return float(np.mean(errors)) if errors else 0.5
