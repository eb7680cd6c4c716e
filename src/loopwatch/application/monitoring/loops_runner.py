"""Evaluate a model's feedback loops: gather the evidence from the store, diagnose, recommend.

For each window of logged predictions it gathers what the inputs show (drift
against the version's reference, the segment mix, software first seen in the
window, the runtime percentile, the label-free performance estimate); from the
labels, in the order they arrived, whether realized performance departs from
that estimate; then the pure diagnosis names each finding and the loop engine
turns findings into incidents and recommendations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.application.configs import load_monitoring_config
from loopwatch.features.frames import model_frame
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.diagnosis import diagnose_window
from loopwatch.loops.engine import merge_findings, recommendations
from loopwatch.loops.evidence import SoftwareChange, WindowEvidence
from loopwatch.loops.importance import prediction_sensitivity
from loopwatch.loops.policies import (
    evasion_explained_by_software,
    mapping_clients,
    not_software_suspects,
    one_latency_finding_per_window,
    probing_clients,
)
from loopwatch.loops.report import Finding, LoopReport
from loopwatch.application.monitoring.window_checks import PerformanceContext, new_segments_of, software_changes_of
from loopwatch.application.monitoring.window_facts import WindowFacts, facts_of_rows
from loopwatch.application.monitoring.label_evidence import label_findings, signals_of
from loopwatch.application.monitoring.security_evidence import (
    EvasionCounts,
    evasion_counts_of,
    evasion_findings,
    findings_of_alerts,
    poisoning_findings,
    probing_findings,
)
from loopwatch.application.monitoring.runner import MONITOR_CONFIG, monitor
from loopwatch.application.monitoring.windows import WindowSpec, events_frame
from loopwatch.records import ModelVersion, PredictionEvent
from loopwatch.registry import Registry
from loopwatch.registry.registry import is_monitor_only
from loopwatch.stores.base import EventQuery, Store, to_micros

if TYPE_CHECKING:
    from loopwatch.application.monitoring.summary_labels import LabelledWindow
    from loopwatch.application.summaries import Summariser

#: Incident kinds concluded from labels: they end when windows whose labels are in no longer show them.
LABEL_KINDS = frozenset({"concept_drift"})


def evaluate_loops(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    config: MonitoringConfig | None = None,
    config_version: int | None = None,
    summariser: Summariser | None = None,
) -> LoopReport:
    """Everything loopwatch finds about ``name`` in ``[since, until)``, as of ``until``: the
    evidence gathered from the store, each window diagnosed, and the findings merged into
    incidents and recommendations.

    With a ``summariser``, the evidence is read from window summaries (:mod:`.summary_loops`:
    the cost follows the windows, not the events) when they can answer: time windows, and no
    label known only after ``until`` (a summary's label join holds every label there is, so an
    evaluation as of a moment before some labels were known reads the log)."""
    registry.resolve(name)  # a clear 404 for an unknown model
    if config is None:
        config, config_version = load_monitoring_config(store, name)
    now = until or datetime.now(timezone.utc)
    if summariser is not None and summaries_answer(store, name, config, until=until):
        gathered = _gather_summaries(store, registry, summariser, name, since=since, until=until, config=config)
    else:
        gathered = _gather(store, registry, name, since=since, until=until, config=config)
    if gathered is None:
        return LoopReport(model=name, evaluated_at=now, config_version=config_version, window=config.window,
                          incidents=[], recommendations=[])
    evidences, findings = _diagnose(gathered, config)
    drifted_windows = {e.start for e in evidences if e.input_drift}
    evasions, probes = evasion_findings(store, registry, name, gathered.evasion_counts,
                                        length=gathered.spec.length, drifted_windows=drifted_windows,
                                        fpr=config.adversarial_fpr, alpha=config.evasion_alpha, probes=gathered.probes)
    findings, evasions = evasion_explained_by_software(findings, evasions)
    if gathered.frame is not None:
        label_part = label_findings(store, name, gathered.frame, gathered.contexts, config, spec=gathered.spec,
                                    until=now, drifted_windows=drifted_windows)
    else:
        from loopwatch.application.monitoring.summary_labels import label_findings_from_summaries

        label_part = label_findings_from_summaries(gathered.labelled, gathered.contexts, config, spec=gathered.spec,
                                                   drifted_windows=drifted_windows)
    findings = [*findings, *probes, *evasions, *label_part.findings,
                *poisoning_findings(store, registry, name, since=since, until=now, window=config.window)]
    incidents = merge_findings(name, findings, gap=gathered.spec.length or (now - now))
    signals = signals_of(store, name, config, label_part, incidents, until=now)
    return LoopReport(
        model=name,
        evaluated_at=now,
        config_version=config_version,
        window=config.window,
        incidents=incidents,
        recommendations=recommendations(incidents, signals),
        windows=evidences,
        performance=label_part.performance,
        labels=label_part.labels,
        business=label_part.business,
    )


@dataclass(frozen=True)
class _Gathered:
    """What the store holds about a model's period, read once: from the log (``frame``) or
    from window summaries (``labelled``)."""

    spec: WindowSpec
    versions: dict[int, ModelVersion]
    facts: list[WindowFacts]
    drift: Any  # the drift monitor's report (MonitorReport)
    probes: list[Finding]
    contexts: dict[int, PerformanceContext]
    importance: dict[int, dict[str, float]]
    evasion_counts: EvasionCounts
    frame: pd.DataFrame | None = None
    labelled: list[LabelledWindow] = field(default_factory=list)


def summaries_answer(store: Store, name: str, config: MonitoringConfig, *, until: datetime | None) -> bool:
    """Whether window summaries can answer an evaluation as of ``until``: time windows, and
    no label whose outcome became known at or after ``until`` (a summary's label join holds
    every label there is; the log path joins those known before ``until``)."""
    if WindowSpec.parse(config.window).length is None:
        return False
    if until is None:
        return True
    latest = store.latest_label_time(name)
    return latest is None or latest < to_micros(until)


def _gather(store: Store, registry: Registry, name: str, *, since: datetime | None, until: datetime | None,
            config: MonitoringConfig) -> _Gathered | None:
    """The period's events, the probing clients, the drift of the population's inputs per
    window, and each version's performance context; ``None`` without traffic."""
    spec = WindowSpec.parse(config.window)
    query = EventQuery(model_name=name, since=since, until=until, limit=10_000)
    events = [e for e in store.iter_events(query) if e.request_type != "shadow"]
    if not events:
        return None
    probes = probing_findings(store, registry, name, since=since, until=until, window=config.window,
                              events=events)
    mapping = mapping_clients(probes)
    drift = monitor(
        store, registry, name, window=config.window, since=since, until=until,
        events=_without(events, mapping, spec) if mapping else events,
        compare_previous=False, config=replace(
            MONITOR_CONFIG, alpha=config.drift_alpha, practical_thresholds=config.practical_thresholds,
            practical_band_rows=config.practical_band_rows,
        ),
        adversarial_fpr=config.adversarial_fpr,
    )
    versions = {v.version: v for v in store.list_versions(name)}
    frame = _frame(store, events, versions)
    contexts = {number: PerformanceContext.build(registry, name, versions[number], config)
                for number in sorted(int(v) for v in frame["__version"].unique())}
    time_windows = _time_windows(frame, spec)
    facts = [facts_of_rows(start, start + spec.length if spec.length is not None else rows["__timestamp"].max(),
                           rows, contexts, latency_percentile=config.latency_percentile)
             for start, rows in time_windows]
    return _Gathered(spec=spec, versions=versions, facts=facts, drift=drift, probes=probes, contexts=contexts,
                     importance={number: _importance(registry, name, number) for number in contexts},
                     evasion_counts=evasion_counts_of(time_windows) if spec.length is not None else [],
                     frame=frame)


def _gather_summaries(store: Store, registry: Registry, summariser: Summariser, name: str, *,
                      since: datetime | None, until: datetime | None, config: MonitoringConfig) -> _Gathered | None:
    """:func:`_gather` from window summaries (:mod:`.summary_loops`)."""
    from loopwatch.application.monitoring.summary_loops import gather_summaries

    versions = {v.version: v for v in store.list_versions(name)}
    found = gather_summaries(store, registry, summariser, name, since=since, until=until, config=config,
                             versions=versions)
    if found is None:
        return None
    return _Gathered(spec=found.spec, versions=versions, facts=found.facts, drift=found.drift,
                     probes=findings_of_alerts(store, found.alerts), contexts=found.contexts,
                     importance={number: _importance(registry, name, number) for number in found.contexts},
                     evasion_counts=found.evasion_counts, labelled=found.labelled)


def _diagnose(gathered: _Gathered, config: MonitoringConfig) -> tuple[list[WindowEvidence], list[Finding]]:
    """Each window's evidence (per model version serving in it) and what the diagnosis finds in it."""
    probing = probing_clients(gathered.probes)
    findings: list[Finding] = []
    evidences: list[WindowEvidence] = []
    seen_software: dict[str, dict[str, int]] | None = None
    previous_rows: pd.DataFrame | None = None
    latencies = [facts.latency_ms for facts in gathered.facts]
    budget = latency_budget(config, latencies)
    for index, facts in enumerate(gathered.facts):
        start = facts.start
        software_rows = not_software_suspects(facts.software_rows, start, probing)
        changes, seen_software = software_changes_of(software_rows, previous_rows, seen_software, index=index)
        changes = [_labelled(c, gathered.versions) for c in changes]
        for window in (w for w in gathered.drift.windows if w.start == start and w.segment is None):
            number = window.model_version
            if number not in facts.versions:
                continue
            served = facts.versions[number]
            context = gathered.contexts[number]
            drifted = {n: f.effect for n, f in window.report.features.items() if f.drift}
            segment = config.segment_feature or context.default_segment
            evidence = WindowEvidence(
                start=start,
                end=facts.end,
                n_events=served.n,
                model_versions=sorted(facts.versions),
                drifted_features=drifted,
                importance=gathered.importance[number],
                multivariate_drift=any(m.drift for m in window.report.multivariate.values()),
                prediction_drift=any(p.drift for p in window.report.predictions.values()),
                quality_alarms=[a for a in window.alarms if a.startswith("quality:")],
                segment_feature=segment,
                segment_drift=bool(segment and segment in drifted),
                new_segments=new_segments_of(window.report, segment, served.n),
                software_changes=[
                    replace(c, features=[f for f in c.features if f in drifted or not drifted])
                    for c in changes
                ],
                latency_ms=latencies[index],
                latency_budget_ms=budget if index >= config.latency_baseline_windows or
                config.latency_budget_ms is not None else None,
                latency_percentile=config.latency_percentile,
                latency_over_budget_before=_over(latencies, index - 1, budget),
                metric=context.metric,
                estimated=served.estimated,
                estimated_missing=served.estimated_missing,
                holdout=context.holdout,
                higher_is_better=context.higher_is_better,
                evasion=window.evasion,
                skipped=list(window.skipped),
            )
            evidences.append(evidence)
            findings.extend(diagnose_window(evidence, tolerance=config.performance_tolerance))
        previous_rows = software_rows
    return evidences, one_latency_finding_per_window(findings)


def record_incidents(store: Store, report: LoopReport, *, now: datetime) -> list[Any]:
    """Keep the report's incidents in the store; returns the ones it did not hold before."""
    from loopwatch.records.incidents import IncidentRecord

    known = {i.incident_id for i in store.list_incidents(report.model)}
    length = WindowSpec.parse(report.window).length
    # an incident that two later windows no longer show has ended: it is resolved and no longer
    # alerted (acknowledged ones move on to resolved too); a quiet period without traffic ends
    # nothing. What labels show is judged on the windows whose labels are in: a window whose
    # labels have not arrived cannot say that a concept drift is over.
    traffic = [w.end for w in report.windows]
    labelled = [] if length is None else report.performance.realized_ends(length)
    new = []
    for incident in report.incidents:
        ends = labelled if incident.kind in LABEL_KINDS else traffic
        ended = length is not None and bool(ends) and incident.last_seen <= max(ends) - 2 * length
        stored = store.upsert_incident(
            IncidentRecord(
                incident_id=incident.incident_id,
                model_name=incident.model,
                kind=incident.kind,
                loop=incident.loop,
                status="resolved" if ended else "open",
                first_seen=incident.first_seen,
                last_seen=incident.last_seen,
                detected_at=now,
                summary=incident.summary,
                evidence={**incident.evidence, "severity": incident.severity,
                          "evidence_available_at": incident.detected_at.isoformat()},
                action=incident.action,
            )
        )
        if incident.incident_id not in known:
            new.append(stored)
    return new


def _over(latencies: Sequence[float | None], index: int, budget: float | None) -> bool:
    value = latencies[index] if 0 <= index < len(latencies) else None
    return budget is not None and value is not None and value > budget


def latency_budget(config: MonitoringConfig, latencies: Sequence[float | None]) -> float | None:
    """The budget in milliseconds: the configured one, or a multiple of the baseline (the median
    runtime percentile of the first windows)."""
    if config.latency_budget_ms is not None:
        return config.latency_budget_ms
    if config.latency_budget_ratio is None:
        return None
    baseline = [v for v in latencies[: config.latency_baseline_windows] if v is not None]
    if len(baseline) < config.latency_baseline_windows:
        return None
    return float(np.median(baseline)) * config.latency_budget_ratio


def _frame(store: Store, events: Sequence[PredictionEvent], versions: dict[int, Any]) -> pd.DataFrame:
    client_versions: dict[str, str | None] = {}
    for fingerprint_id in {e.fingerprint_id for e in events}:
        found = store.get_fingerprint(fingerprint_id)
        client_versions[fingerprint_id] = None if found is None else found.client_version
    parts = []
    for number in sorted({e.model_version for e in events}):
        mine = [e for e in events if e.model_version == number]
        part = events_frame(mine, versions[number].schema.classes, schema=versions[number].schema)
        part["__entity_id"] = [getattr(e, "entity_id", None) for e in mine]
        part["__client_version"] = [client_versions[e.fingerprint_id] for e in mine]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame.sort_values("__timestamp", kind="stable").reset_index(drop=True)


def _without(events: list[PredictionEvent], probing: set[tuple[datetime, Any]],
             spec: WindowSpec) -> list[PredictionEvent]:
    """``events`` less those of a client in a window it was named for probing in."""
    if spec.length is None:  # count windows have no fixed starts to name a client's window by
        return events
    starts = spec.starts_of(pd.Series([e.timestamp for e in events]))
    return [e for e, start in zip(events, starts) if (start.to_pydatetime(), e.client_id) not in probing]


def _time_windows(frame: pd.DataFrame, spec: WindowSpec) -> list[tuple[datetime, pd.DataFrame]]:
    if spec.length is None:  # count windows: the monitor's own split decides
        return [(frame["__timestamp"].iloc[0], frame)]
    starts = [t.to_pydatetime() for t in spec.starts_of(frame["__timestamp"])]
    out: list[tuple[datetime, pd.DataFrame]] = []
    lo = 0
    for i in range(1, len(starts) + 1):
        if i == len(starts) or starts[i] != starts[lo]:
            out.append((starts[lo], frame.iloc[lo:i]))
            lo = i
    return out


def _labelled(change: SoftwareChange, versions: dict[int, ModelVersion]) -> SoftwareChange:
    """A new model version with the label its events were sent with, when it came from one
    (an external version: every monitor-only version has the same empty artifact, so the
    label is what a person knows the deploy by)."""
    if change.what != "model_version" or not change.value.isdigit():
        return change
    meta = versions.get(int(change.value))
    label = None if meta is None else meta.params.get("external_version")
    return replace(change, label=str(label)) if label else change


def _importance(registry: Registry, name: str, version: int) -> dict[str, float]:
    meta = registry.resolve(name, version)
    if is_monitor_only(meta):
        return {}  # no model to ask: drifted features are ranked by their effect alone
    key = ("importance", meta.artifact_sha256, meta.reference_sha256, name, version)

    def build() -> dict[str, float]:
        model = registry.load(name, version)
        # the reference sample keeps the training table's types; the pipeline takes labels
        sample = model_frame(registry.reference_sample(name, version), meta.schema)
        features = list(meta.schema.names)
        pipeline = model.pipeline

        def output(rows: pd.DataFrame) -> np.ndarray:
            if hasattr(pipeline, "predict_proba"):
                proba = pipeline.predict_proba(rows[features])
                return proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)
            return np.asarray(pipeline.predict(rows[features]), dtype=np.float64)

        return prediction_sensitivity(output, sample[features], features, seed=0)

    found: dict[str, float] = registry.derived(key, build)
    return found
