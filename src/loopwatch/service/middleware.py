"""Pure ASGI middleware: a body-size limit, and request metrics by route template."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from loopwatch.records.jsonutil import dumps

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 before the app reads them.

    uvicorn sets no limit of its own, so without this a client could make a
    worker buffer any amount. The body is read here (up to the limit) and
    replayed to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        on_reject: Callable[[Scope, str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"request body larger than {self.max_bytes} bytes"
        if self.on_reject is not None:
            self.on_reject(scope, message)
        body = dumps(
            {"error": {"status": 413, "code": "payload_too_large", "message": message}}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _route_templates(app: Any) -> dict[int, str]:
    """Full path template of each route, by ``id``.

    Since FastAPI 0.137 ``include_router`` no longer copies routes with the
    prefix applied, so ``scope["route"].path`` is ``/logs`` for ``/v1/logs``.
    Older versions copy them, and their ``route.path`` is already whole.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI < 0.137
        return {}
    templates: dict[int, str] = {}
    for context in iter_route_contexts(getattr(app, "routes", [])):
        if context.path:
            templates.setdefault(id(context.original_route), context.path)
    return templates


class MetricsMiddleware:
    """Count requests and time them, labelled by route template, never by path."""

    def __init__(self, app: ASGIApp, *, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] | None = None

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return "unmatched"
        if self._templates is None:
            self._templates = _route_templates(scope.get("app"))
        return self._templates.get(id(route)) or getattr(route, "path", None) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            template = self._template(scope)
            self.metrics.requests.labels(
                route=template, method=scope.get("method", ""), status=str(status)
            ).inc()
            self.metrics.latency.labels(route=template).observe(time.perf_counter() - started)
