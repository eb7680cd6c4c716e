"""API keys at the service's door: who is calling (401), may they (403), how often (429).

Two parts, because they run at different moments:

- :class:`AuthMiddleware` (pure ASGI, outside the body limit) authenticates every
  request to a protected path before its body is read or parsed, and applies the
  key's rate limit and daily budget. An anonymous client therefore gets a 401,
  never a 413, 415 or 422, and costs the service no body parsing. It then
  replaces any ``X-Client-ID`` header with the key's id: with auth on, the
  events, labels and rejections a request leaves name the key that sent it, and
  a client cannot pose as another.
- :func:`requires` is the dependency each router is included with: it names
  the scope the router's routes need (one for reads, one for writes) and answers
  403 when the key lacks it. It also declares the two ways of sending a key in
  the OpenAPI document.

Open paths (no key): the liveness and readiness probes and ``/metrics``, which
orchestrators and Prometheus call without credentials and which reveal no data
or model, and the API description (``/docs``, ``/openapi.json``). A key is
accepted only in a header, never in the URL, where it would end up in access
logs. Nothing here logs a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from loopwatch.auth import ApiKey, KeyVerifier, LeaseLimiter
from loopwatch.auth.verifier import key_id_of
from loopwatch.config import Settings
from loopwatch.errors import Forbidden, LoopwatchError, TooManyRequests, Unauthorized, echo
from loopwatch.service.errors import from_loopwatch_error
from loopwatch.service.key_generation import GenerationReader, reader_for
from loopwatch.service.schemas import ErrorOut
from loopwatch.stores.base import Store


#: Paths that need no key (see the module docstring for why).
OPEN_PATHS = frozenset(
    {"/v1/health/live", "/v1/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
#: Where the middleware leaves the authenticated key for the routes.
KEY_SCOPE = "loopwatch.api_key"
API_KEY_HEADER = "x-api-key"
#: Methods that only read; the others need a router's write scope.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Seconds a verified key is trusted while the store's key generation stays the same. A
#: revocation moves the generation on and takes effect at once; this only bounds how long a
#: change made to the keys table by other means (by hand, say) goes unseen.
KEY_CACHE_SECONDS = 5.0

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid API key (missing, unknown, expired or revoked)"},
    403: {"model": ErrorOut, "description": "The key lacks the scope this route needs"},
    429: {"model": ErrorOut, "description": "The key's rate limit or daily budget; retry after Retry-After"},
}

_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer lw_...")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="X-API-Key: lw_...")


@dataclass
class _Parts:
    store: Store
    verifier: KeyVerifier
    limiter: LeaseLimiter
    #: Reads the store's key generation at the start of each request (service/key_generation.py).
    generation: GenerationReader


class KeyGuard:
    """One worker's key verification (cached) and limits (leased), over the service's store."""

    def __init__(self, *, ttl_seconds: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._parts: _Parts | None = None

    def parts(self, store: Store) -> _Parts:
        if self._parts is None or self._parts.store is not store:

            def claim(key_id: str, kind: str, window: int, want: int, limit: int) -> int:
                return store.claim_key_usage(key_id, kind=kind, window=window, want=want, limit=limit)

            self._parts = _Parts(
                store=store,
                verifier=KeyVerifier(lookup=store.get_api_key, ttl_seconds=self.ttl_seconds),
                limiter=LeaseLimiter(claim=claim),
                generation=reader_for(store),
            )
        return self._parts

    async def aclose(self) -> None:
        """Release the generation reader's connection (when the service stops)."""
        if self._parts is not None:
            await self._parts.generation.aclose()

    async def admit(self, token: str | None, store: Store) -> ApiKey:
        """The caller's key, once verified and within its limits; else Unauthorized or TooManyRequests.

        Every request reads the store's key generation first, so that a revocation that
        has committed holds for it (see :mod:`loopwatch.auth.verifier`); the key itself
        and the limits are answered from memory on most requests, and only a key not
        cached at that generation, or a used-up lease, is looked up (in a thread).
        """
        parts = self.parts(store)
        now = self.clock()
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        key_id_of(token)  # a missing or malformed token is refused before any read
        # read before any lookup the verification makes: the order is what makes it exact
        generation = await parts.generation.read()
        key = parts.verifier.verify(token, now=moment, generation=generation, store=False)
        if key is None:
            key = await run_in_threadpool(parts.verifier.verify, token, now=moment, generation=generation)
            assert key is not None
        verdict = parts.limiter.take(key, now, store=False)
        if verdict is None:
            verdict = await run_in_threadpool(parts.limiter.take, key, now)
        if not verdict.allowed:
            raise TooManyRequests(
                f"{verdict.message} (key {key.key_id})",
                retry_after=verdict.retry_after,
                detail={"key_id": key.key_id, "limit": verdict.reason},
            )
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from this worker's cache at once (after a revoke)."""
        if self._parts is not None:
            self._parts.verifier.forget(key_id)


def presented_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token from ``Authorization: Bearer ...``, else from ``X-API-Key``."""
    bearer = api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
        elif name == API_KEY_HEADER.encode():
            api_key = value.decode("latin-1").strip() or None
    return bearer or api_key


class AuthMiddleware:
    """Authenticate and rate-limit every request to a protected path (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, guard: KeyGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "loopwatch", None)
        headers = list(scope.get("headers", ()))
        try:
            if state is None:  # pragma: no cover - requests arrive after startup
                raise Unauthorized("the service is starting")
            key = await self.guard.admit(presented_token(headers), state.store)
        except LoopwatchError as exc:
            await _send_error(exc, scope, receive, send)
            return
        # the key is who is calling: no header can say otherwise
        headers = [(name, value) for name, value in headers if name != b"x-client-id"]
        headers.append((b"x-client-id", key.key_id.encode()))
        await self.app({**scope, "headers": headers, KEY_SCOPE: key}, receive, send)


async def _send_error(exc: LoopwatchError, scope: Scope, receive: Receive, send: Send) -> None:
    response = from_loopwatch_error(exc)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="loopwatch"'
    elif isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    await response(scope, receive, send)


def requires(scope: str, *, write: str | None = None) -> Any:
    """A router's dependency: reads need ``scope``, other methods ``write`` (default ``scope``).

    ``admin`` keys pass every check. With auth off (a loopback service) it does nothing.
    """

    async def check_scope(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
        _api_key: str | None = Security(_API_KEY),
    ) -> None:
        # the two parameters only declare the key headers in the OpenAPI document;
        # AuthMiddleware has verified the key before the body was read
        settings: Settings = request.app.state.loopwatch.settings
        if not settings.auth_enabled:
            return
        key: ApiKey | None = request.scope.get(KEY_SCOPE)
        if key is None:  # a protected route reached without the middleware: refuse
            raise Unauthorized("an API key is required")
        needed = scope if request.method in READ_METHODS else (write or scope)
        if not key.allows(needed):
            raise Forbidden(
                f"key {key.key_id} lacks the scope {echo(needed)} (it has {', '.join(key.scopes)})",
                detail={"key_id": key.key_id, "needed": needed, "scopes": list(key.scopes)},
            )

    return Depends(check_scope)


def install_auth(app: FastAPI, settings: Settings) -> KeyGuard:
    """Keep a :class:`KeyGuard` on the app and, when auth is on, put the middleware in front.

    Call it after the body-limit middleware is added, so that it runs before it."""
    guard = KeyGuard()
    app.state.key_guard = guard
    if settings.auth_enabled:
        app.add_middleware(AuthMiddleware, guard=guard)
    return guard


def authenticated_key(request: Request) -> ApiKey | None:
    """The key that authenticated this request (None with auth off)."""
    return request.scope.get(KEY_SCOPE)


def include_protected(app: FastAPI, router: Any, scope: str, *, write: str | None = None) -> None:
    """Include a router under /v1, its routes needing ``scope`` to read and ``write`` to change."""
    app.include_router(router, prefix="/v1", dependencies=[requires(scope, write=write)], responses=AUTH_RESPONSES)
