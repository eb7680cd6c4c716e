"""Feedback: labels for logged predictions, business metrics, and label coverage.

``POST /v1/feedback`` stores labels (each on the prediction it names, by
request id and row or by entity id), ``POST /v1/business-metrics`` stores
business observations, and ``GET /v1/models/{name}/labels/coverage`` says,
per window of prediction time, how many predictions have a label and how
late the labels came. Writes run in the thread pool, never on the event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopwatch.errors import InvalidInput, PayloadTooLarge
from loopwatch.feedback.bookkeeping import label_coverage, summarize_outcomes
from loopwatch.records import BusinessObservation, Label, LabelOutcome
from loopwatch.records.period import Period
from loopwatch.records.jsonutil import dumps, utc_iso
from loopwatch.service.routers.predict import JsonBodyRoute
from loopwatch.service.schemas import (
    ERROR_RESPONSES,
    BusinessMetricsIn,
    CoverageOut,
    FeedbackIn,
    FeedbackOut,
    WrittenOut,
)
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["feedback"], route_class=JsonBodyRoute, responses=ERROR_RESPONSES)
read_router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

_JSON_ONLY: dict[int | str, dict[str, Any]] = {415: ERROR_RESPONSES[422] | {"description": "Not JSON"}}


def _client(x_client_id: str | None) -> str | None:
    return x_client_id[:200] if x_client_id else None


def _check_batch(n: int, state: ServiceState, what: str) -> None:
    limit = state.settings.max_rows_per_request
    if n > limit:
        raise PayloadTooLarge(f"{n} {what} sent; at most {limit} per request")


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    responses=_JSON_ONLY,
    summary="Store labels: the outcomes of logged predictions",
    description=(
        "Each label names its prediction by request_id with row_index, or by entity_id (the "
        "latest prediction for that entity made at or before label_time). The same value again "
        "is a duplicate and changes nothing; another value corrects the label and the old one "
        "stays in its history. Labels that match no logged prediction are reported back as "
        "unmatched and not stored; the request still succeeds."
    ),
)
async def post_feedback(
    body: FeedbackIn,
    state: ServiceState = Depends(get_state),
    x_client_id: str | None = Header(None, description="The feedback source."),
) -> Response:
    _check_batch(len(body.labels), state, "labels")
    client_id = _client(x_client_id)
    received_at = datetime.now(timezone.utc)
    labels = [
        Label(
            model_name=body.model,
            label=item.label,
            label_time=item.label_time,
            request_id=item.request_id,
            row_index=item.row_index,
            entity_id=item.entity_id,
            client_id=client_id,
            received_at=received_at,
        )
        for item in body.labels
    ]

    def write() -> list[LabelOutcome]:
        state.store.get_model_settings(body.model)  # NotFound (404) for an unknown model
        return state.store.write_labels(labels)

    outcomes = await run_in_threadpool(write)
    return Response(dumps(summarize_outcomes(outcomes)), media_type="application/json")


@router.post(
    "/business-metrics",
    response_model=WrittenOut,
    responses=_JSON_ONLY,
    summary="Store business metric observations",
    description=(
        "An observation is identified by name, timestamp and segment: the same value again "
        "changes nothing, another value replaces it."
    ),
)
async def post_business_metrics(
    body: BusinessMetricsIn,
    state: ServiceState = Depends(get_state),
    x_client_id: str | None = Header(None, description="Who sends the metrics."),
) -> dict[str, Any]:
    _check_batch(len(body.observations), state, "observations")
    client_id = _client(x_client_id)
    received_at = datetime.now(timezone.utc)
    observations = [
        BusinessObservation(
            name=o.name,
            timestamp=o.timestamp,
            value=o.value,
            segment=o.segment,
            client_id=client_id,
            received_at=received_at,
        )
        for o in body.observations
    ]
    written = await run_in_threadpool(state.store.write_business_metrics, observations)
    return {"written": written}


@read_router.get(
    "/models/{name}/labels/coverage",
    response_model=CoverageOut,
    summary="Label coverage and label delay per window of prediction time",
)
async def labels_coverage(
    name: str,
    window: str = Query("1d", max_length=20, description="1h, 1d, 7d or 1w."),
    since: datetime | None = Query(None, description="Prediction time from (inclusive), with timezone."),
    until: datetime | None = Query(None, description="Prediction time to (exclusive), with timezone."),
    state: ServiceState = Depends(get_state),
) -> Response:
    from loopwatch.application.monitoring.windows import WindowSpec  # monitoring code loads on first use

    spec = WindowSpec.parse(window)
    if spec.length is None:
        raise InvalidInput("label coverage needs a window of time (1h, 1d, 7d, 1w), not count:N")
    Period(since=since, until=until)
    length = spec.length

    def compute() -> dict[str, Any]:
        state.store.get_model_settings(name)  # NotFound (404) for an unknown model
        counts = state.store.count_events_by_window(name, length=length, since=since, until=until)
        labels = (
            (label.prediction_time, label.label_time)
            for label in state.store.iter_labels(name, since=since, until=until, by="prediction_time")
        )
        coverage = label_coverage(counts, labels, length=length)
        return {
            "model": name,
            "window": window,
            "since": None if since is None else utc_iso(since),
            "until": None if until is None else utc_iso(until),
            **coverage.to_dict(),
        }

    return Response(dumps(await run_in_threadpool(compute)), media_type="application/json")
