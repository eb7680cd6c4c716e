"""POST /v1/models/{name}/predict: validate, predict, commit the events, then answer."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from loopwatch.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    UnsupportedMediaType,
    echo,
)
from loopwatch.records.ingest import INGESTED_REQUEST_TYPE
from loopwatch.application.prediction import PredictCall, check_client_request_id, new_request_id
from loopwatch.service.errors import refuse_nul_characters, refuse_unsafe_model_names
from loopwatch.service.schemas import ERROR_RESPONSES, PredictRequest, PredictResponse
from loopwatch.service.state import CLIENT_ID_HEADER, ServiceState, get_state


class _OrjsonRequest(Request):
    """Parse the body with orjson, not the standard library: NaN/Infinity literals,
    lone surrogates (which nothing downstream can encode), numbers beyond a double
    and nesting deeper than 1024 are then JSON errors (422) instead of values that
    surface later as a 400 or a 500."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


def require_json_media(request: Request) -> None:
    """A 415 unless the body is declared JSON (``application/json`` or ``application/*+json``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"unsupported content type {echo(media[:100])}: send application/json")


class StrictJsonRoute(APIRoute):
    """Predict takes JSON only: another media type is a 415 (and a counted rejection)."""

    #: Count a refused body as a rejection of the model in the path (predict's data quality).
    count_rejections = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            # the URL first, as the app's dependencies do on every other route
            await refuse_nul_characters(request)
            await refuse_unsafe_model_names(request)
            try:
                require_json_media(request)
            except UnsupportedMediaType as exc:
                state: ServiceState | None = getattr(request.app.state, "loopwatch", None)
                if state is not None and self.count_rejections:
                    state.reject(
                        str(request.path_params.get("name", "")),
                        request.headers.get(CLIENT_ID_HEADER),
                        exc.code,
                        exc.status,
                        exc.message,
                    )
                raise
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return strict


class JsonBodyRoute(StrictJsonRoute):
    """JSON only, parsed as strictly as predict's, for writes that are not predictions."""

    count_rejections = False


router = APIRouter(tags=["predict"], route_class=StrictJsonRoute)


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse,
    responses={**ERROR_RESPONSES, 415: ERROR_RESPONSES[422] | {"description": "Not JSON"}},
    summary="Predict rows and log each as a durable event",
    description=(
        "Rows are validated against the version's feature schema. The response is sent only "
        "after the request's events are committed. A retry with the same X-Request-ID and the "
        "same body returns the stored response and logs nothing new; the same id with another "
        "body is a 409."
    ),
)
async def predict(
    name: str,
    body: PredictRequest,
    request: Request,
    state: ServiceState = Depends(get_state),
    x_request_id: str | None = Header(None, description="Correlation id; generated when absent."),
    x_client_id: str | None = Header(None, description="Who is calling."),
    x_client_version: str | None = Header(None, description="The client's pipeline version."),
) -> Response:
    client_id = x_client_id[:200] if x_client_id else None
    try:
        if body.request_type == INGESTED_REQUEST_TYPE:  # only POST .../events logs those
            raise InvalidInput("request_type 'ingested' is kept for events logged through /events")
        request_id = check_client_request_id(x_request_id) if x_request_id else new_request_id()
        call = PredictCall(
            model_name=name,
            rows=body.rows,
            version=body.version,
            request_id=request_id,
            client_id=client_id,
            client_version=x_client_version or body.client_version,
            request_type=body.request_type,
            timestamp=body.timestamp,
            timestamps=body.timestamps,
            entity_ids=body.entity_ids,
        )
        logged = await run_in_threadpool(state.predictor.predict, call)
    except (InvalidInput, PayloadTooLarge, NotFound) as exc:
        state.reject(name, client_id, exc.code, exc.status, exc.message)
        raise
    headers = {"X-Request-ID": request_id}
    if not state.settings.logging_enabled:
        return Response(logged.response, media_type="application/json", headers=headers)
    try:
        future = state.writer.submit(logged)
    except Overloaded:
        state.metrics.overloaded.inc()
        raise
    outcome = await asyncio.wrap_future(future)
    if outcome.status == "conflict":
        raise Conflict(
            f"request id {echo(request_id)} was already used with a different body",
            detail={"request_id": request_id},
        )
    if outcome.status == "duplicate":
        headers["X-Idempotent-Replay"] = "true"
    else:
        state.metrics.predictions.inc(logged.n_rows)
        if state.shadow is not None and _has_candidate(state, name, logged.model_version):
            state.shadow.submit(logged, body.rows, client_version=x_client_version or body.client_version)
    return Response(outcome.response, media_type="application/json", headers=headers)


def _has_candidate(state: ServiceState, name: str, served: int) -> bool:
    """Whether a candidate other than the served version exists (alias lookups are cached for a
    second, so this costs a dictionary lookup on almost every request)."""
    candidate = state.registry.aliases(name).get("candidate")
    return candidate is not None and candidate != served
