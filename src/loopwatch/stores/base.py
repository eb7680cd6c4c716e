"""The store interface every backend implements, and its query types.

One :class:`Store` protocol, two real implementations (SQLite and PostgreSQL)
that pass one conformance suite. Stores are synchronous: the service reaches
them through a thread pool for reads and through the group-commit writer
(:mod:`loopwatch.stores.writer`) for prediction logs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator, Literal, Protocol, Sequence

from loopwatch.auth.keys import ApiKey
from loopwatch.errors import InvalidInput
from loopwatch.poisoning.records import QuarantineEntry
from loopwatch.records.evaluations import EvaluationFailure, EvaluationStatus
from loopwatch.records.ingest import IngestBatch, IngestOutcome
from loopwatch.records import (
    AliasChange,
    BusinessObservation,
    ConfigVersion,
    EventColumns,
    Fingerprint,
    IncidentRecord,
    Label,
    LabelOutcome,
    LoggedRequest,
    ModelInfo,
    ModelSettings,
    ModelVersion,
    PredictionEvent,
    Rebaseline,
    Rejection,
    RequestOutcome,
    StoredLabel,
    TrainingEvent,
)
from loopwatch.records.jsonutil import dumps, loads

if TYPE_CHECKING:  # the summaries' parts import the statistics core: not at every command's start
    from loopwatch.summaries.window import WindowSummary

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_micros(moment: datetime) -> int:
    """Event times are stored as integer microseconds since the epoch (UTC)."""
    if moment.tzinfo is None:
        raise InvalidInput("timestamps must carry a timezone")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, tz=timezone.utc).replace(
        microsecond=value % 1_000_000
    )


@dataclass(frozen=True, kw_only=True)
class EventQuery:
    """A page of events; filters combine with AND, times are event times."""

    model_name: str | None = None
    model_version: int | None = None
    since: datetime | None = None
    #: Exclusive upper bound.
    until: datetime | None = None
    request_id: str | None = None
    client_id: str | None = None
    request_type: str | None = None
    limit: int = 1000
    #: Opaque position returned as ``next_cursor`` by the previous page.
    cursor: str | None = None


@dataclass(frozen=True)
class EventPage:
    events: list[PredictionEvent]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class StoredRequest:
    request_id: str
    model_name: str
    model_version: int
    body_sha256: str
    response: bytes
    n_rows: int


def encode_cursor(ts: int, request_id: str, row_index: int) -> str:
    return base64.urlsafe_b64encode(dumps([ts, request_id, row_index])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts, request_id, row_index = loads(base64.urlsafe_b64decode(padded.encode()))
        if not (isinstance(ts, int) and isinstance(request_id, str) and isinstance(row_index, int)):
            raise ValueError
        if not (-(2**63) <= ts < 2**63 and -(2**63) <= row_index < 2**63):
            raise ValueError  # a tampered cursor: SQLite cannot even bind such integers
        return ts, request_id, row_index
    except Exception as exc:
        raise InvalidInput("cursor is not one this service issued") from exc


class Store(Protocol):
    """What loopwatch needs from a database."""

    url: str
    dialect: str

    def migrate(self) -> list[int]: ...
    def applied_migrations(self) -> list[int]: ...
    def close(self) -> None: ...
    def ping(self) -> None: ...

    # prediction log
    def write_requests(self, requests: Sequence[LoggedRequest]) -> list[RequestOutcome]: ...
    def get_request(self, request_id: str) -> StoredRequest | None: ...
    def query_events(self, query: EventQuery) -> EventPage: ...
    def iter_events(self, query: EventQuery) -> Iterator[PredictionEvent]: ...
    def count_events(self, model_name: str | None = None) -> int: ...
    def delete_request(self, request_id: str) -> int: ...
    # deletes what each model logged (logged_at) longer than its retention period before now
    def apply_retention(self, now: datetime) -> dict[str, int]: ...
    def get_fingerprint(self, fingerprint_id: str) -> Fingerprint | None: ...
    def write_rejections(self, rejections: Sequence[Rejection]) -> None: ...
    def query_rejections(
        self, model_name: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[Rejection]: ...
    def write_training_event(self, event: TrainingEvent) -> None: ...
    def training_events(self, model_name: str | None = None) -> list[TrainingEvent]: ...

    # registry
    def create_model_version(
        self,
        *,
        name: str,
        created_at: datetime,
        task: str,
        estimator: str,
        artifact: bytes,
        artifact_sha256: str,
        reference: bytes,
        reference_sha256: str,
        schema: dict[str, Any],
        metrics: dict[str, Any],
        data_summary: dict[str, Any],
        params: dict[str, Any],
        profile: bytes | None = None,
        profile_sha256: str | None = None,
    ) -> int: ...
    def get_model_version(self, name: str, version: int) -> ModelVersion: ...
    def list_versions(self, name: str) -> list[ModelVersion]: ...
    def list_models(self) -> list[ModelInfo]: ...
    def get_artifact(self, sha256: str) -> bytes: ...
    def get_aliases(self, name: str) -> dict[str, int]: ...
    def set_alias(
        self, name: str, alias: str, version: int | None, *, reason: str, at: datetime
    ) -> AliasChange: ...
    def alias_history(self, name: str, alias: str) -> list[AliasChange]: ...
    def get_model_settings(self, name: str) -> ModelSettings: ...
    def set_model_settings(self, name: str, settings: ModelSettings) -> None: ...
    def model_exists(self, name: str) -> bool: ...
    def rename_model(self, old: str, new: str) -> dict[str, int]: ...

    # feedback: labels and business metrics
    def write_labels(self, labels: Sequence[Label]) -> list[LabelOutcome]: ...
    def iter_labels(
        self,
        model_name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Literal["label_time", "prediction_time"] = "label_time",
    ) -> Iterator[StoredLabel]: ...
    def iter_label_revisions(
        self, model_name: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredLabel]: ...
    def label_history(self, model_name: str, request_id: str, row_index: int) -> list[StoredLabel]: ...
    def count_events_by_window(
        self,
        model_name: str,
        *,
        length: timedelta,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[datetime, int]]: ...
    def write_business_metrics(self, observations: Sequence[BusinessObservation]) -> int: ...
    def query_business_metrics(
        self,
        *,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = None,
    ) -> list[BusinessObservation]: ...

    # monitoring state: incidents, claims, configurations, rebaselines
    def upsert_incident(self, incident: IncidentRecord) -> IncidentRecord: ...
    def list_incidents(
        self, model_name: str | None = None, *, status: str | None = None
    ) -> list[IncidentRecord]: ...
    def get_incident(self, incident_id: str) -> IncidentRecord: ...
    def acknowledge_incident(
        self, incident_id: str, *, by: str | None, at: datetime, note: str | None = None
    ) -> IncidentRecord: ...
    def claim(self, key: str, *, now: datetime, cooldown_seconds: float) -> bool: ...
    def put_monitor_config(
        self, model_name: str, config: dict[str, Any], *, at: datetime, author: str | None = None
    ) -> ConfigVersion: ...
    def get_monitor_config(self, model_name: str, version: int | None = None) -> ConfigVersion | None: ...
    def list_monitor_configs(self, model_name: str) -> list[ConfigVersion]: ...
    def add_rebaseline(
        self,
        *,
        model_name: str,
        model_version: int,
        since: datetime,
        until: datetime,
        profile: bytes,
        profile_sha256: str,
        at: datetime,
        reason: str,
    ) -> Rebaseline: ...
    def latest_rebaseline(self, model_name: str, model_version: int) -> tuple[Rebaseline, bytes] | None: ...
    def list_rebaselines(self, model_name: str) -> list[Rebaseline]: ...

    # API keys and the usage behind their limits (migration 5)
    def create_api_key(self, key: ApiKey) -> ApiKey: ...
    def get_api_key(self, key_id: str) -> ApiKey | None: ...
    def list_api_keys(self) -> list[ApiKey]: ...
    def revoke_api_key(self, key_id: str, *, at: datetime) -> ApiKey: ...
    def key_generation(self) -> int: ...
    def claim_key_usage(self, key_id: str, *, kind: str, window: int, want: int, limit: int) -> int: ...
    def key_usage(self, key_id: str, *, kind: str, window: int) -> int: ...

    # quarantine of training rows the poisoning screens set aside (migration 6)
    def quarantine_rows(self, entries: Sequence[QuarantineEntry]) -> int: ...
    def list_quarantine(
        self,
        model_name: str,
        *,
        released: bool | None = None,
        limit: int | None = 1000,
        offset: int = 0,
    ) -> list[QuarantineEntry]: ...
    def count_quarantine(self, model_name: str) -> dict[str, int]: ...
    def release_quarantine(
        self, model_name: str, rows: Sequence[tuple[str, int]], *, by: str | None, at: datetime
    ) -> list[QuarantineEntry]: ...

    # scheduled evaluations: failures with their cause, each model's last success (migration 7)
    def record_evaluation(
        self, model_name: str, *, at: datetime, cause: str | None = None, message: str = ""
    ) -> EvaluationStatus: ...
    def evaluation_status(self, model_name: str | None = None) -> list[EvaluationStatus]: ...
    def list_evaluation_failures(self, model_name: str, *, limit: int = 20) -> list[EvaluationFailure]: ...

    # ingested events and external version labels (migration 10)
    def write_ingested(self, batch: IngestBatch) -> IngestOutcome: ...
    def external_versions(self, name: str) -> dict[str, int]: ...
    def resolve_external_version(
        self, name: str, label: str, *, base_version: int, created_at: datetime
    ) -> int: ...

    # window summaries and the watermark of the log summarised (migration 12)
    def merge_window_summaries(
        self, model_name: str, summaries: Sequence[WindowSummary], *, kind: str = "hour",
        logged_through: int | None = None, check_watermark: bool = False, watermark: int | None = None,
    ) -> int: ...
    def put_window_summaries(
        self, model_name: str, summaries: Sequence[WindowSummary], *, kind: str = "hour"
    ) -> int: ...
    def window_summaries(
        self, model_name: str, *, kind: str = "hour", start: datetime | None = None, end: datetime | None = None,
        version: int | None = None,
    ) -> list[WindowSummary]: ...
    def summary_spans(
        self, model_name: str, *, kind: str = "hour", start: datetime | None = None, end: datetime | None = None,
        version: int | None = None,
    ) -> list[tuple[int, datetime, datetime]]: ...
    def summary_layouts(self, model_name: str) -> dict[int, set[str]]: ...
    def read_window(
        self, model_name: str, *, version: int, start: datetime, end: datetime
    ) -> WindowSummary | None: ...
    def delete_window_summaries(
        self, model_name: str, *, kind: str = "hour", before: datetime | None = None, version: int | None = None,
        since: datetime | None = None,
    ) -> int: ...
    def summarised_models(self) -> list[str]: ...
    def summary_watermark(self, model_name: str) -> int | None: ...
    def set_summary_watermark(self, model_name: str, logged_through: int | None) -> None: ...
    def iter_events_logged(
        self, model_name: str, *, after: int | None, through: int, batch_requests: int = 2000
    ) -> Iterator[tuple[list[PredictionEvent], int]]: ...
    def iter_event_columns_logged(
        self, model_name: str, *, after: int | None, through: int, batch_requests: int = 2000
    ) -> Iterator[tuple[EventColumns, int]]: ...
    def iter_window_events(
        self, model_name: str, *, version: int, start: datetime, end: datetime, logged_through: int
    ) -> list[PredictionEvent]: ...
    def count_events_logged(self, model_name: str, *, through: int) -> int: ...
    def request_logged_at(self, request_id: str) -> int | None: ...
    def latest_logged_at(self, model_name: str) -> int | None: ...
    def label_watermark(self, model_name: str) -> int | None: ...
    def set_label_watermark(self, model_name: str, labels_through: int) -> None: ...
    def labelled_windows(
        self, model_name: str, *, received_after: int | None, received_through: int, length_us: int, origin_us: int
    ) -> list[tuple[int, int]]: ...
    def latest_label_received(self, model_name: str) -> int | None: ...
    def latest_label_time(self, model_name: str) -> int | None: ...
    def roll_up_hours(self, model_name: str, days: Sequence[WindowSummary],
                      hours: Sequence[tuple[int, datetime]]) -> int: ...
    def window_parts(
        self, model_name: str, *, start: datetime, end: datetime, version: int,
    ) -> list[tuple[str, WindowSummary]]: ...
    def count_labels_between(self, model_name: str, *, start: datetime, end: datetime) -> int: ...
