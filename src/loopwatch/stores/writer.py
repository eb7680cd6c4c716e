"""Group commit: one writer thread per database, fed by a bounded queue.

Callers hand a :class:`LoggedRequest` to :meth:`GroupCommitWriter.submit` and
get a future that resolves only after the transaction holding the request has
committed, so the service replies only with durable events. The writer takes
whatever is queued (up to ``batch_max_requests``, waiting at most
``batch_max_wait_ms`` for more) and commits it together, then releases every
request in the batch. When the queue is full, :meth:`submit` raises
:class:`~loopwatch.errors.Overloaded` at once instead of letting memory grow.

After each commit the events also go out through the ``loopwatch.events``
logger, one JSON line per event, from this thread and off the request path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Sequence, TypeAlias

from loopwatch.errors import Overloaded, StoreError
from loopwatch.records import LoggedRequest, Rejection, RequestOutcome
from loopwatch.records.ingest import IngestBatch, IngestOutcome
from loopwatch.records.jsonutil import dumps, utc_iso
from loopwatch.stores.base import Store

event_logger = logging.getLogger("loopwatch.events")
_log = logging.getLogger("loopwatch.writer")


class _Stop:
    """The signal that stops the writer thread."""


_STOP = _Stop()
#: What callers queue: a request and the future it waits on, an ingested batch and its future,
#: or a rejection to count.
_Item: TypeAlias = (
    "tuple[LoggedRequest, Future[RequestOutcome]] | tuple[IngestBatch, Future[IngestOutcome]] | Rejection"
)


class GroupCommitWriter:
    def __init__(
        self,
        store: Store,
        *,
        queue_max_requests: int = 4096,
        batch_max_requests: int = 512,
        batch_max_wait_ms: float = 2.0,
        retry_after_seconds: int = 1,
        on_commit: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_max_requests = batch_max_requests
        self.batch_max_wait = batch_max_wait_ms / 1000
        self.retry_after_seconds = retry_after_seconds
        self._queue: queue.Queue[_Item | _Stop] = queue.Queue(maxsize=queue_max_requests)
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="loopwatch-writer", daemon=True)
        self._started = False
        self._closed = False
        # submit's "closed?" check and its put happen under this lock, so nothing
        # can be queued behind the stop signal and wait forever
        self._gate = threading.Lock()

    def start(self) -> GroupCommitWriter:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, request: LoggedRequest) -> Future[RequestOutcome]:
        future: Future[RequestOutcome] = Future()
        with self._gate:
            if self._closed:
                raise Overloaded(
                    "the log writer is shutting down", retry_after=self.retry_after_seconds
                )
            try:
                self._queue.put_nowait((request, future))
            except queue.Full:
                raise Overloaded(
                    "the prediction log is busy; retry shortly", retry_after=self.retry_after_seconds
                ) from None
        return future

    def submit_ingest(self, batch: IngestBatch) -> Future[IngestOutcome]:
        """Queue a batch of ingested events; its future resolves after its COMMIT."""
        future: Future[IngestOutcome] = Future()
        with self._gate:
            if self._closed:
                raise Overloaded("the log writer is shutting down", retry_after=self.retry_after_seconds)
            try:
                self._queue.put_nowait((batch, future))
            except queue.Full:
                raise Overloaded(
                    "the prediction log is busy; retry shortly", retry_after=self.retry_after_seconds
                ) from None
        return future

    def submit_rejection(self, rejection: Rejection) -> bool:
        """Queue a rejection record; dropped (returns False) when the queue is full."""
        with self._gate:
            if self._closed:
                return False
            try:
                self._queue.put_nowait(rejection)
            except queue.Full:
                return False
        return True

    def write(self, request: LoggedRequest, timeout: float | None = None) -> RequestOutcome:
        """Submit and wait: for callers outside an event loop (CLI, batch jobs)."""
        return self.submit(request).result(timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._gate:
            if self._closed:
                return
            self._closed = True
        if self._started:
            self._queue.put(_STOP)  # waits for room: the writer is draining
            self._thread.join(timeout)
        else:
            self._commit(self._drain())

    def _drain(self) -> list[_Item]:
        items: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if not isinstance(item, _Stop):
                items.append(item)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if isinstance(first, _Stop):
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_max_wait
            while len(batch) < self.batch_max_requests:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, items: Sequence[_Item]) -> None:
        rejections: list[Rejection] = []
        ingested: list[tuple[IngestBatch, Future[IngestOutcome]]] = []
        batch: list[tuple[LoggedRequest, Future[RequestOutcome]]] = []
        for item in items:
            if isinstance(item, Rejection):
                rejections.append(item)
            elif isinstance(item[0], IngestBatch):
                ingested.append(item)
            else:
                batch.append(item)
        if rejections:
            try:
                self.store.write_rejections(rejections)
            except Exception as exc:  # losing a rejection count must not stop predictions
                _log.error("could not record %d rejections: %s", len(rejections), exc)
        if batch:
            self._commit_requests(batch)
        for ingest, future in ingested:  # each batch is many events: one transaction each
            self._commit_ingest(ingest, future)

    def _commit_ingest(self, batch: IngestBatch, future: Future[IngestOutcome]) -> None:
        started = time.perf_counter()
        try:
            outcome = self.store.write_ingested(batch)
        except Exception as exc:
            _log.error("could not commit %d ingested events: %s", batch.n_events, exc)
            if not future.done():
                future.set_exception(exc if isinstance(exc, StoreError) else StoreError(str(exc)))
            return
        if not future.done():
            future.set_result(outcome)
        if self._on_commit is not None:
            self._on_commit(1, outcome.accepted, time.perf_counter() - started)

    def _commit_requests(self, batch: Sequence[tuple[LoggedRequest, Future[RequestOutcome]]]) -> None:
        requests = [request for request, _ in batch]
        started = time.perf_counter()
        try:
            outcomes = self.store.write_requests(requests)
        except Exception as exc:  # the database failed: every caller gets the error
            _log.error("could not commit %d requests: %s", len(requests), exc)
            error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        elapsed = time.perf_counter() - started
        # the log lines go out before the callers are released, so that whoever
        # saw the response can also find its events in the log stream
        if event_logger.isEnabledFor(logging.INFO):
            for request, outcome in zip(requests, outcomes):
                if outcome.status == "stored":
                    emit_events(request)
        for (_, future), outcome in zip(batch, outcomes):
            # a waiter that gave up has cancelled its future; setting it again would raise
            if future.done():
                continue
            if outcome.status == "failed":
                future.set_exception(StoreError(f"could not log the request: {outcome.error}"))
            else:
                future.set_result(outcome)
        if self._on_commit is not None:
            self._on_commit(len(requests), sum(r.n_rows for r in requests), elapsed)


def emit_events(request: LoggedRequest) -> None:
    """One JSON line per event on the ``loopwatch.events`` logger."""
    for i in range(request.n_rows):
        event_logger.info(
            dumps(
                {
                    "request_id": request.request_id,
                    "row_index": i,
                    "model_name": request.model_name,
                    "model_version": request.model_version,
                    "timestamp": utc_iso(request.row_timestamp(i)),
                    "runtime_ms": request.runtime_ms,
                    "prediction": request.predictions[i],
                    "probability": None
                    if request.probabilities is None
                    else request.probabilities[i],
                    "input_data_summary": request.row_summaries[i],
                    "data": None if request.data is None else request.data[i],
                    "request_type": request.request_type,
                    "client_id": request.client_id,
                    "fingerprint_id": request.fingerprint.id,
                    "replayed": request.replayed,
                    "entity_id": None if request.entity_ids is None else request.entity_ids[i],
                }
            ).decode()
        )
