"""Prediction events and the other durable records.

"Each data point is one event": a request of 50 rows becomes one
:class:`LoggedRequest` (the unit that is committed whole or not at all) that
the store expands into 50 :class:`PredictionEvent` rows sharing its
``request_id``, each with its ``row_index``.

Times are timezone-aware UTC datetimes. ``timestamp`` is the event time (when
the prediction happened, or the time a client supplied for a replay) and every
monitoring window uses it; ``logged_at`` is when the store committed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from loopwatch.records.fingerprint import Fingerprint
from loopwatch.records.jsonutil import utc_iso

#: Request types loopwatch itself produces; clients may name others.
REQUEST_TYPES = ("api", "batch", "cli", "replay", "shadow")
#: The request type of events a model made elsewhere and a sender logged (POST .../events,
#: ``loopwatch ingest``): never a prediction loopwatch made.
INGESTED_REQUEST_TYPE = "ingested"
#: The request type of a candidate's shadow predictions: logged, but served to no one.
SHADOW_REQUEST_TYPE = "shadow"


@dataclass(frozen=True, kw_only=True)
class LoggedRequest:
    """One predict request with its rows: the unit of durable logging."""

    request_id: str
    model_name: str
    model_version: int
    request_type: str
    client_id: str | None
    fingerprint: Fingerprint
    #: SHA-256 of the canonical request, so a retry can be told from a reuse of the id.
    body_sha256: str
    #: The JSON response sent to the caller, returned again to an identical retry.
    response: bytes
    runtime_ms: float
    received_at: datetime
    replayed: bool
    predictions: list[list[Any]]
    probabilities: list[list[float]] | None
    #: Facts about the whole feature matrix (shape, total missing values).
    request_summary: dict[str, Any]
    #: Cheap facts per row (which features are missing).
    row_summaries: list[dict[str, Any]]
    #: The input rows, or ``None`` when the model's settings keep inputs out of the log.
    data: list[dict[str, Any]] | None
    #: One event time per row when the client supplied them (replays and backfills).
    timestamps: list[datetime] | None = None
    #: One entity id per row (a customer, an order) when the client supplied them, so
    #: that labels can find the prediction by entity; ``None`` entries for rows without.
    entity_ids: list[str | None] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.predictions)

    def row_timestamp(self, index: int) -> datetime:
        return self.timestamps[index] if self.timestamps is not None else self.received_at


@dataclass(frozen=True, kw_only=True)
class PredictionEvent:
    """One predicted row, as read back from a store."""

    request_id: str
    row_index: int
    model_name: str
    model_version: int
    timestamp: datetime
    logged_at: datetime
    #: Milliseconds the whole request took.
    runtime_ms: float
    #: The request's runtime shared out over its rows.
    row_runtime_ms: float
    prediction: list[Any]
    probability: list[float] | None
    input_data_summary: dict[str, Any]
    data: dict[str, Any] | None
    request_type: str
    client_id: str | None
    fingerprint_id: str
    replayed: bool
    #: The entity the prediction was about, when the client named one.
    entity_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = utc_iso(self.timestamp)
        out["logged_at"] = utc_iso(self.logged_at)
        return out


@dataclass(frozen=True, kw_only=True)
class TrainingEvent:
    """A training run: what it saw, how long it took, what it produced."""

    event_id: str
    model_name: str
    model_version: int
    timestamp: datetime
    duration_ms: float
    data_summary: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    client_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = utc_iso(self.timestamp)
        return out


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """A request refused before it reached the model, counted for data quality."""

    model_name: str
    timestamp: datetime
    client_id: str | None
    reason: str
    status: int
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = utc_iso(self.timestamp)
        return out


@dataclass(frozen=True)
class RequestOutcome:
    """What the writer did with one request.

    ``stored``: committed now. ``duplicate``: the id was already stored with the
    same body, ``response`` is the stored one. ``conflict``: the id was stored
    with a different body. ``failed``: it could not be written (``error`` says
    why) while the rest of its batch was.
    """

    status: Literal["stored", "duplicate", "conflict", "failed"]
    response: bytes | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class EventColumns:
    """A batch of logged events column by column, as the summariser reads them: one entry per
    event in every field, in the order the store gave them, without a :class:`PredictionEvent`
    per row (building a record per event cost several times the summary it fed).

    ``runtime_ms`` and ``row_runtime_ms`` are as stored (a negative value: not measured);
    ``prediction`` is each event's first output (``None`` when it has none); ``adversarial``
    is the evasion score's flag from the event's input summary (``None`` without one).
    """

    request_id: Sequence[str]
    row_index: Sequence[int]
    model_version: Sequence[int]
    timestamp_us: Sequence[int]
    runtime_ms: Sequence[float]
    row_runtime_ms: Sequence[float]
    prediction: Sequence[Any]
    probability: Sequence[list[Any] | None]
    data: Sequence[dict[str, Any] | None]
    adversarial: Sequence[Any]
    request_type: Sequence[str]
    client_id: Sequence[str | None]
    fingerprint_id: Sequence[str]

    def __len__(self) -> int:
        return len(self.request_id)

    def take(self, positions: Sequence[int]) -> EventColumns:
        """The events at ``positions``, in that order."""
        return EventColumns(**{f.name: [getattr(self, f.name)[i] for i in positions] for f in fields(self)})
