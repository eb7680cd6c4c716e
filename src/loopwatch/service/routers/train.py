"""POST /v1/models/{name}/train: train a new version from CSV, Parquet or JSON rows."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from loopwatch.errors import InvalidInput, LoopwatchError, UnsupportedMediaType, echo
from loopwatch.features.table_rows import validate_table_rows
from loopwatch.records.jsonutil import loads
from loopwatch.records.names import check_model_name
from loopwatch.service.schemas import ERROR_RESPONSES, ROW_SCHEMA, TrainOut
from loopwatch.service.state import ServiceState, get_state
from loopwatch.application.training import train_from_table
from loopwatch.features.tables import read_table

router = APIRouter(tags=["train"])

PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            PARQUET_TYPES[0]: {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["rows"],
                    "properties": {"rows": {"type": "array", "minItems": 10, "items": ROW_SCHEMA}},
                    "additionalProperties": False,
                }
            },
        },
    }
}


@router.post(
    "/models/{name}/train",
    response_model=TrainOut,
    status_code=201,
    responses={**ERROR_RESPONSES, 415: ERROR_RESPONSES[422] | {"description": "Unsupported media type"}},
    openapi_extra=_BODY,
    summary="Train and register a new version from a table",
    description=(
        "The body is the training table: CSV, Parquet, or JSON rows. The first version of a model "
        "becomes production; later versions become the candidate unless `alias` says otherwise."
    ),
)
async def train(
    name: str,
    request: Request,
    target: str = Query(..., min_length=1, description="The target column."),
    estimator: str | None = Query(None, description="Estimator name; the task's default when absent."),
    task: Literal["classification", "regression"] | None = Query(None),
    categorical: str | None = Query(None, description="Comma-separated numeric columns to treat as categorical."),
    test_size: float = Query(0.2, gt=0, lt=1),
    seed: int = Query(0, ge=0),
    alias: Literal["production", "candidate"] | None = Query(None),
    screen: bool = Query(True, description="Screen the rows for poisoning first and leave out those set aside "
                         "(listed in the answer's `screening`); false trains on every row."),
    content_type: str | None = Header(None),
    x_client_id: str | None = Header(None),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    check_model_name(name)
    body = await request.body()
    frame = await run_in_threadpool(_frame_from_body, body, content_type)
    categorical_columns = [c for c in (categorical or "").split(",") if c]

    def fit_and_register() -> dict[str, Any]:
        try:
            done = train_from_table(
                state.registry, name, frame, target=target, task=task, estimator=estimator,
                categorical=categorical_columns, test_size=test_size, seed=seed, alias=alias,
                client_id=x_client_id, screen=screen,
            )
        except LoopwatchError:
            raise
        except (ValueError, TypeError) as exc:
            # scikit-learn, pandas or numpy refusing the table or a parameter (a text
            # target for regression, lists in a JSON target column, a seed past 2**32-1)
            raise InvalidInput(f"cannot train on this data: {str(exc)[:300]}") from exc
        return done.to_dict()

    return await run_in_threadpool(fit_and_register)


def _frame_from_body(body: bytes, content_type: str | None) -> pd.DataFrame:
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "text/csv":
        return read_table(body, fmt="csv")
    if media in PARQUET_TYPES:
        return read_table(body, fmt="parquet")
    if media == "application/json":
        parsed = loads(body)
        if not isinstance(parsed, dict) or set(parsed) != {"rows"} or not isinstance(parsed["rows"], list):
            raise InvalidInput('the JSON body must be {"rows": [{...}, ...]}')
        return validate_table_rows(parsed["rows"], min_rows=10)
    raise UnsupportedMediaType(
        f"unsupported content type {echo(media)}: send text/csv, {PARQUET_TYPES[0]} or application/json"
    )
