"""Shadow scoring: the candidate predicts what production predicted, off the request path.

After a predict request is answered, :meth:`ShadowScorer.submit` hands its rows
to one background thread through a bounded queue and returns at once. When the
model has a ``candidate`` alias on another version than the one that answered,
the thread predicts the rows with the candidate and logs them as their own
request through the group-commit writer:

- ``request_type`` ``"shadow"``, ``request_id`` ``"<original>:shadow"``;
- the original's event times (so windows line up) and client;
- the candidate's own runtime, which is what the promotion gate reads as its
  latency;
- no entity ids, so a label sent by entity id always lands on the served
  prediction, never on its shadow.

The caller never sees the shadow's answer, and nothing the shadow does can
slow or fail a request: a full queue drops the work (counted in ``dropped``),
and a failure is counted and logged. Each count is also handed to ``on_count``
(the service's Prometheus counter ``loopwatch_shadow_requests_total``).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Callable, Sequence

from loopwatch.errors import LoopwatchError, Overloaded
from loopwatch.application.prediction import SHADOW_SUFFIX, PredictCall, Predictor
from loopwatch.records import LoggedRequest, RequestOutcome
from loopwatch.records.events import SHADOW_REQUEST_TYPE
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.registry import Registry
from loopwatch.registry.registry import is_monitor_only
from loopwatch.stores.writer import GroupCommitWriter

_log = logging.getLogger("loopwatch.shadow")

_STOP = object()
COUNTERS = ("submitted", "dropped", "skipped", "scored", "written", "failed")


def shadow_request_id(request_id: str) -> str:
    return request_id + SHADOW_SUFFIX


class ShadowScorer:
    """One background thread scoring served requests with the model's candidate.

    Parameters
    ----------
    registry, writer:
        The service's registry (for the candidate alias and its model) and its
        log writer.
    max_queue:
        Requests waiting to be shadowed; beyond it new ones are dropped.
    max_rows:
        The row limit of one request (the service's).
    on_count:
        Called with the outcome (one of :data:`COUNTERS`) each time one is counted,
        under the scorer's lock (so it never lags :meth:`stats`): it must be quick
        and must not call the scorer.
    """

    def __init__(
        self, registry: Registry, writer: GroupCommitWriter, *, max_queue: int = 1000, max_rows: int = 10_000,
        on_count: Callable[[str], None] | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.registry = registry
        self.writer = writer
        self.predictor = Predictor(registry, max_rows=max_rows)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="loopwatch-shadow", daemon=True)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued or being scored, plus shadow writes not yet committed
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._on_count = on_count
        self._closed = False
        self._thread.start()

    # --- the request path ------------------------------------------------------------
    def submit(
        self, logged: LoggedRequest, rows: Sequence[Any], *, client_version: str | None = None
    ) -> bool:
        """Queue ``logged``'s rows for shadow scoring; never blocks, never raises.

        ``rows`` are the rows as the client sent them (the logged ones may have been
        left out for privacy). Returns False when the work was dropped.
        """
        if logged.request_type == SHADOW_REQUEST_TYPE:
            return False
        with self._lock:
            outcome = "dropped"
            if not self._closed:
                try:
                    self._queue.put_nowait((logged, rows, client_version))
                    outcome = "submitted"
                    self._pending += 1
                except queue.Full:
                    pass
            self._count_locked(outcome)
        return outcome == "submitted"

    # --- lifecycle -------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def stats(self) -> dict[str, int]:
        """Counts since start: submitted, dropped, skipped (no candidate), scored,
        written (committed), failed; and the queue depth."""
        with self._lock:
            return {**self._counts, "depth": self._queue.qsize()}

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted is scored and its shadow committed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Score what is queued, then stop. Call before closing the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:  # pragma: no cover - the thread is stuck; do not hang shutdown
            _log.error("shadow scorer did not drain in %.0f s; %d requests dropped", timeout, self.depth)
            return
        self._thread.join(timeout)
        self.flush(timeout)

    # --- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            logged, rows, client_version = item
            try:
                self._shadow(logged, rows, client_version)
            except Exception as exc:  # a shadow failure must never reach anyone but the log
                self._count("failed")
                self._done()
                level = logging.INFO if isinstance(exc, LoopwatchError) and exc.status < 500 else logging.ERROR
                _log.log(level, "shadow scoring of %s failed: %s", logged.request_id, exc)

    def _shadow(self, logged: LoggedRequest, rows: Sequence[Any], client_version: str | None) -> None:
        candidate = self.registry.aliases(logged.model_name).get("candidate")
        if candidate is None or candidate == logged.model_version \
                or is_monitor_only(self.registry.resolve(logged.model_name, candidate)):
            # a monitor-only candidate has no model to shadow with: its predictions are sent in
            self._count("skipped")
            self._done()
            return
        result = self.predictor.predict(
            PredictCall(
                model_name=logged.model_name,
                rows=rows,
                version=candidate,
                client_id=logged.client_id,
                client_version=client_version,
                request_type=SHADOW_REQUEST_TYPE,
            )
        )
        request_id = shadow_request_id(logged.request_id)
        response = loads(result.response)
        response["request_id"] = request_id
        shadow = replace(
            result,
            request_id=request_id,
            # a retry of the same original with the same candidate is then a duplicate
            body_sha256=hashlib.sha256(f"{logged.body_sha256}:shadow:{candidate}".encode()).hexdigest(),
            response=dumps(response),
            received_at=logged.received_at,
            timestamps=logged.timestamps,
            replayed=logged.replayed,
            entity_ids=None,
        )
        self._count("scored")
        try:
            future = self.writer.submit(shadow)
        except Overloaded:
            self._count("dropped")
            self._done()
            return
        future.add_done_callback(self._written)

    def _written(self, future: Future[RequestOutcome]) -> None:
        # the writer answers "failed" (this request only) or "conflict" (a client already
        # used "<id>:shadow" as its own request id) without raising: neither wrote anything.
        # "duplicate" means this very shadow is stored already.
        if future.cancelled() or future.exception() is not None:
            failed, why = True, "cancelled" if future.cancelled() else str(future.exception())
        else:
            outcome = future.result()
            failed, why = outcome.status in ("failed", "conflict"), f"{outcome.status} {outcome.error or ''}"
        if failed:
            _log.error("could not log shadow predictions: %s", why)
        self._count("failed" if failed else "written")
        self._done()

    def _count(self, name: str) -> None:
        with self._lock:
            self._count_locked(name)

    def _count_locked(self, name: str) -> None:
        self._counts[name] += 1
        if self._on_count is None:
            return
        try:
            self._on_count(name)
        except Exception:  # a metrics hiccup must not fail a request or the scorer
            _log.exception("shadow counter hook failed for %s", name)

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()
