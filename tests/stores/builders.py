"""Builders for the records the store conformance suite writes."""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.records import Fingerprint, LoggedRequest, Rejection, TrainingEvent
from loopwatch.records.jsonutil import dumps

UTC = timezone.utc
#: A fixed, microsecond-precise moment the suite's times are built around.
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)

_ids = itertools.count(1)


def fingerprint(artifact_sha256: str = "a" * 64, client_version: str | None = None) -> Fingerprint:
    return Fingerprint(
        loopwatch="0.1.0",
        python="3.12.1",
        libraries={"scikit-learn": "1.5.0", "numpy": "2.0.0"},
        artifact_sha256=artifact_sha256,
        client_version=client_version,
    )


def write_logged_at(store: Any, moment: datetime, requests: Sequence[LoggedRequest]) -> None:
    """Write ``requests`` as if the store's clock read ``moment`` when it committed them
    (their ``logged_at``); their event times are their own."""
    import loopwatch.stores.sql as sql

    original = sql.utcnow
    sql.utcnow = lambda: moment
    try:
        assert {o.status for o in store.write_requests(requests)} == {"stored"}
    finally:
        sql.utcnow = original


def body_sha(body: Any) -> str:
    return hashlib.sha256(dumps(body)).hexdigest()


def make_request(
    request_id: str | None = None,
    *,
    n_rows: int = 3,
    model_name: str = "iris",
    model_version: int = 1,
    request_type: str = "api",
    client_id: str | None = "client-a",
    received_at: datetime = T0,
    timestamps: Sequence[datetime] | None = None,
    predictions: list[list[Any]] | None = None,
    probabilities: list[list[float]] | None | str = "default",
    data: list[dict[str, Any]] | None | str = "default",
    row_summaries: list[dict[str, Any]] | None = None,
    request_summary: dict[str, Any] | None = None,
    body: Any = None,
    response: bytes | None = None,
    runtime_ms: float = 12.5,
    replayed: bool | None = None,
    fp: Fingerprint | None = None,
    entity_ids: Sequence[str | None] | None = None,
) -> LoggedRequest:
    """A realistic LoggedRequest; every field can be overridden."""
    if request_id is None:
        request_id = f"req-{next(_ids):06d}"
    if predictions is None:
        predictions = [[f"class-{i % 3}"] for i in range(n_rows)]
    n = len(predictions)
    if probabilities == "default":
        probabilities = [[0.25, 0.75] if i % 2 else [0.9, 0.1] for i in range(n)]
    if data == "default":
        data = [{"sepal_length": 5.0 + i / 10, "species_hint": f"h{i}", "missing": None} for i in range(n)]
    if row_summaries is None:
        row_summaries = [{"missing": ["missing"]} if i % 2 else {"missing": []} for i in range(n)]
    if request_summary is None:
        request_summary = {"rows": n, "columns": 3, "missing": n}
    if body is None:
        body = {"request_id": request_id, "rows": n}
    if response is None:
        response = dumps({"request_id": request_id, "predictions": predictions})
    return LoggedRequest(
        request_id=request_id,
        model_name=model_name,
        model_version=model_version,
        request_type=request_type,
        client_id=client_id,
        fingerprint=fp or fingerprint(),
        body_sha256=body_sha(body),
        response=response,
        runtime_ms=runtime_ms,
        received_at=received_at,
        replayed=(timestamps is not None) if replayed is None else replayed,
        predictions=predictions,
        probabilities=probabilities,  # type: ignore[arg-type]
        request_summary=request_summary,
        row_summaries=row_summaries,
        data=data,  # type: ignore[arg-type]
        timestamps=list(timestamps) if timestamps is not None else None,
        entity_ids=list(entity_ids) if entity_ids is not None else None,
    )


def expected_events(request: LoggedRequest) -> list[dict[str, Any]]:
    """What a store must give back for ``request``, minus ``logged_at``."""
    return [
        {
            "request_id": request.request_id,
            "row_index": i,
            "model_name": request.model_name,
            "model_version": request.model_version,
            "timestamp": request.row_timestamp(i),
            "runtime_ms": request.runtime_ms,
            "row_runtime_ms": request.runtime_ms / request.n_rows,
            "prediction": request.predictions[i],
            "probability": None if request.probabilities is None else request.probabilities[i],
            "input_data_summary": request.row_summaries[i],
            "data": None if request.data is None else request.data[i],
            "request_type": request.request_type,
            "client_id": request.client_id,
            "fingerprint_id": request.fingerprint.id,
            "replayed": request.replayed,
            "entity_id": None if request.entity_ids is None else request.entity_ids[i],
        }
        for i in range(request.n_rows)
    ]


def event_dict(event: Any) -> dict[str, Any]:
    """A read-back PredictionEvent as a dict without ``logged_at``."""
    out = {name: getattr(event, name) for name in event.__dataclass_fields__ if name != "logged_at"}
    return out


def schema(*features: str, task: str = "classification") -> FeatureSchema:
    return FeatureSchema(
        features=tuple(
            Feature(name=f, kind="numeric", nullable=i % 2 == 1, minimum=0.0, maximum=10.0, mean=5.0, std=1.5)
            for i, f in enumerate(features or ("sepal_length", "petal_width"))
        ),
        target="species",
        task=task,  # type: ignore[arg-type]
        classes=("setosa", "versicolor") if task == "classification" else (),
    )


def version_kwargs(
    name: str,
    *,
    artifact: bytes | None = None,
    reference: bytes | None = None,
    created_at: datetime = T0,
    feature_schema: FeatureSchema | None = None,
) -> dict[str, Any]:
    """Keyword arguments for Store.create_model_version."""
    artifact = artifact if artifact is not None else b"model:" + name.encode() + bytes(range(256))
    reference = reference if reference is not None else b"reference\x00\xff" + name.encode()
    return {
        "name": name,
        "created_at": created_at,
        "task": "classification",
        "estimator": "logistic_regression",
        "artifact": artifact,
        "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
        "reference": reference,
        "reference_sha256": hashlib.sha256(reference).hexdigest(),
        "schema": (feature_schema or schema()).to_dict(),
        "metrics": {"accuracy": 0.93, "log_loss": 0.21},
        "data_summary": {"rows": 150, "columns": 4},
        "params": {"C": 1.0, "max_iter": 1000},
    }


def rejection(
    model_name: str, at: datetime, *, reason: str = "schema_violation", client_id: str | None = "c1"
) -> Rejection:
    return Rejection(
        model_name=model_name,
        timestamp=at,
        client_id=client_id,
        reason=reason,
        status=422,
        message=f"{reason} at {at.isoformat()}",
    )


def training_event(event_id: str, model_name: str, version: int, at: datetime) -> TrainingEvent:
    return TrainingEvent(
        event_id=event_id,
        model_name=model_name,
        model_version=version,
        timestamp=at,
        duration_ms=1234.5,
        data_summary={"rows": 150, "target": {"setosa": 50}},
        metrics={"accuracy": 0.9},
        params={"C": 0.5},
        client_id="trainer",
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)
