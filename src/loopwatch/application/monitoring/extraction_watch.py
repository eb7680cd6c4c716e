"""Watch each client's queries for model extraction, window by window.

Reads a model's logged events (each carries its ``client_id``: the ``X-Client-ID``
header, or the API key's id when keys are on), groups them by window and client,
and scores every client's queries with an
:class:`~loopwatch.detectors.extraction.ExtractionDetector` fitted on the
reference sample of the version that served most of them. Each client is decided
against the reference, the other clients of its window served by the same version
(the population), and its own earlier windows in the range in which it was not
flagged (its history), whether or not the window drifted. An alert names the
client; the loop engine turns alerts into ``adversarial_probing`` incidents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.detectors.extraction import ExtractionDetector
from loopwatch.detectors.extraction_scores import QueryFeatures
from loopwatch.errors import IntegrityError, InvalidInput
from loopwatch.features.frames import model_frame
from loopwatch.application.monitoring.windows import WindowSpec
from loopwatch.records import ModelVersion, PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.stores.base import EventQuery, Store
from loopwatch.summaries.window import WindowSummary


@dataclass(frozen=True, kw_only=True)
class ClientAlert:
    """One client's queries in one window, scored for extraction; ``flagged`` raises the alert."""

    model: str
    client_id: str | None
    model_version: int
    window_start: datetime
    window_end: datetime
    #: Event times of the client's first and last query in the window.
    first_seen: datetime
    last_seen: datetime
    n_rows: int
    score: float
    threshold: float
    flagged: bool
    reasons: tuple[str, ...]
    signals: dict[str, float]
    features: dict[str, Any]
    #: Each signal's threshold, and each signal against each baseline it had (``reference``,
    #: ``others``: the window's other clients, ``history``: the client's earlier unflagged windows).
    thresholds: dict[str, float] = field(default_factory=dict)
    against: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "client_id": self.client_id,
            "model_version": self.model_version,
            "window_start": utc_iso(self.window_start),
            "window_end": utc_iso(self.window_end),
            "first_seen": utc_iso(self.first_seen),
            "last_seen": utc_iso(self.last_seen),
            "n_rows": self.n_rows,
            "score": self.score,
            "threshold": self.threshold,
            "flagged": self.flagged,
            "reasons": list(self.reasons),
            "signals": dict(self.signals),
            "thresholds": dict(self.thresholds),
            "against": {k: dict(v) for k, v in self.against.items()},
            "features": dict(self.features),
        }


def watch_clients(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    window: str = "1d",
    events: Sequence[PredictionEvent] | None = None,
    all_clients: bool = False,
    fpr: float = 0.01,
    seed: int = 0,
) -> list[ClientAlert]:
    """The clients of ``name`` whose queries in a window of ``[since, until)`` look like extraction.

    ``events`` are the already-loaded events of the range (the loop engine loads them
    once); shadow scoring is never a client's query. With ``all_clients`` every
    client-window is returned, flagged or not (to show how far each is from the threshold).
    """
    store.get_model_settings(name)  # a clear NotFound for an unknown model
    spec = WindowSpec.parse(window)
    if spec.length is None:
        raise InvalidInput("the extraction watch needs a time window (1h, 1d, 7d), not a count")
    if events is None:
        query = EventQuery(model_name=name, since=since, until=until, limit=10_000)
        events = list(store.iter_events(query))
    groups: dict[tuple[datetime, str | None], list[PredictionEvent]] = {}
    for event in events:
        # shadow scoring is no client's query, and ingested events are the queries of a
        # service loopwatch does not answer: one ingest key would look like one huge client
        if event.request_type in ("shadow", "ingested") or event.model_name != name:
            continue
        groups.setdefault((spec.start_of(event.timestamp), event.client_id), []).append(event)
    if not groups:
        return []
    watch = ClientWatch(registry, {v.version: v for v in store.list_versions(name)}, fpr=fpr, seed=seed,
                        all_clients=all_clients)
    alerts: list[ClientAlert] = []
    for start in sorted({start for start, _ in groups}):
        clients = sorted((client for s, client in groups if s == start), key=lambda c: c or "")
        queries: dict[str | None, ClientQueries] = {}
        for client in clients:
            client_events = groups[(start, client)]
            number = Counter(e.model_version for e in client_events).most_common(1)[0][0]
            times = [e.timestamp for e in client_events]
            queries[client] = ClientQueries(
                version=number, first_seen=min(times), last_seen=max(times),
                features=_features(watch.detector(number), watch.versions[number], client_events))
        alerts += watch.window(name, start, start + spec.length, queries)
    return alerts


@dataclass(frozen=True)
class ClientQueries:
    """One client's queries in one window, as the detector measured them."""

    version: int
    first_seen: datetime
    last_seen: datetime
    features: QueryFeatures


class ClientWatch:
    """The watch over a model's windows in time order: each client decided against the
    reference, the window's other clients served by the same version, and its own earlier
    windows in which it was not flagged (kept here between windows)."""

    def __init__(self, registry: Registry, versions: dict[int, ModelVersion], *, fpr: float, seed: int,
                 all_clients: bool = False) -> None:
        self.registry, self.versions = registry, versions
        self.fpr, self.seed, self.all_clients = fpr, seed, all_clients
        self._detectors: dict[int, ExtractionDetector] = {}
        self._history: dict[tuple[str | None, int], list[QueryFeatures]] = {}

    def detector(self, version: int) -> ExtractionDetector:
        if version not in self._detectors:
            self._detectors[version] = _fit(self.registry, self.versions[version], fpr=self.fpr, seed=self.seed)
        return self._detectors[version]

    def window(self, name: str, start: datetime, end: datetime,
               queries: dict[str | None, ClientQueries]) -> list[ClientAlert]:
        """The window's alerts (every client's with ``all_clients``, else the flagged ones)."""
        alerts = []
        for client in sorted(queries, key=lambda c: c or ""):
            mine = queries[client]
            number = mine.version
            # the population: the other clients of the window served by the same version
            others = [q.features for c, q in queries.items() if c != client and q.version == number]
            result = self.detector(number).decide(mine.features, others=others,
                                                  history=self._history.get((client, number), ()), client_id=client)
            if not result.flagged:
                self._history.setdefault((client, number), []).append(mine.features)
            if not (result.flagged or self.all_clients):
                continue
            alerts.append(
                ClientAlert(
                    model=name, client_id=client, model_version=number, window_start=start, window_end=end,
                    first_seen=mine.first_seen, last_seen=mine.last_seen,
                    n_rows=result.features.n_rows, score=result.score, threshold=result.threshold,
                    flagged=result.flagged, reasons=result.reasons, signals=dict(result.signals),
                    features=result.features.to_dict(), thresholds=dict(result.thresholds),
                    against={k: dict(v) for k, v in result.against.items()},
                )
            )
        return alerts

    def queries_of_summary(self, version: int, summary: WindowSummary) -> dict[str | None, ClientQueries]:
        """Each client's queries to ``version`` in one window, from its summary: measured on the
        client's uniform sample of rows, with its exact count, times and boundary share (kept
        for every client, sampled or not)."""
        if not summary.clients.activity:
            return {}  # no client's queries (ingested and shadow events are none): no detector to fit
        detector, meta = self.detector(version), self.versions[version]
        width = len(meta.schema.classes)
        out: dict[str | None, ClientQueries] = {}
        for client, activity in summary.clients.activity.items():
            rows, proba, _ = summary.clients.queries(client)
            frame = model_frame(rows.reindex(columns=meta.schema.names), meta.schema) if len(rows) else None
            if proba is not None and (width < 2 or proba.shape[1] != width
                                      or detector.reference_boundary_share_ is None):
                proba = None  # nothing to compare the share near the boundary with
            features = detector.features(frame, proba)
            boundary = features.near_boundary_share
            if boundary is not None and activity.margins:
                boundary = activity.near_boundary_share(detector.boundary_margin)
            out[client] = ClientQueries(
                version=version, first_seen=_from_us(activity.first_seen_us), last_seen=_from_us(activity.last_seen_us),
                features=replace(features, n_rows=activity.n, near_boundary_share=boundary))
        return out


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=value)


def _fit(registry: Registry, meta: ModelVersion, *, fpr: float, seed: int) -> ExtractionDetector:
    """A detector on the version's reference sample and the model's own outputs on it, kept on
    the registry: fitting takes a second or more, and a scheduled evaluation would otherwise
    refit every version every time."""
    key = ("extraction", meta.artifact_sha256, meta.reference_sha256, float(fpr), int(seed))
    fitted: tuple[ExtractionDetector, bool] = registry.derived(
        key, lambda: _fitted(registry, meta, fpr=fpr, seed=seed), keep=lambda pair: pair[1])
    return fitted[0]


def _fitted(registry: Registry, meta: ModelVersion, *, fpr: float, seed: int) -> tuple[ExtractionDetector, bool]:
    """The detector, and whether it is whole (it is not kept otherwise)."""
    schema = meta.schema
    # the sample keeps the training table's types; the detector reads what logged rows hold
    reference = model_frame(registry.reference_sample(meta.name, meta.version), schema)
    probabilities = None
    complete = True
    if schema.task == "classification":
        try:
            pipeline = registry.load(meta.name, meta.version).pipeline
            probabilities = pipeline.predict_proba(reference)
        except (IntegrityError, AttributeError) as exc:
            # no trustworthy outputs of the reference: the boundary signal is left out (and the
            # detector is not kept, so that a restored artifact brings the signal back)
            probabilities = None
            complete = isinstance(exc, AttributeError)
    detector = ExtractionDetector(fpr=fpr, seed=seed).fit(
        reference, probabilities=probabilities, numeric=list(schema.numeric), categorical=list(schema.categorical)
    )
    return detector, complete


def _features(detector: ExtractionDetector, meta: ModelVersion, events: list[PredictionEvent]) -> QueryFeatures:
    rows = [e.data for e in events if e.data is not None]
    frame = model_frame(pd.DataFrame(rows, columns=meta.schema.names), meta.schema) if rows else None
    width = len(meta.schema.classes)
    probabilities = [e.probability for e in events if e.probability is not None and len(e.probability) == width]
    proba = np.asarray(probabilities, dtype=np.float64) if probabilities and width >= 2 else None
    if proba is not None and detector.reference_boundary_share_ is None:
        proba = None  # nothing to compare the share near the boundary with
    return detector.features(frame, proba)
