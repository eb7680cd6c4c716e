"""POST /v1/models/{name}/events: log predictions a model made elsewhere, durably."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from loopwatch.errors import Conflict, InvalidInput, NotFound, Overloaded, PayloadTooLarge, echo
from loopwatch.application.ingestion import IngestCall
from loopwatch.service.routers.predict import JsonBodyRoute
from loopwatch.service.schemas import ERROR_RESPONSES, MAX_LIST_LENGTH
from loopwatch.service.state import ServiceState, get_state

#: The event object as documented; the route checks each field itself so that every
#: problem of a batch is reported at once, with its event's position.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["features", "prediction"],
    "properties": {
        "request_id": {"type": "string", "maxLength": 200},
        "row_index": {"type": "integer", "minimum": 0},
        "timestamp": {"type": "string", "format": "date-time"},
        "features": {"type": "object"},
        "prediction": {},
        "probabilities": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "number"}}]},
        "entity_id": {"type": "string", "maxLength": 200},
        "model_version": {"type": "string", "maxLength": 100},
        "client_version": {"type": "string", "maxLength": 100},
        "latency_ms": {"type": "number", "minimum": 0},
    },
    "additionalProperties": False,
}
EVENT_FIELDS = frozenset(EVENT_SCHEMA["properties"])


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(
        ..., min_length=1, max_length=MAX_LIST_LENGTH, json_schema_extra={"items": EVENT_SCHEMA},
        description="Predictions made elsewhere, each with the features it was made from.",
    )


class IngestResponse(BaseModel):
    model: str
    accepted: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events already stored with the same content (not stored again).")
    versions: dict[str, int] = Field(description="Each external version label sent, and the version it is.")


router = APIRouter(tags=["ingest"], route_class=JsonBodyRoute)


@router.post(
    "/models/{name}/events",
    response_model=IngestResponse,
    responses={**ERROR_RESPONSES, 415: ERROR_RESPONSES[422] | {"description": "Not JSON"}},
    summary="Log predictions made elsewhere as durable events",
    description=(
        "Each event is validated as a predict row is; a batch with a bad event is refused whole "
        "(422, every problem listed). The answer comes after COMMIT. An event whose "
        "(request_id, row_index) is stored with the same content is a duplicate; with other "
        "content the batch is a 409."
    ),
)
async def ingest(
    name: str,
    body: IngestRequest,
    state: ServiceState = Depends(get_state),
    x_client_id: str | None = Header(None, description="Who is sending; the key's id when auth is on."),
) -> IngestResponse:
    # with auth on, the middleware has replaced any X-Client-ID by the key's id
    client_id = x_client_id[:200] if x_client_id else None
    unknown = [(i, k) for i, e in enumerate(body.events) for k in e if k not in EVENT_FIELDS]
    if unknown:
        problems = [{"event": i, "field": str(k)[:100], "problem": "unknown field"} for i, k in unknown[:20]]
        raise InvalidInput(f"event {unknown[0][0]}: unknown field {echo(str(unknown[0][1])[:100])}",
                           detail={"problems": problems})
    ingestor = state.ingestor
    assert ingestor is not None
    try:
        batch = await run_in_threadpool(
            ingestor.prepare, IngestCall(model_name=name, events=body.events, client_id=client_id)
        )
    except (InvalidInput, PayloadTooLarge, NotFound) as exc:
        state.reject(name, client_id, exc.code, exc.status, exc.message)
        raise
    try:
        future = state.writer.submit_ingest(batch)
    except Overloaded:
        state.metrics.overloaded.inc()
        raise
    outcome = await asyncio.wrap_future(future)
    if outcome.status == "conflict":
        raise Conflict(
            "events already stored with different content under the same (request_id, row_index)",
            detail={"conflicts": [{"request_id": r, "row_index": i} for r, i in outcome.conflicts]},
        )
    return IngestResponse(model=batch.model_name, accepted=outcome.accepted, duplicates=outcome.duplicates,
                          versions=batch.versions)
