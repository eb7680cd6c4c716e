"""Pydantic input and output schemas of the HTTP API (kept apart, as inputs and outputs differ)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Version numbers are INTEGER columns; larger ones cannot even be bound as SQLite parameters.
MAX_VERSION = 2**31 - 1
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]

ROW_SCHEMA = {
    "type": "object",
    "description": "One row: feature name to value. Numbers for numeric features, strings "
    "for categorical ones, null only for features the schema declares nullable.",
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_In):
    rows: list[dict[str, Any]] = Field(
        ..., min_length=1, json_schema_extra={"items": ROW_SCHEMA}, description="Rows to predict."
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
        None, description="Event time per row; overrides timestamp."
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
    retention_days: int | None = Field(None, ge=1, le=36500, description="Days events are kept.")


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
    rows: list[dict[str, Any]] = Field(..., min_length=10, json_schema_extra={"items": ROW_SCHEMA})


class TrainOut(BaseModel):
    version: ModelVersionOut
    duration_ms: float


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
