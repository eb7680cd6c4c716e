"""POST /v1/models/{name}/register: a model fitted elsewhere, or a monitor-only model.

One JSON body (the reference and holdout as rows, the artifact as base64 skops bytes),
so that one request carries all of a registration and the body limit bounds it. The
types an artifact may hold beyond scikit-learn's are the service's
``LOOPWATCH_TRUSTED_TYPES`` and nothing else: the body has no field for them (an
unknown field is a 422), so an admin key cannot make the service load code that whoever
runs it did not list.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from loopwatch.errors import InvalidInput, LoopwatchError
from loopwatch.features.table_rows import validate_table_rows
from loopwatch.records.names import check_model_name
from loopwatch.registry.registration import register_artifact, register_monitor_only
from loopwatch.service.schemas import ERROR_RESPONSES, MAX_LIST_LENGTH, ROW_SCHEMA, ModelVersionOut
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["register"])

_ROWS: dict[str, Any] = {"items": ROW_SCHEMA}
_NAMES: list[Any] = Field(default_factory=list, max_length=1000)


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact: str | None = Field(
        None, description="The fitted model as a skops file, base64. Absent for a monitor-only model.")
    reference: list[dict[str, Any]] = Field(
        ..., min_length=10, max_length=MAX_LIST_LENGTH, json_schema_extra=_ROWS,
        description="Reference rows: the features, the target where known, and for a monitor-only model "
        "the external model's predictions and probabilities.")
    holdout: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_LIST_LENGTH, json_schema_extra=_ROWS,
        description="Rows the model was not fitted on, to measure it and calibrate the estimators.")
    target: str | None = Field(None, min_length=1, description="The label column; absent when there are none.")
    task: Literal["classification", "regression"] | None = None
    categorical: list[str] = _NAMES
    nullable: list[str] = _NAMES
    exclude: list[str] = Field(default_factory=list, max_length=1000,
                               description="Columns that are not features (ids, times).")
    prediction_column: str | None = Field(None, description="Monitor-only: the external model's prediction.")
    probability_columns: list[str] = _NAMES
    probability_prefix: str | None = None
    classes: list[str | int | float | bool] = _NAMES
    alias: Literal["production", "candidate"] | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)


class RegisterOut(BaseModel):
    version: ModelVersionOut


@router.post(
    "/models/{name}/register",
    response_model=RegisterOut,
    status_code=201,
    responses=ERROR_RESPONSES,
    summary="Register a model fitted elsewhere, or a monitor-only model",
    description=(
        "With `artifact`, a fitted scikit-learn compatible model saved with skops; it may hold types "
        "beyond scikit-learn's only when the service lists them in LOOPWATCH_TRUSTED_TYPES (else 422 "
        "naming them). Without it, `prediction_column` (and for a classifier the probabilities) "
        "make a monitor-only version, whose predictions arrive at /v1/models/{name}/events."
    ),
)
async def register(
    name: str,
    body: RegisterIn,
    x_client_id: str | None = Header(None),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    check_model_name(name)
    if (body.artifact is None) == (body.prediction_column is None):
        raise InvalidInput("send either `artifact` (a fitted model) or `prediction_column` (monitor-only)")

    def build() -> dict[str, Any]:
        reference = validate_table_rows(body.reference, min_rows=10)
        holdout = validate_table_rows(body.holdout, min_rows=10) if body.holdout else None
        shared: dict[str, Any] = {
            "reference": reference, "target": body.target, "task": body.task, "categorical": body.categorical,
            "nullable": body.nullable, "exclude": body.exclude, "alias": body.alias, "client_id": x_client_id,
            "seed": body.seed,
        }
        try:
            if body.artifact is not None:
                version = register_artifact(
                    state.registry, name, _decoded(body.artifact), holdout=holdout,
                    trust=state.settings.trusted_type_names, via="service", **shared)
            else:
                if holdout is not None:
                    raise InvalidInput("a monitor-only model has no holdout: its reference carries the labels")
                version = register_monitor_only(
                    state.registry, name, prediction_column=body.prediction_column or "",
                    probability_columns=body.probability_columns, probability_prefix=body.probability_prefix,
                    classes=body.classes, **shared)
        except LoopwatchError:
            raise
        except (ValueError, TypeError) as exc:  # numpy, pandas or the model refusing the rows
            raise InvalidInput(f"cannot register this model: {str(exc)[:300]}") from exc
        return {"version": version.to_dict()}

    return await run_in_threadpool(build)


def _decoded(artifact: str) -> bytes:
    try:
        return base64.b64decode(artifact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("`artifact` must be the skops file in base64") from exc
