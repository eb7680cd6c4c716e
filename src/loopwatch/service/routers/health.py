"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from loopwatch.service.schemas import HealthOut
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=HealthOut, summary="Liveness: the process answers")
async def live() -> dict[str, Any]:
    return {"status": "ok", "checks": {}}


@router.get(
    "/health/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Not ready"}},
    summary="Readiness: the database answers and the log writer runs",
)
async def ready(state: ServiceState = Depends(get_state)) -> Any:
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(state.store.ping)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = str(exc)[:200]
    checks["log_writer"] = "ok" if state.writer.alive else "stopped"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(state: ServiceState = Depends(get_state)) -> Response:
    state.metrics.queue_depth.set(state.writer.depth)
    # the scheduled evaluations are read from the store: off the event loop
    body, content_type = await run_in_threadpool(state.metrics.render)
    return Response(body, media_type=content_type)
