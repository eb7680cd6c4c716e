"""The plain-data records a simulated day is made of.

Hidden ground truth (true labels, true probabilities) travels next to what a
client would send, clearly named, so the demo runner can grade monitoring
without a second source of truth; it must simply not send those fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from loopwatch.simulate.population import Row, rows_to_frame

CRM_SOURCE = "crm-export"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One prediction request: rows a client sends together, one timestamp per row.

    ``labels``, ``label_times`` and ``label_sources`` are ``None`` for rows that
    never get an outcome (adversarial probes are not customers).
    ``probabilities`` is the true churn probability of each row in the world of
    that moment (hidden; for grading only).
    """

    client_id: str
    client_version: str
    request_type: str
    timestamps: tuple[datetime, ...]
    rows: tuple[Row, ...]
    entity_ids: tuple[str, ...]
    labels: tuple[int | None, ...]
    label_times: tuple[datetime | None, ...]
    label_sources: tuple[str | None, ...]
    probabilities: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.rows)
        for name in ("timestamps", "entity_ids", "labels", "label_times", "label_sources", "probabilities"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"batch field {name} has {len(getattr(self, name))} values for {n} rows")
        if n == 0:
            raise ValueError("a batch has at least one row")
        if self.request_type not in ("api", "batch"):
            raise ValueError(f"request_type must be 'api' or 'batch', got {self.request_type!r}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def sent_at(self) -> datetime:
        """When the request is sent: once its last row is there."""
        return self.timestamps[-1]

    @property
    def has_labels(self) -> bool:
        return all(label is not None for label in self.labels)

    def frame(self) -> pd.DataFrame:
        """The rows as sent (features only), missing values as NaN."""
        return rows_to_frame(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_version": self.client_version,
            "request_type": self.request_type,
            "timestamps": [_iso(t) for t in self.timestamps],
            "rows": [dict(row) for row in self.rows],
            "entity_ids": list(self.entity_ids),
            "labels": list(self.labels),
            "label_times": [_iso(t) for t in self.label_times],
            "label_sources": list(self.label_sources),
            "probabilities": list(self.probabilities),
        }


@dataclass(frozen=True, kw_only=True)
class FeedbackRecord:
    """A label arriving from a feedback source, keyed by the prediction row's entity id.

    ``label`` is what the source claims; ``true_label`` is the truth (hidden; it
    differs only for poisoned records).
    """

    entity_id: str
    label: int
    label_time: datetime
    source: str
    prediction_time: datetime
    true_label: int

    @property
    def flipped(self) -> bool:
        return self.label != self.true_label

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "label": self.label,
            "label_time": _iso(self.label_time),
            "source": self.source,
            "prediction_time": _iso(self.prediction_time),
            "true_label": self.true_label,
        }


@dataclass(frozen=True, kw_only=True)
class BusinessMetric:
    """One business-metric observation; ``segment`` is a country, ``None`` for the total."""

    name: str
    timestamp: datetime
    value: float
    segment: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timestamp": _iso(self.timestamp), "value": self.value, "segment": self.segment}


@dataclass(frozen=True, kw_only=True)
class Day:
    """One simulated day: its prediction requests, the labels arriving, the business metrics.

    ``feedback`` holds every label whose ``label_time`` falls on this day, from
    predictions made 14-16 days earlier and from any other source, in time
    order: replaying ``batches`` and ``feedback`` by time is the whole day.
    """

    index: int
    date: date
    start: datetime
    end: datetime
    batches: tuple[Batch, ...]
    feedback: tuple[FeedbackRecord, ...]
    business_metrics: tuple[BusinessMetric, ...]

    @property
    def n_predictions(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def frame(self) -> pd.DataFrame:
        """All rows of the day as sent, with request metadata and the hidden truth.

        Columns: the features, then ``client_id``, ``client_version``,
        ``request_type``, ``timestamp``, ``entity_id``, ``label`` (nullable
        Int64), ``label_time``, ``label_source`` and ``probability``.
        """
        rows: list[Row] = []
        meta: dict[str, list[Any]] = {
            "client_id": [],
            "client_version": [],
            "request_type": [],
            "timestamp": [],
            "entity_id": [],
            "label": [],
            "label_time": [],
            "label_source": [],
            "probability": [],
        }
        for batch in self.batches:
            rows.extend(batch.rows)
            n = len(batch)
            meta["client_id"].extend([batch.client_id] * n)
            meta["client_version"].extend([batch.client_version] * n)
            meta["request_type"].extend([batch.request_type] * n)
            meta["timestamp"].extend(batch.timestamps)
            meta["entity_id"].extend(batch.entity_ids)
            meta["label"].extend(batch.labels)
            meta["label_time"].extend(batch.label_times)
            meta["label_source"].extend(batch.label_sources)
            meta["probability"].extend(batch.probabilities)
        frame = rows_to_frame(rows)
        for name, values in meta.items():
            frame[name] = values
        frame["label"] = pd.array(meta["label"], dtype="Int64")
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame["label_time"] = pd.to_datetime(frame["label_time"], utc=True)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "date": self.date.isoformat(),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "batches": [batch.to_dict() for batch in self.batches],
            "feedback": [record.to_dict() for record in self.feedback],
            "business_metrics": [metric.to_dict() for metric in self.business_metrics],
        }
