"""The one error hierarchy of loopwatch.

Every error loopwatch raises on purpose derives from :class:`LoopwatchError`
and carries the HTTP status the service answers with and a short machine
``code``; the CLI maps the same errors to a message and exit code 2::

    LoopwatchError (500)
    ├── InvalidInput (422, also ValueError)
    │   ├── SchemaViolation (422): rows do not fit a model's feature schema
    │   └── UnreadableData (422): a file or body that cannot be parsed
    ├── Unauthorized (401): no valid API key (missing, unknown, expired or revoked)
    ├── Forbidden (403): a valid key without the scope the route needs
    ├── NotFound (404, also LookupError)
    ├── Conflict (409): e.g. a request id reused with a different body
    │   └── NotApplicable (409): needs the model itself, and a monitor-only version has none
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── TooManyRequests (429): a key's rate limit or daily budget; carries retry_after
    ├── Overloaded (503): the log writer's queue is full; carries retry_after
    ├── IntegrityError (500): an artifact whose hash does not match
    ├── StoreError (500): the database failed
    └── MissingExtra (500, also ImportError): an optional dependency is absent
"""

from __future__ import annotations

import re
from typing import Any

#: Characters of one value an error message repeats (see :func:`echo`).
ECHO_LIMIT = 100
#: Characters of a whole error message: what is past it is cut out of the middle. A
#: backstop for messages that repeat input without :func:`echo`.
MESSAGE_LIMIT = 600
#: Characters of any text in an error's detail (a problem, a location, a key).
DETAIL_TEXT_LIMIT = 300


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis and the count left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text) - limit:,} more characters)"


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` as an error message may repeat it: at most ``limit`` characters of it.

    Every message that repeats what a caller sent uses this (``f"no model named {echo(name)}"``),
    so that a hostile 10,000-character value comes back as 100 characters and a count.
    """
    if isinstance(value, str):
        # repr of the clipped text, not a clip of the repr: the quotes stay balanced
        head = value[:limit]
        return repr(head) if len(value) <= limit else f"{head!r}…({len(value) - limit:,} more characters)"
    return clip(repr(value), limit)


def listed(values: Any, *, most: int = 10, quote: bool = False) -> str:
    """Values as an error message lists them: at most ``most``, each clipped to
    :data:`ECHO_LIMIT` characters (``repr`` with ``quote``), and how many more there are."""
    items = list(values)
    shown = ", ".join(echo(v) if quote else clip(str(v)) for v in items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most:,} more"


#: A run of more characters than this without a space is an input repeated whole (words,
#: names, hashes and paths are shorter): it is clipped to :data:`ECHO_LIMIT`.
_LONG_RUN = re.compile(r"\S{%d,}" % (2 * ECHO_LIMIT + 1))


def cap_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message that repeats little: every run of over 200 characters without a space clipped
    to 100 (:func:`clip`), then at most about ``limit`` characters, its start and end kept
    and the middle left out.

    The end is kept because it usually says what is allowed ("... must be 1-100 characters")."""
    if len(message) > 2 * ECHO_LIMIT:
        message = _LONG_RUN.sub(lambda m: clip(m.group()), message)
    if len(message) <= limit:
        return message
    head, tail = limit * 2 // 3, limit // 3
    return f"{message[:head]}…({len(message) - head - tail:,} characters left out)…{message[-tail:]}"


def cap_detail(detail: Any) -> Any:
    """An error's detail with every text in it (values and keys) capped to
    :data:`DETAIL_TEXT_LIMIT`; its shape (dicts, lists, numbers) is kept, so that code reading a
    detail finds what it expects."""
    if isinstance(detail, str):
        return cap_message(detail, DETAIL_TEXT_LIMIT)
    if isinstance(detail, dict):
        return {cap_detail(k) if isinstance(k, str) else k: cap_detail(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [cap_detail(v) for v in detail]
    if isinstance(detail, tuple):
        return tuple(cap_detail(v) for v in detail)
    return detail


class LoopwatchError(Exception):
    """Root of every loopwatch error.

    The message and the detail are capped (:func:`cap_message`, :func:`cap_detail`) here, on
    the one path every error takes, so that no error repeats a long input in full: not the
    service's answer, not the CLI's line, not ``str(exc)``.
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        message = cap_message(str(message))
        super().__init__(message)
        self.message = message
        self.detail = cap_detail(detail)

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape, shared by the service and the CLI's --json."""
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return {"error": body}


class InvalidInput(LoopwatchError, ValueError):
    status = 422
    code = "invalid_input"


class SchemaViolation(InvalidInput):
    code = "schema_violation"


class UnreadableData(InvalidInput):
    code = "unreadable_data"


class Unauthorized(LoopwatchError):
    status = 401
    code = "unauthorized"


class Forbidden(LoopwatchError):
    status = 403
    code = "forbidden"


class NotFound(LoopwatchError, LookupError):
    status = 404
    code = "not_found"


class Conflict(LoopwatchError):
    status = 409
    code = "conflict"


class NotApplicable(Conflict):
    """What was asked needs the model itself, and this version has none (a monitor-only model
    whose predictions are made elsewhere), or needs what the version was registered without."""

    code = "not_applicable"


class PayloadTooLarge(LoopwatchError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(LoopwatchError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(LoopwatchError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int = 1, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class Overloaded(LoopwatchError):
    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class IntegrityError(LoopwatchError):
    status = 500
    code = "integrity_error"


class StoreError(LoopwatchError):
    status = 500
    code = "store_error"


class MissingExtra(LoopwatchError, ImportError):
    status = 500
    code = "missing_extra"


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or fail with a message naming its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
        raise MissingExtra(
            f"{module} is not installed; install it with: pip install 'loopwatch[{extra}]'"
        ) from exc
