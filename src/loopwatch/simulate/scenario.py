"""The seeded churn scenario: a training set and a replayable production period.

Each day is generated from its own random streams, derived from ``(seed,
purpose, day)``, so any day can be rebuilt on its own, iteration order does not
matter, and a scenario without incidents shares every stable row with the same
seed's scenario with incidents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from loopwatch.simulate import effects, schema
from loopwatch.simulate.attacks import poisoned_feedback, probe_frame, probe_offsets
from loopwatch.simulate.business import revenue
from loopwatch.simulate.concept import STABLE_CONCEPT, ChurnConcept, drifted_concept
from loopwatch.simulate.population import sample_customers, to_rows
from loopwatch.simulate.records import CRM_SOURCE, Batch, BusinessMetric, Day, FeedbackRecord
from loopwatch.simulate.timeline import DEFAULT_DAYS, DEFAULT_START, LatencyModelSpec, Timeline, default_timeline
from loopwatch.simulate.traffic import (
    CLIENTS,
    PROBE_MAX_BATCH,
    PROBE_MIN_BATCH,
    assign_clients,
    chunk,
    runs,
    sample_layout,
    to_datetimes,
)

# Purposes of the random streams; a day's stream is (seed, purpose, day).
_TRAINING: Final = 1
_TRAFFIC: Final = 2
_PROBING: Final = 3
_POISONING: Final = 4

_KNOWN_CLIENTS: Final = {spec.client_id: spec for spec in CLIENTS}


@dataclass(frozen=True)
class _DayTraffic:
    """A day's requests, the CRM labels of its predictions and its business metrics."""

    batches: tuple[Batch, ...]
    labels: tuple[FeedbackRecord, ...]
    metrics: tuple[BusinessMetric, ...]


class ChurnScenario:
    """A streaming-service churn world: stable training data, then a period with incidents.

    Not a dataclass because ``days`` is both the constructor's period length
    (as the demo calls it) and the method that replays the period; the length
    is available as :attr:`n_days`. ``timeline=None`` means
    :func:`default_timeline` without the incidents that start after the period;
    ``Timeline(incidents=())`` is a fully stable period.
    """

    def __init__(
        self,
        *,
        seed: int,
        days: int = DEFAULT_DAYS,
        start: datetime = DEFAULT_START,
        predictions_per_day: int = 1000,
        timeline: Timeline | None = None,
        label_delay_days: float = 14.0,
        label_jitter_days: float = 2.0,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        if predictions_per_day < 1:
            raise ValueError(f"predictions_per_day must be >= 1, got {predictions_per_day}")
        if start.tzinfo is None or start.utcoffset() != timedelta(0):
            raise ValueError(f"start must be a UTC datetime, got {start!r}")
        if label_delay_days <= 0 or label_jitter_days < 0:
            raise ValueError("label_delay_days must be > 0 and label_jitter_days >= 0")
        self._seed = seed
        self._n_days = days
        self._start = start.astimezone(UTC)
        self._predictions_per_day = predictions_per_day
        if timeline is None:
            # A shorter demo still gets the incidents that fit; an explicit
            # timeline is taken as meant and must fit entirely.
            timeline = default_timeline(start=self._start).until(self._start + timedelta(days=days))
        self._timeline = timeline
        self._label_delay_days = float(label_delay_days)
        self._label_jitter_days = float(label_jitter_days)
        for incident in self._timeline.incidents:
            effects.check_incident(incident, start=self._start, n_days=days, known=_KNOWN_CLIENTS)
        # Solved once here so an impossible effect size fails at construction.
        self._drifts = tuple(
            (incident, drifted_concept(auc_drop=incident.effect_size))
            for incident in self._timeline.of_kind("concept_drift")
        )

    def __repr__(self) -> str:
        return (
            f"ChurnScenario(seed={self._seed}, days={self._n_days}, start={self._start.isoformat()}, "
            f"predictions_per_day={self._predictions_per_day}, incidents={len(self._timeline.incidents)})"
        )

    # -- configuration -------------------------------------------------------------

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def n_days(self) -> int:
        return self._n_days

    @property
    def start(self) -> datetime:
        return self._start

    @property
    def end(self) -> datetime:
        """End of the period (exclusive)."""
        return self._start + timedelta(days=self._n_days)

    @property
    def predictions_per_day(self) -> int:
        return self._predictions_per_day

    @property
    def timeline(self) -> Timeline:
        return self._timeline

    @property
    def label_delay_days(self) -> float:
        return self._label_delay_days

    @property
    def label_jitter_days(self) -> float:
        return self._label_jitter_days

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self._seed,
            "days": self._n_days,
            "start": self._start.isoformat(),
            "predictions_per_day": self._predictions_per_day,
            "label_delay_days": self._label_delay_days,
            "label_jitter_days": self._label_jitter_days,
            "clients": [spec.to_dict() for spec in CLIENTS],
            "timeline": self._timeline.to_dict(),
        }

    def latency_model_spec(self) -> LatencyModelSpec | None:
        """The slower model the runner must deploy for the latency regression, if any."""
        return self._timeline.latency_model_spec()

    def concept_at(self, moment: datetime) -> ChurnConcept:
        """The true churn model in force at ``moment``."""
        concept = STABLE_CONCEPT
        for incident, drifted in self._drifts:
            if incident.active_at(moment):
                concept = drifted
        return concept

    # -- data ----------------------------------------------------------------------

    def training_data(self, *, n: int = 5000) -> pd.DataFrame:
        """``n`` customers of the stable world with their outcome in column ``churned`` (0/1)."""
        rng = self._rng(_TRAINING, n)
        frame = sample_customers(rng, n=n)
        frame[schema.TARGET] = (rng.random(n) < STABLE_CONCEPT.probability(frame)).astype(int)
        return frame

    def days(self) -> Iterator[Day]:
        """The period's days in order, each with its requests, arriving labels and metrics."""
        cache: dict[int, _DayTraffic] = {}
        keep = self._label_reach_days() + 1
        traffic_of = self._cached(cache)
        for index in range(self._n_days):
            yield self._assemble(index, traffic_of)
            for old in [k for k in cache if k < index - keep]:
                del cache[old]

    def day(self, index: int) -> Day:
        """One day on its own (rebuilds the earlier days its labels come from)."""
        if not 0 <= index < self._n_days:
            raise IndexError(f"day {index} is outside the {self._n_days}-day period")
        return self._assemble(index, self._cached({}))

    def trailing_feedback(self) -> tuple[FeedbackRecord, ...]:
        """Labels of the period's last predictions that arrive after its end, in time order."""
        traffic_of = self._cached({})
        first = max(0, self._n_days - self._label_reach_days() - 1)
        records = [
            record
            for k in range(first, self._n_days)
            for record in traffic_of(k).labels
            if record.label_time >= self.end
        ]
        return tuple(sorted(records, key=_feedback_order))

    # -- internals -----------------------------------------------------------------

    def _rng(self, purpose: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self._seed, purpose, index])

    def _label_reach_days(self) -> int:
        return math.ceil(self._label_delay_days + self._label_jitter_days)

    def _cached(self, cache: dict[int, _DayTraffic]) -> Callable[[int], _DayTraffic]:
        def traffic_of(index: int) -> _DayTraffic:
            if index not in cache:
                cache[index] = self._traffic(index)
            return cache[index]

        return traffic_of

    def _true_probability(self, frame: pd.DataFrame, day_start: datetime, offsets: np.ndarray) -> np.ndarray:
        probability = STABLE_CONCEPT.probability(frame)
        for incident, concept in self._drifts:
            mask = effects.active_mask(incident, day_start, offsets)
            if mask.any():
                probability[mask] = concept.probability(frame.loc[mask])
        return probability

    def _traffic(self, index: int) -> _DayTraffic:
        day_start = self._start + timedelta(days=index)
        rng = self._rng(_TRAFFIC, index)
        n = self._predictions_per_day
        layout = sample_layout(rng, n=n)
        offsets = layout.offsets

        new_country, share = effects.new_country_share(self._timeline.of_kind("selection_bias"), day_start, offsets)
        factor = effects.watch_hours_factor(self._timeline.of_kind("covariate_shift"), day_start, offsets)
        customers = sample_customers(
            rng, n=n, new_country=new_country, new_country_share=share, watch_hours_factor=factor
        )
        probability = self._true_probability(customers, day_start, offsets)
        labels = (rng.random(n) < probability).astype(int)
        delay = self._label_delay_days * 86_400.0
        label_offsets = offsets + delay + rng.random(n) * self._label_jitter_days * 86_400.0

        clients = assign_clients(layout, customers["device"].to_numpy())
        versions, sent = effects.software_changes(
            self._timeline.of_kind("software_change"),
            clients=clients,
            known=_KNOWN_CLIENTS,
            day_start=day_start,
            offsets=offsets,
            customers=customers,
        )

        rows = to_rows(sent)
        timestamps = to_datetimes(day_start, offsets)
        label_times = to_datetimes(day_start, label_offsets)
        entity_ids = [f"cust-{index:03d}-{i:05d}" for i in range(n)]
        label_list: list[int] = labels.tolist()
        probability_list: list[float] = probability.tolist()

        batches: list[Batch] = []
        for spec in CLIENTS:
            positions = np.flatnonzero(clients == spec.client_id)
            for run_start, run_end in runs(versions[positions]):
                cuts = chunk(rng, n=run_end - run_start, min_size=spec.min_batch, max_size=spec.max_batch)
                for first, last in cuts:
                    chosen = positions[run_start + first : run_start + last].tolist()
                    batches.append(
                        Batch(
                            client_id=spec.client_id,
                            client_version=str(versions[chosen[0]]),
                            request_type=spec.request_type,
                            timestamps=tuple(timestamps[i] for i in chosen),
                            rows=tuple(rows[i] for i in chosen),
                            entity_ids=tuple(entity_ids[i] for i in chosen),
                            labels=tuple(label_list[i] for i in chosen),
                            label_times=tuple(label_times[i] for i in chosen),
                            label_sources=(CRM_SOURCE,) * len(chosen),
                            probabilities=tuple(probability_list[i] for i in chosen),
                        )
                    )
        batches.extend(self._probes(index, day_start))
        batches.sort(key=lambda batch: (batch.sent_at, batch.client_id))

        crm_labels = tuple(
            sorted(
                (
                    FeedbackRecord(
                        entity_id=entity_ids[i],
                        label=label_list[i],
                        label_time=label_times[i],
                        source=CRM_SOURCE,
                        prediction_time=timestamps[i],
                        true_label=label_list[i],
                    )
                    for i in range(n)
                ),
                key=_feedback_order,
            )
        )
        metrics = revenue(customers, labels, day_start + timedelta(days=1) - timedelta(seconds=1))
        return _DayTraffic(batches=tuple(batches), labels=crm_labels, metrics=metrics)

    def _probes(self, index: int, day_start: datetime) -> list[Batch]:
        batches: list[Batch] = []
        for incident in self._timeline.of_kind("adversarial_probing"):
            if incident.day != index:
                continue
            rng = self._rng(_PROBING, index)
            client = str(incident.touches["client_id"])
            version = str(incident.params.get("client_version", "0.0.0"))
            n_rows = int(round(incident.effect_size * self._predictions_per_day))
            hours = float(incident.params.get("hours", 3.0) or 3.0)
            anchors = int(incident.params.get("anchors", 4) or 4)
            frame = probe_frame(rng, n_rows=n_rows, anchors=anchors)
            begin = (incident.start - day_start).total_seconds()
            hours = min(hours, (86_400.0 - begin) / 3600.0)
            offsets = probe_offsets(rng, n_rows=n_rows, start=begin, hours=hours)
            probability: list[float] = self._true_probability(frame, day_start, offsets).tolist()
            rows = to_rows(frame)
            timestamps = to_datetimes(day_start, offsets)
            for first, last in chunk(rng, n=len(rows), min_size=PROBE_MIN_BATCH, max_size=PROBE_MAX_BATCH):
                size = last - first
                batches.append(
                    Batch(
                        client_id=client,
                        client_version=version,
                        request_type="api",
                        timestamps=tuple(timestamps[first:last]),
                        rows=tuple(rows[first:last]),
                        entity_ids=tuple(f"{client}-{index:03d}-{i:05d}" for i in range(first, last)),
                        labels=(None,) * size,
                        label_times=(None,) * size,
                        label_sources=(None,) * size,
                        probabilities=tuple(probability[first:last]),
                    )
                )
        return batches

    def _assemble(self, index: int, traffic_of: Callable[[int], _DayTraffic]) -> Day:
        day_start = self._start + timedelta(days=index)
        day_end = day_start + timedelta(days=1)
        today = traffic_of(index)
        earliest = max(0, index - self._label_reach_days())
        latest = index - math.floor(self._label_delay_days)
        arriving = [
            record
            for k in range(earliest, latest + 1)
            for record in traffic_of(k).labels
            if day_start <= record.label_time < day_end
        ]
        for incident in self._timeline.of_kind("label_poisoning"):
            if incident.day != index:
                continue
            # Predictions whose CRM label has not arrived yet, so the partner's
            # labels are the first (and for a while the only) ones the loop sees.
            first = max(0, index + 1 - math.floor(self._label_delay_days))
            candidates = sorted(
                (record for k in range(first, index) for record in traffic_of(k).labels),
                key=lambda record: (record.prediction_time, record.entity_id),
            )
            share = incident.params.get("records_share", 0.4)
            arriving.extend(
                poisoned_feedback(
                    self._rng(_POISONING, index),
                    candidates=candidates,
                    n_records=int(round(float(share or 0.0) * self._predictions_per_day)),
                    flip_rate=incident.effect_size,
                    source=str(incident.touches["source"]),
                    start=incident.start,
                    hours=float(incident.params.get("hours", 6.0) or 6.0),
                )
            )
        return Day(
            index=index,
            date=day_start.date(),
            start=day_start,
            end=day_end,
            batches=today.batches,
            feedback=tuple(sorted(arriving, key=_feedback_order)),
            business_metrics=today.metrics,
        )


def _feedback_order(record: FeedbackRecord) -> tuple[datetime, str, str]:
    return (record.label_time, record.source, record.entity_id)
