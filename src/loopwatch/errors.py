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

from typing import Any


class LoopwatchError(Exception):
    """Root of every loopwatch error."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

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
