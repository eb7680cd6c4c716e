"""The client a team's own service uses to log its predictions, labels and business metrics.

The caller's thread only appends a small record to a bounded buffer; a background thread
groups the records into batches, sends them, and retries with the same request ids, so a
retry after a lost answer is stored once (the service counts it as a duplicate).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from loopwatch.client._transport import SendOutcome, Transport, encode_record

F = TypeVar("F", bound=Callable[..., Any])

EVENTS, LABELS, METRICS = "events", "labels", "metrics"
#: The most problems a refused batch of events is trimmed by before it is given up whole:
#: the service caps the problems it lists, so a longer list may not name every bad event.
MAX_TRIMS = 3


@dataclass(frozen=True)
class ClientStats:
    """Counts since the client started (records: one prediction, label or observation each)."""

    buffered: int
    sent: int
    duplicates: int
    dropped: int
    rejected: int
    failed: int
    retries: int
    last_error: str | None


class Client:
    """Log predictions made anywhere to a loopwatch service, off the caller's request path.

    ``log_prediction``, ``log_label`` and ``log_business_metric`` never wait on the network:
    when the buffer holds ``max_buffered`` records, a new record is dropped and counted
    (``stats().dropped``). Records are sent in batches of at most ``batch_size``, at least
    every ``flush_interval`` seconds. On exit the client flushes for at most ``exit_timeout``
    seconds. Records must be JSON-serialisable (numbers, strings, booleans, None, lists).
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffered: int = 100_000,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        exit_timeout: float = 5.0,
        client_version: str | None = None,
    ) -> None:
        if batch_size < 1 or max_buffered < 1:
            raise ValueError("batch_size and max_buffered must be at least 1")
        if flush_interval <= 0 or timeout <= 0 or max_backoff <= 0 or exit_timeout < 0:
            raise ValueError("flush_interval, timeout and max_backoff must be positive")
        Transport(url=url, api_key=api_key, timeout=timeout)  # refuse a bad url here, not later
        self._url, self._api_key, self._timeout = url, api_key, timeout
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffered = max_buffered
        self._max_backoff = max_backoff
        self._exit_timeout = exit_timeout
        self._client_version = client_version
        self._buffer: deque[tuple[str, str | None, dict[str, Any]]] = deque()
        self._counter_lock = threading.Lock()
        self._sent = self._duplicates = self._dropped = self._rejected = self._failed = self._retries = 0
        self._in_flight = 0
        self._last_error: str | None = None
        self._closed = False
        self._start_thread()
        atexit.register(self._close_at_exit)
        _LIVE_CLIENTS.add(self)

    # --- the caller's side: cheap, never blocking -------------------------------------------

    def log_prediction(
        self,
        *,
        model: str,
        features: Mapping[str, Any],
        prediction: Any,
        probabilities: Mapping[str, float] | list[float] | None = None,
        request_id: str | None = None,
        row_index: int = 0,
        timestamp: datetime | str | float | None = None,
        entity_id: str | None = None,
        model_version: str | None = None,
        latency_ms: float | None = None,
    ) -> str:
        """Queue one prediction; returns its request id (send labels for it with that id).

        ``timestamp`` is the prediction's time (a datetime, ISO text or epoch seconds; a naive
        datetime is taken as UTC); now when omitted. ``features`` is copied.
        """
        if request_id is None:
            request_id = self._prefix + str(next(self._sequence))
        event: dict[str, Any] = {
            "request_id": request_id,
            "row_index": row_index,
            "timestamp": time.time() if timestamp is None else timestamp,
            "features": dict(features),
            "prediction": prediction,
        }
        if probabilities is not None:
            event["probabilities"] = probabilities
        if entity_id is not None:
            event["entity_id"] = entity_id
        if model_version is not None:
            event["model_version"] = model_version
        if latency_ms is not None:
            event["latency_ms"] = latency_ms
        if self._client_version is not None:
            event["client_version"] = self._client_version
        self._put(EVENTS, model, event)
        return request_id

    def log_label(
        self,
        *,
        model: str,
        label: Any,
        request_id: str | None = None,
        row_index: int | None = None,
        entity_id: str | None = None,
        label_time: datetime | str | float | None = None,
    ) -> None:
        """Queue the outcome of one prediction, named by ``request_id`` (with ``row_index``,
        0 by default) or by ``entity_id``. ``label_time``: when it became known (now if omitted)."""
        if (request_id is None) == (entity_id is None):
            raise ValueError("name the prediction by request_id or by entity_id, not both or neither")
        record: dict[str, Any] = {"label": label, "label_time": time.time() if label_time is None else label_time}
        if request_id is not None:
            record["request_id"] = request_id
            record["row_index"] = 0 if row_index is None else row_index
        else:
            record["entity_id"] = entity_id
        self._put(LABELS, model, record)

    def log_business_metric(
        self, *, name: str, value: float, timestamp: datetime | str | float, segment: str | None = None
    ) -> None:
        """Queue one observation of a business metric (e.g. revenue for a day)."""
        record: dict[str, Any] = {"name": name, "value": value, "timestamp": timestamp}
        if segment is not None:
            record["segment"] = segment
        self._put(METRICS, None, record)

    def monitored(self, *, model: str, model_version: str | None = None) -> Callable[[F], F]:
        """Wrap ``predict(features, ...) -> prediction``: each call is timed and logged.

        The wrapper takes three keyword arguments of its own, not passed on: ``request_id``
        (your id for the prediction, to send its label with later), ``entity_id`` and
        ``timestamp``. A call that raises is not logged.
        """

        def decorate(function: F) -> F:
            @functools.wraps(function)
            def wrapper(features: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
                request_id = kwargs.pop("request_id", None)
                entity_id = kwargs.pop("entity_id", None)
                timestamp = kwargs.pop("timestamp", None)
                started = time.perf_counter()
                prediction = function(features, *args, **kwargs)
                latency_ms = (time.perf_counter() - started) * 1000.0
                self.log_prediction(
                    model=model, features=features, prediction=prediction, request_id=request_id,
                    entity_id=entity_id, timestamp=timestamp, model_version=model_version,
                    latency_ms=latency_ms,
                )
                return prediction

            # the wrapper also takes request_id, entity_id and timestamp, which a type cannot add
            return wrapper  # type: ignore[return-value]

        return decorate

    def _put(self, kind: str, model: str | None, record: dict[str, Any]) -> None:
        buffer = self._buffer
        if len(buffer) >= self._max_buffered or self._closed:
            with self._counter_lock:
                self._dropped += 1
            return
        buffer.append((kind, model, record))
        if len(buffer) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    # --- control ----------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        with self._counter_lock:
            return ClientStats(
                buffered=len(self._buffer) + self._in_flight, sent=self._sent, duplicates=self._duplicates,
                dropped=self._dropped, rejected=self._rejected, failed=self._failed, retries=self._retries,
                last_error=self._last_error,
            )

    def flush(self, *, timeout: float = 10.0) -> bool:
        """Send what is buffered now; True when all of it was settled within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self._buffer or self._in_flight:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
            self._wake.set()
        return True

    def close(self, *, timeout: float | None = None) -> ClientStats:
        """Flush for at most ``timeout`` seconds (``exit_timeout`` by default), then stop.
        Records still unsent are counted as failed; later records are dropped."""
        if not self._closed:
            self._closed = True
            self._closing.set()
            self._wake.set()
            self._thread.join(self._exit_timeout if timeout is None else timeout)
            self._give_up.set()  # a retry still waiting stops now
            self._thread.join(1.0)
            with self._counter_lock:
                self._failed += len(self._buffer) + self._in_flight
                self._buffer.clear()
                self._in_flight = 0
            atexit.unregister(self._close_at_exit)
        return self.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_at_exit(self) -> None:
        self.close(timeout=self._exit_timeout)

    # --- the background thread --------------------------------------------------------------

    def _start_thread(self) -> None:
        # a fresh prefix per process: a forked worker must not repeat its parent's request ids
        self._prefix = f"lw-{uuid.uuid4().hex[:16]}-"
        self._sequence = itertools.count()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._give_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopwatch-client", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # the parent's thread does not exist in the child, and its buffer is the parent's to send
        self._buffer = deque()
        self._counter_lock = threading.Lock()
        self._in_flight = 0
        if not self._closed:
            self._start_thread()

    def _run(self) -> None:
        transport = Transport(url=self._url, api_key=self._api_key, timeout=self._timeout)
        try:
            while True:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                while self._buffer and not self._give_up.is_set():
                    try:
                        self._send_some(transport)
                    except Exception as error:  # noqa: BLE001 - the sender must outlive any one batch
                        with self._counter_lock:
                            self._failed += self._in_flight
                            self._in_flight = 0
                            self._last_error = f"{type(error).__name__}: {error}"
                if self._closing.is_set() and (not self._buffer or self._give_up.is_set()):
                    return
        finally:
            transport.close()

    def _send_some(self, transport: Transport) -> None:
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        with self._counter_lock:
            taken = 0
            while self._buffer and taken < self._batch_size:
                # counted in flight before it leaves the buffer, so flush() never sees neither
                self._in_flight += 1
                kind, model, record = self._buffer.popleft()
                groups.setdefault((kind, model), []).append(record)
                taken += 1
        for (kind, model), records in groups.items():
            encoded: list[str] = []
            for record in records:
                try:
                    encoded.append(encode_record(_wire(kind, record)))
                except (TypeError, ValueError, OverflowError) as error:
                    # NaN, an object JSON cannot hold, a time that is no time: this record only
                    self._settle(1, rejected=1, error=f"a {kind[:-1]} record: {error}")
            if encoded:
                self._deliver(transport, kind, model, encoded)

    def _deliver(self, transport: Transport, kind: str, model: str | None, records: list[str]) -> None:
        path, key = _route(kind, model)
        attempt = trims = 0
        while True:
            outcome = transport.post(path, key, records, {"model": model} if kind == LABELS else {})
            if outcome.delivered:
                duplicates = int((outcome.body or {}).get("duplicates", 0))
                self._settle(len(records), sent=len(records) - duplicates, duplicates=duplicates)
                return
            if outcome.status == 413 and len(records) > 1:
                # larger than the service's body limit: send it in halves (the same ids)
                half = len(records) // 2
                self._deliver(transport, kind, model, records[:half])
                self._deliver(transport, kind, model, records[half:])
                return
            bad = _bad_events(outcome) if kind == EVENTS and trims < MAX_TRIMS else set()
            if bad and len(bad) < len(records):
                # one bad event refuses the batch whole: send the others again without it
                trims += 1
                self._settle(len(bad), rejected=len(bad), error=outcome.error)
                records = [record for index, record in enumerate(records) if index not in bad]
                continue
            if not outcome.retry:
                self._settle(len(records), rejected=len(records), error=outcome.error)
                return
            delay = outcome.retry_after
            if delay is None:
                delay = min(self._max_backoff, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            with self._counter_lock:
                self._retries += 1
                self._last_error = outcome.error
            if self._give_up.wait(min(delay, self._max_backoff)):
                self._settle(len(records), failed=len(records), error=outcome.error)
                return

    def _settle(
        self, count: int, *, sent: int = 0, duplicates: int = 0, rejected: int = 0, failed: int = 0,
        error: str | None = None,
    ) -> None:
        with self._counter_lock:
            self._in_flight = max(0, self._in_flight - count)
            self._sent += sent
            self._duplicates += duplicates
            self._rejected += rejected
            self._failed += failed
            if error is not None:
                self._last_error = error


#: Clients to restart in a forked child (weakly held: a client dropped by its owner is not kept).
_LIVE_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for client in list(_LIVE_CLIENTS):
        client._after_fork()


os.register_at_fork(after_in_child=_restart_after_fork)


def _route(kind: str, model: str | None) -> tuple[str, str]:
    if kind == EVENTS:
        return f"/v1/models/{quote(str(model), safe='')}/events", "events"
    if kind == LABELS:
        return "/v1/feedback", "labels"
    return "/v1/business-metrics", "observations"


def _wire(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record as the service reads it: times as ISO-8601 text with a timezone."""
    field = "label_time" if kind == LABELS else "timestamp"
    record[field] = iso_time(record[field])
    return record


def iso_time(value: datetime | str | float | int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).isoformat()
    return datetime.fromtimestamp(float(value), timezone.utc).isoformat()


def _bad_events(outcome: SendOutcome) -> set[int]:
    """The positions of the events a 422 or 409 names (``detail.problems[].event``)."""
    if outcome.status not in (409, 422) or not outcome.body:
        return set()
    detail = (outcome.body.get("error") or {}).get("detail")
    problems = detail.get("problems") if isinstance(detail, dict) else None
    if not isinstance(problems, list):
        return set()
    return {p["event"] for p in problems if isinstance(p, dict) and isinstance(p.get("event"), int)}
