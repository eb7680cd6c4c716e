"""One JSON error shape for every failure, carrying its HTTP status.

``{"error": {"status": 422, "code": "schema_violation", "message": "...", "detail": {...}}}``

Validation errors never echo the offending input back: a hostile value (a
bare NaN, a huge string) must not end up in the response or break its encoder.
Every answer goes through :func:`error_response`, which caps the message and each
text in the detail (:func:`loopwatch.errors.cap_message`), so no error repeats more
than a few hundred characters of what was sent, whichever path raised it.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopwatch.errors import InvalidInput, LoopwatchError, cap_detail, cap_message, clip
from loopwatch.records.jsonutil import dumps
from loopwatch.records.names import check_model_name

_log = logging.getLogger("loopwatch.service")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "overloaded",
}


def error_response(
    status: int, code: str, message: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"status": status, "code": code, "message": cap_message(message)}
    if detail is not None:
        body["detail"] = cap_detail(detail)
    return Response(
        dumps({"error": body}), status_code=status, media_type="application/json", headers=headers
    )


def from_loopwatch_error(exc: LoopwatchError) -> Response:
    headers = None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:  # 503 when overloaded, 429 past a key's limit
        headers = {"Retry-After": str(retry_after)}
    if exc.status >= 500:
        _log.error("%s: %s", exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.detail, headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoopwatchError)
    async def _loopwatch(_: Request, exc: LoopwatchError) -> Response:
        return from_loopwatch_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                # a location names what was sent (a body key may be any text): capped like any echo
                "location": [clip(str(part)) for part in err.get("loc", ())],
                "problem": str(err.get("msg", "invalid")) + _json_reason(err),
            }
            for err in exc.errors()[:20]
        ]
        first = problems[0] if problems else {"location": [], "problem": "invalid request"}
        message = f"{'.'.join(first['location']) or 'body'}: {first['problem']}"
        _count_predict_rejection(request, "invalid_input", 422, message)
        return error_response(422, "invalid_input", message, {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's own body parser met bytes that are not UTF-8 JSON: bad input like any other
            return error_response(422, "unreadable_data", "the body is not valid JSON: it must be UTF-8")
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        _log.exception("unexpected error")
        return error_response(500, "internal_error", "internal error; see the server log")


async def refuse_nul_characters(request: Request) -> None:
    """App-wide dependency: a NUL in the path or query is a 422 before any route runs.

    ``async`` though it awaits nothing: FastAPI runs a plain function dependency in the
    thread pool, a hop per request that costs more than the check.

    PostgreSQL text cannot hold NUL, so such a model name, request id or filter
    would otherwise reach the database and come back as a 500.
    """
    if "\x00" in request.scope.get("path", "") or any(
        "\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()
    ):
        raise InvalidInput("the URL must not contain NUL characters")


async def refuse_unsafe_model_names(request: Request) -> None:
    """App-wide dependency: a model name in the path (``/v1/models/{name}/...``) or in a
    ``model`` filter must follow the name rule (:mod:`loopwatch.records.names`), else 422.

    It runs after routing, so it sees the name as the route decoded it: ``%2e%2e`` is
    ``..`` here and refused, on every route, whatever the model does or does not exist.
    """
    name = request.path_params.get("name")
    if name is not None:
        check_model_name(name)
    for model in request.query_params.getlist("model"):
        check_model_name(model, what="model filter")


def _json_reason(err: dict[str, Any]) -> str:
    """Why a body is not JSON (a NaN literal, a lone surrogate, too deep), from the parser."""
    if err.get("type") != "json_invalid":
        return ""
    reason = (err.get("ctx") or {}).get("error")
    return f": {str(reason)[:200]}" if reason else ""


def _count_predict_rejection(request: Request, reason: str, status: int, message: str) -> None:
    from loopwatch.service.state import CLIENT_ID_HEADER, predict_model_name

    name = predict_model_name(request.url.path)
    state = getattr(request.app.state, "loopwatch", None)
    if name is not None and state is not None:
        state.reject(name, request.headers.get(CLIENT_ID_HEADER), reason, status, message)
