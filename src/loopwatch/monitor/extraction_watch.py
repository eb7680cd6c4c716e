"""Watch each client's queries for model extraction, window by window.

Reads a model's logged events (each carries its ``client_id``: the ``X-Client-ID``
header, or the API key's id when keys are on), groups them by window and client,
and scores every client's queries with an
:class:`~loopwatch.detectors.extraction.ExtractionDetector` fitted on the
reference sample of the version that served most of them. An alert names the
client; the loop engine turns alerts into ``adversarial_probing`` incidents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.detectors.extraction import ExtractionDetector, ExtractionScore
from loopwatch.errors import IntegrityError, InvalidInput
from loopwatch.features.frames import model_frame
from loopwatch.monitor.windows import WindowSpec
from loopwatch.records import ModelVersion, PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.stores.base import EventQuery, Store


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
    versions = {v.version: v for v in store.list_versions(name)}
    detectors: dict[int, ExtractionDetector] = {}
    alerts: list[ClientAlert] = []
    for (start, client), client_events in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        number = Counter(e.model_version for e in client_events).most_common(1)[0][0]
        meta = versions[number]
        if number not in detectors:
            detectors[number] = _fit(registry, meta, fpr=fpr, seed=seed)
        result = _score(detectors[number], meta, client_events, client)
        if not (result.flagged or all_clients):
            continue
        times = [e.timestamp for e in client_events]
        alerts.append(
            ClientAlert(
                model=name, client_id=client, model_version=number,
                window_start=start, window_end=start + spec.length,
                first_seen=min(times), last_seen=max(times),
                n_rows=result.features.n_rows, score=result.score, threshold=result.threshold,
                flagged=result.flagged, reasons=result.reasons, signals=dict(result.signals),
                features=result.features.to_dict(),
            )
        )
    return alerts


def _fit(registry: Registry, meta: ModelVersion, *, fpr: float, seed: int) -> ExtractionDetector:
    """A detector on the version's reference sample and the model's own outputs on it."""
    schema = meta.schema
    # the sample keeps the training table's types; the detector reads what logged rows hold
    reference = model_frame(registry.reference_sample(meta.name, meta.version), schema)
    probabilities = None
    if schema.task == "classification":
        try:
            pipeline = registry.load(meta.name, meta.version).pipeline
            probabilities = pipeline.predict_proba(reference)
        except (IntegrityError, AttributeError):
            # no trustworthy outputs of the reference: the boundary signal is left out
            probabilities = None
    return ExtractionDetector(fpr=fpr, seed=seed).fit(
        reference, probabilities=probabilities, numeric=list(schema.numeric), categorical=list(schema.categorical)
    )


def _score(
    detector: ExtractionDetector, meta: ModelVersion, events: list[PredictionEvent], client: str | None
) -> ExtractionScore:
    rows = [e.data for e in events if e.data is not None]
    frame = model_frame(pd.DataFrame(rows, columns=meta.schema.names), meta.schema) if rows else None
    width = len(meta.schema.classes)
    probabilities = [e.probability for e in events if e.probability is not None and len(e.probability) == width]
    proba = np.asarray(probabilities, dtype=np.float64) if probabilities and width >= 2 else None
    if proba is not None and detector.reference_boundary_share_ is None:
        proba = None  # nothing to compare the share near the boundary with
    return detector.score(frame, proba, client_id=client)
