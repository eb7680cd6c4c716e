"""The feedback loops: evaluation, incidents and their acknowledgement, monitoring configuration, rebaselines."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from loopwatch.application import loop_actions
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.service.routers.predict import require_json_media
from loopwatch.service.schemas import ERROR_RESPONSES, MAX_VERSION
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["loops"], responses=ERROR_RESPONSES)

_JSON: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}}}}


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, min_length=1, max_length=200, description="Who acknowledges (else X-Client-ID).")
    note: str | None = Field(None, max_length=2000, description="What is being done about it.")


class RebaselineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="The production version when absent.")
    since: datetime = Field(description="Start of the traffic that becomes the new reference (with timezone).")
    until: datetime = Field(description="End of that traffic, exclusive.")
    reason: str = Field(min_length=1, max_length=2000, description="Why the change is the new normal.")


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@router.get(
    "/models/{name}/loops",
    summary="The model's incidents and the feedback loops they call for",
    description=(
        "Evaluates the model's loops now and records the incidents found (evaluating again records "
        "nothing new), or with fresh=false answers the recorded incidents that are not resolved. "
        "Recommendations of resolved incidents are left out."
    ),
    responses=_JSON,
)
async def get_loops(
    name: str,
    fresh: bool = Query(True, description="Evaluate now (true) or answer the recorded incidents (false)."),
    since: datetime | None = Query(None, description="Event time from (inclusive), with timezone."),
    until: datetime | None = Query(None, description="Event time to (exclusive), with timezone."),
    window: str | None = Query(None, max_length=20, description="Window length (1h, 1d, 7d); the configured one when absent."),
    state: ServiceState = Depends(get_state),
) -> Response:
    data = await run_in_threadpool(
        loop_actions.loop_status, state.store, state.registry, name, now=_now(), fresh=fresh, since=since,
        until=until, window=window, summariser=state.summariser if state.settings.summaries_enabled else None,
    )
    return _json(data)


@router.get("/models/{name}/incidents", summary="The model's recorded incidents", responses=_JSON)
async def get_incidents(
    name: str,
    status: str | None = Query(None, max_length=20, description="open, acknowledged or resolved."),
    state: ServiceState = Depends(get_state),
) -> Response:
    found = await run_in_threadpool(loop_actions.list_incidents, state.store, name, status=status)
    return _json([loop_actions.incident_view(r) for r in found])


@router.post(
    "/incidents/{incident_id}/acknowledge",
    summary="Acknowledge an incident: it stays listed and is never alerted again",
    responses=_JSON,
)
async def acknowledge_incident(
    incident_id: str,
    body: AcknowledgeIn = Body(default_factory=AcknowledgeIn),
    x_client_id: str | None = Header(None, description="Who is calling (the acknowledger when by is absent)."),
    state: ServiceState = Depends(get_state),
) -> Response:
    by = body.by or (x_client_id[:200] if x_client_id else None)
    found = await run_in_threadpool(
        loop_actions.acknowledge, state.store, incident_id, by=by, at=_now(), note=body.note
    )
    return _json(loop_actions.incident_view(found))


@router.get(
    "/models/{name}/monitoring-config",
    summary="The model's monitoring configuration (the latest version, or the one asked for)",
    responses=_JSON,
)
async def get_monitoring_config(
    name: str,
    version: int | None = Query(None, ge=1, le=MAX_VERSION),
    state: ServiceState = Depends(get_state),
) -> Response:
    data = await run_in_threadpool(loop_actions.monitoring_config, state.store, name, version)
    return _json(data)


@router.put(
    "/models/{name}/monitoring-config",
    summary="Change some monitoring settings: merged onto the latest version and stored as the next",
    responses={**_JSON, 415: ERROR_RESPONSES[422] | {"description": "Unsupported media type"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object",
                "description": "Settings to change, e.g. {\"latency_budget_ms\": 50, \"webhooks\": [\"https://...\"]}",
            }}},
        }
    },
)
async def put_monitoring_config(
    name: str,
    request: Request,
    author: str | None = Query(None, max_length=200, description="Who changes it (else X-Client-ID)."),
    x_client_id: str | None = Header(None),
    state: ServiceState = Depends(get_state),
) -> Response:
    require_json_media(request)
    changes = loads(await request.body() or b"null")
    saved = await run_in_threadpool(
        loop_actions.change_monitoring_config, state.store, name, changes, at=_now(),
        author=author or (x_client_id[:200] if x_client_id else None),
    )
    data = saved.to_dict()
    return _json(data)


@router.get(
    "/models/{name}/monitoring-config/versions",
    summary="Every version of the model's monitoring configuration",
    responses=_JSON,
)
async def list_monitoring_configs(name: str, state: ServiceState = Depends(get_state)) -> Response:
    found = await run_in_threadpool(loop_actions.monitoring_config_versions, state.store, name)
    return _json([v.to_dict() for v in found])


@router.post(
    "/models/{name}/rebaseline",
    summary="Accept a period of the model's traffic as the new normal: rebuild its reference from it",
    responses=_JSON,
)
async def post_rebaseline(
    name: str, body: RebaselineIn, state: ServiceState = Depends(get_state)
) -> Response:
    done = await run_in_threadpool(
        loop_actions.rebaseline, state.registry, name, since=body.since, until=body.until,
        reason=body.reason, at=_now(), version=body.version,
    )
    return _json(done.to_dict())


@router.get("/models/{name}/rebaselines", summary="The model's rebaselines, oldest first", responses=_JSON)
async def list_rebaselines(name: str, state: ServiceState = Depends(get_state)) -> Response:
    def load() -> list[dict[str, Any]]:
        loop_actions.require_model(state.store, name)
        return [r.to_dict() for r in state.store.list_rebaselines(name)]

    return _json(await run_in_threadpool(load))
