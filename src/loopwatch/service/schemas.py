"""Pydantic input and output schemas of the HTTP API (kept apart, as inputs and outputs differ)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from loopwatch.records.names import NAME_PATTERN

#: Version numbers are INTEGER columns; larger ones cannot even be bound as SQLite parameters.
MAX_VERSION = 2**31 - 1
VersionNumber = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
#: Longest list any body may hold. The configured rows-per-request limit is checked after
#: parsing; this cap makes pydantic refuse a huge list at once instead of validating every
#: element of it first (a million elements would take seconds).
MAX_LIST_LENGTH = 100_000
EntityId = Annotated[str, Field(min_length=1, max_length=200)]

ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One row: feature name to value. Numbers for numeric features, strings "
    "for categorical ones, null only for features the schema declares nullable.",
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_In):
    rows: list[dict[str, Any]] = Field(
        ..., min_length=1, max_length=MAX_LIST_LENGTH, json_schema_extra={"items": ROW_SCHEMA},
        description="Rows to predict."
    )
    version: VersionNumber | Literal["production", "candidate"] | None = Field(
        None, description="A version number or alias; the production version when absent."
    )
    timestamp: datetime | None = Field(
        None,
        description="Event time of every row, for replays and backfills (ISO-8601 with a "
        "timezone). Such events are marked as replayed.",
    )
    timestamps: list[datetime] | None = Field(
        None, max_length=MAX_LIST_LENGTH, description="Event time per row; overrides timestamp."
    )
    entity_ids: list[EntityId | None] | None = Field(
        None,
        max_length=MAX_LIST_LENGTH,
        description="The entity each row is about (a customer id, an order id), one per row "
        "(null for a row without one), so that labels can later name the prediction by entity.",
    )
    request_type: str = Field(
        "api", min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$",
        description="api, batch, cli, replay, ...",
    )
    client_version: str | None = Field(
        None, max_length=100, description="The client's feature-pipeline version (or the X-Client-Version header)."
    )


class PredictResponse(BaseModel):
    request_id: str
    model: str
    version: int
    predictions: list[list[Any]] = Field(description="One list per row (multi-output models give several values).")
    probabilities: list[list[float]] | None = Field(None, description="Per row, one probability per class (classifiers).")
    classes: list[Any] | None = Field(None, description="Class labels in the order of the probabilities.")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    detail: Any | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class FeatureOut(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool
    integer: bool
    categories: list[str]
    minimum: float | None
    maximum: float | None
    mean: float | None
    std: float | None
    missing_rate: float


class SchemaOut(BaseModel):
    features: list[FeatureOut]
    target: str
    task: Literal["classification", "regression"]
    classes: list[Any]


class ModelVersionOut(BaseModel):
    name: str
    version: int
    created_at: datetime
    task: str
    estimator: str
    artifact_sha256: str
    reference_sha256: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    aliases: list[str]
    model_schema: SchemaOut | None = Field(None, alias="schema")


class SettingsModel(BaseModel):
    log_data: bool = Field(True, description="Log the input features with each event.")
    retention_days: int | None = Field(None, ge=1, le=36500, description="Days a request's events are kept after they were logged (not after their event time: backfilled history is kept as long as live traffic).")
    nullable: list[str] = Field(
        default_factory=list, max_length=10_000,
        description="Features declared nullable after training: a null is accepted and counted as missing "
        "without a data-quality finding.",
    )


class SettingsIn(SettingsModel, _In):
    pass


class ModelInfoOut(BaseModel):
    name: str
    created_at: datetime
    settings: SettingsModel
    aliases: dict[str, int]
    latest_version: int | None


class ModelDetailOut(ModelInfoOut):
    versions: list[ModelVersionOut]


class PromoteIn(_In):
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="The version to promote; the candidate when absent."
    )
    alias: Literal["production", "candidate"] = "production"


class AliasChangeOut(BaseModel):
    name: str
    alias: str
    version: int | None
    previous_version: int | None
    changed_at: datetime
    reason: str


class TrainJsonIn(_In):
    rows: list[dict[str, Any]] = Field(
        ..., min_length=10, max_length=MAX_LIST_LENGTH, json_schema_extra={"items": ROW_SCHEMA}
    )


class TrainOut(BaseModel):
    version: ModelVersionOut
    duration_ms: float
    #: What the poisoning screens set aside: counts, reasons, and the rows (by their place in
    #: the table) left out of training. Null when screening was off.
    screening: dict[str, Any] | None = None


class EventOut(BaseModel):
    request_id: str
    row_index: int
    model_name: str
    model_version: int
    timestamp: datetime
    logged_at: datetime
    runtime_ms: float
    row_runtime_ms: float
    prediction: list[Any]
    probability: list[float] | None
    input_data_summary: dict[str, Any]
    data: dict[str, Any] | None
    request_type: str
    client_id: str | None
    fingerprint_id: str
    replayed: bool
    entity_id: str | None = None


class EventPageOut(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


class DeletedOut(BaseModel):
    request_id: str
    deleted_events: int


class RejectionOut(BaseModel):
    model_name: str
    timestamp: datetime
    client_id: str | None
    reason: str
    status: int
    message: str


class TrainingEventOut(BaseModel):
    event_id: str
    model_name: str
    model_version: int
    timestamp: datetime
    duration_ms: float
    data_summary: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any]
    client_id: str | None


class FingerprintOut(BaseModel):
    loopwatch: str
    python: str
    libraries: dict[str, str]
    artifact_sha256: str
    client_version: str | None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


def _time_text(value: Any) -> Any:
    # pydantic would also read a number as seconds since the epoch: times are ISO-8601 text here
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 time with a timezone, e.g. 2026-01-05T10:00:00Z")
    return value


#: An ISO-8601 time with a timezone, as text.
IsoTime = Annotated[AwareDatetime, BeforeValidator(_time_text)]
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
KeyText = Annotated[str, Field(min_length=1, max_length=200)]


class LabelIn(_In):
    request_id: str | None = Field(
        None, min_length=1, max_length=128, description="With row_index: the prediction's request id."
    )
    row_index: StrictInt | None = Field(None, ge=0, le=MAX_VERSION, description="The row within the request.")
    entity_id: KeyText | None = Field(
        None, description="Instead of request_id and row_index: the entity the prediction was about."
    )
    label: StrictBool | StrictInt | FiniteFloat | Annotated[StrictStr, Field(max_length=1000)] = Field(
        ..., description="The outcome: a class label or a regression target."
    )
    label_time: IsoTime = Field(..., description="When the outcome became known (ISO-8601 with a timezone).")

    @model_validator(mode="after")
    def _one_key(self) -> LabelIn:
        by_request = self.request_id is not None or self.row_index is not None
        if by_request == (self.entity_id is not None):
            raise ValueError("name the prediction by request_id with row_index, or by entity_id")
        if by_request and (self.request_id is None or self.row_index is None):
            raise ValueError("request_id and row_index go together")
        return self


class FeedbackIn(_In):
    model: str = Field(..., min_length=1, max_length=100, pattern=NAME_PATTERN,
                       description="The model the labels are for.")
    labels: list[LabelIn] = Field(
        ..., min_length=1, max_length=MAX_LIST_LENGTH, description="Labels, at most max_rows_per_request."
    )


class LabelOutcomeOut(BaseModel):
    index: int = Field(description="Position of the label in the request.")
    status: Literal["duplicate", "corrected", "unmatched"]
    request_id: str | None
    row_index: int | None
    reason: str


class FeedbackOut(BaseModel):
    stored: int
    duplicates: int
    corrected: int
    unmatched: int
    outcomes: list[LabelOutcomeOut] = Field(description="Every label that was not simply stored.")


class ObservationIn(_In):
    name: KeyText = Field(..., description="The metric, e.g. revenue or churn_rate.")
    timestamp: IsoTime = Field(..., description="The time the value is for (ISO-8601 with a timezone).")
    value: StrictInt | FiniteFloat = Field(..., description="A finite number.")
    segment: KeyText | None = Field(None, description="A segment of the business, or none for all of it.")


class BusinessMetricsIn(_In):
    observations: list[ObservationIn] = Field(..., min_length=1, max_length=MAX_LIST_LENGTH)


class WrittenOut(BaseModel):
    written: int = Field(description="Observations stored or changed; a repeat with the same value is not.")


class DelayOut(BaseModel):
    p50: float | None
    p90: float | None
    max: float | None


class CoverageWindowOut(BaseModel):
    start: datetime
    end: datetime
    predictions: int
    labelled: int
    coverage: float | None
    delay_hours: DelayOut


class CoverageOut(BaseModel):
    model: str
    window: str
    since: datetime | None
    until: datetime | None
    window_seconds: float
    predictions: int
    labelled: int
    coverage: float | None
    delay_hours: DelayOut
    windows: list[CoverageWindowOut]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in {
        404: "Not found",
        409: "Conflict",
        413: "Body or rows over the limit",
        422: "Invalid input",
        503: "Overloaded or unavailable; retry after the Retry-After header",
    }.items()
}
