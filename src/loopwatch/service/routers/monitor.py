"""GET /v1/models/{name}/monitor: each window's drift report over the logged events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from loopwatch.records.period import Period
from loopwatch.records.jsonutil import dumps
from loopwatch.service.schemas import ERROR_RESPONSES
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["monitor"], responses=ERROR_RESPONSES)


@router.get(
    "/models/{name}/monitor",
    summary="Drift, outlier and data-quality reports per window of the model's logged events",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def monitor_model(
    name: str,
    window: str = Query("1d", max_length=20, description="1h, 1d, 7d, 1w or count:N"),
    since: datetime | None = Query(None, description="Event time from (inclusive), with timezone."),
    until: datetime | None = Query(None, description="Event time to (exclusive), with timezone."),
    version: int | None = Query(None, ge=1),
    segment: str | None = Query(None, max_length=200),
    full: bool = Query(False, description="Include every statistic of every window."),
    format: str = Query("json", pattern="^(json|html)$"),
    state: ServiceState = Depends(get_state),
) -> Any:
    from loopwatch.drift.html import render_monitor
    from loopwatch.application.monitoring import monitor

    Period(since=since, until=until)
    result = await run_in_threadpool(
        monitor, state.store, state.registry, name, window=window, since=since, until=until,
        version=version, segment=segment,
        # with summaries on, time windows are read from them, not the log (docs/summaries.md)
        summariser=state.summariser if state.settings.summaries_enabled else None,
    )
    if format == "html":
        return HTMLResponse(render_monitor(result.to_dict()))
    return Response(dumps(result.to_dict(full=full)), media_type="application/json")
