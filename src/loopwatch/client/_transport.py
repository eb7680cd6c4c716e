"""Sending one JSON body to loopwatch over ``http.client``, and what the answer means.

The standard library keeps the client's import light (no httpx, no pydantic), and
``http.client`` itself is imported by the sending thread, not by the service importing the
client (it pulls in the email parser: about 40 ms). A connection is kept open between sends
and opened again after any failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Statuses worth sending again with the same body: the server was busy, limited the key,
#: or the request did not reach it whole. Any other 4xx will not change on a retry.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt to send a batch came to."""

    delivered: bool
    retry: bool
    status: int | None
    retry_after: float | None
    body: dict[str, Any] | None
    error: str | None


class Transport:
    """One keep-alive HTTP connection to a loopwatch service, used by one thread only."""

    def __init__(self, *, url: str, api_key: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the loopwatch url must be http(s)://host[:port], not {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._connection: Any = None

    def _connect(self) -> Any:
        import http.client

        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def post(self, path: str, key: str, records: list[str], extra: dict[str, Any]) -> SendOutcome:
        """POST ``{**extra, key: records}`` (records already JSON); the answer, whether it was
        stored, and whether to retry."""
        head = json.dumps(extra, separators=(",", ":"))[:-1] + ("," if extra else "") + json.dumps(key) + ":["
        body = (head + ",".join(records) + "]}").encode()
        from http.client import HTTPException

        try:
            connection = self._connect()
            connection.request("POST", self._base_path + path, body=body, headers=self._headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
            retry_after = _seconds(response.getheader("Retry-After"))
        except (OSError, HTTPException) as error:  # a timeout is an OSError
            # the server may or may not have stored the batch: the same request ids make the
            # retry safe, since the server counts a repeat as a duplicate
            self.close()
            return SendOutcome(False, True, None, None, None, f"{type(error).__name__}: {error}")
        parsed = _json_object(raw)
        if 200 <= status < 300:
            return SendOutcome(True, False, status, None, parsed, None)
        if status >= 500 or response.getheader("Connection", "").lower() == "close":
            self.close()
        message = _error_message(parsed, raw, status)
        return SendOutcome(False, status in RETRYABLE_STATUSES, status, retry_after, parsed, message)


def _plain(value: Any) -> Any:
    """A numpy scalar or array (what models return) as plain JSON, without importing numpy."""
    if hasattr(value, "tolist"):  # an array becomes a list, a numpy scalar a Python number
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


#: One record at a time: between records the interpreter can hand the GIL back to the
#: service's request threads, instead of after one long call for a whole batch.
encode_record = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_plain).encode


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None  # an HTTP date: the client's own back-off applies instead
    return value if value >= 0 else None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _error_message(parsed: dict[str, Any] | None, raw: bytes, status: int) -> str:
    error = parsed.get("error") if parsed else None
    if isinstance(error, dict) and "message" in error:
        message = f"{status} {error.get('code', '')}: {error['message']}"
        detail = error.get("detail")
        problems = detail.get("problems") if isinstance(detail, dict) else None
        if isinstance(problems, list) and problems:
            # the first problem says what to fix; the service lists the rest
            message += f" (first of {len(problems)}: {json.dumps(problems[0])})"
        return message
    return f"{status}: {raw[:200].decode(errors='replace')}"
