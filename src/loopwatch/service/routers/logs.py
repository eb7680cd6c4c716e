"""The prediction log: query, export, delete by request id; rejections; training runs."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from loopwatch.records.period import Period
from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.application.prediction import MAX_REQUEST_ID_LENGTH, SHADOW_SUFFIX
from loopwatch.application.summaries import delete_request as delete_and_forget
from loopwatch.stores.base import EventQuery
from loopwatch.stores.export import export_schemas, ndjson_lines, write_parquet
from loopwatch.service.schemas import (
    ERROR_RESPONSES,
    MAX_VERSION,
    DeletedOut,
    EventPageOut,
    FingerprintOut,
    RejectionOut,
    TrainingEventOut,
)
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["logs"], responses=ERROR_RESPONSES)

#: Page size when none is asked for (or max_page_size, when that is smaller).
DEFAULT_PAGE_SIZE = 100


def _page_size(limit: int | None, state: ServiceState) -> int:
    if limit is None:
        return min(DEFAULT_PAGE_SIZE, state.settings.max_page_size)
    if limit > state.settings.max_page_size:
        raise InvalidInput(f"limit must be at most {state.settings.max_page_size}")
    return limit


def event_query(
    model: str | None = Query(None, description="Model name."),
    version: int | None = Query(None, ge=1, le=MAX_VERSION),
    since: datetime | None = Query(None, description="Event time from (inclusive), with timezone."),
    until: datetime | None = Query(None, description="Event time to (exclusive), with timezone."),
    request_id: str | None = Query(None, max_length=MAX_REQUEST_ID_LENGTH + len(SHADOW_SUFFIX)),
    client_id: str | None = Query(None, max_length=200),
    request_type: str | None = Query(None, max_length=40),
    limit: int | None = Query(
        None, ge=1, description="Page size (default 100), at most the service's max_page_size."
    ),
    cursor: str | None = Query(None, max_length=1000, description="next_cursor of the previous page."),
    state: ServiceState = Depends(get_state),
) -> EventQuery:
    limit = _page_size(limit, state)
    period = Period(since=since, until=until)
    return EventQuery(
        model_name=model,
        model_version=version,
        since=period.since,
        until=period.until,
        request_id=request_id,
        client_id=client_id,
        request_type=request_type,
        limit=limit,
        cursor=cursor,
    )


@router.get("/logs", response_model=EventPageOut, summary="Query prediction events, a page at a time")
async def query_logs(
    query: EventQuery = Depends(event_query), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    page = await run_in_threadpool(state.store.query_events, query)
    return page.to_dict()


@router.get(
    "/logs/export",
    summary="Export matching events as NDJSON (streamed, as logged) or typed Parquet (shadows left out by default)",
    responses={200: {"content": {"application/x-ndjson": {}, "application/vnd.apache.parquet": {}}}},
)
async def export_logs(
    format: Literal["ndjson", "parquet"] = Query("ndjson"),
    include_shadow: bool = Query(
        False, description="Parquet: keep the candidate's shadow events (left out by default; NDJSON keeps them)."
    ),
    query: EventQuery = Depends(event_query),
    state: ServiceState = Depends(get_state),
) -> Any:
    full = EventQuery(**{**query.__dict__, "limit": state.settings.max_page_size})
    if format == "parquet":
        handle = tempfile.NamedTemporaryFile(suffix=".parquet", delete=False)
        handle.close()
        path = Path(handle.name)

        def write() -> None:
            schemas = export_schemas(state.store, model_name=query.model_name, model_version=query.model_version)
            write_parquet(state.store.iter_events(full), path, schemas=schemas,
                          include_shadow=include_shadow or query.request_type == "shadow")

        try:
            await run_in_threadpool(write)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return FileResponse(
            path,
            media_type="application/vnd.apache.parquet",
            filename="events.parquet",
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    def lines() -> Iterator[bytes]:
        yield from ndjson_lines(state.store.iter_events(full))

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.delete(
    "/logs/requests/{request_id}",
    response_model=DeletedOut,
    summary="Delete a request and its events (erasure of personal data)",
)
async def delete_request(request_id: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    deleted = await run_in_threadpool(delete_and_forget, state.store, state.summariser, request_id)
    if deleted == 0:
        raise NotFound(f"no logged request with id {echo(request_id)}")
    return {"request_id": request_id, "deleted_events": deleted}


@router.get("/rejections", response_model=list[RejectionOut], summary="Refused predict requests")
async def rejections(
    model: str | None = Query(None),
    since: datetime | None = Query(None),
    limit: int | None = Query(None, ge=1, description="At most the service's max_page_size."),
    state: ServiceState = Depends(get_state),
) -> list[dict[str, Any]]:
    limit = _page_size(limit, state)
    found = await run_in_threadpool(state.store.query_rejections, model, Period(since=since).since, limit)
    return [r.to_dict() for r in found]


@router.get("/training-events", response_model=list[TrainingEventOut], summary="Training runs")
async def training_events(
    model: str | None = Query(None), state: ServiceState = Depends(get_state)
) -> list[dict[str, Any]]:
    found = await run_in_threadpool(state.store.training_events, model)
    return [e.to_dict() for e in found]


@router.get(
    "/fingerprints/{fingerprint_id}", response_model=FingerprintOut, summary="A software fingerprint"
)
async def fingerprint(fingerprint_id: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    found = await run_in_threadpool(state.store.get_fingerprint, fingerprint_id)
    if found is None:
        raise NotFound(f"no fingerprint {echo(fingerprint_id)}")
    return found.to_dict()
