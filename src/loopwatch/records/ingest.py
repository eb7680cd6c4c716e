"""Ingested events: predictions a model made elsewhere, logged by loopwatch.

An :class:`IngestBatch` is the unit the store commits whole or not at all, like a
:class:`~loopwatch.records.events.LoggedRequest` for predict. Its rows are already
encoded in the order of the store's ingest columns, so the HTTP route and the
bulk file path hand the store the same thing and the writer thread only binds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from loopwatch.records.events import INGESTED_REQUEST_TYPE
from loopwatch.records.fingerprint import Fingerprint

__all__ = ["INGESTED_REQUEST_TYPE", "NO_LATENCY", "IngestBatch", "IngestOutcome"]
#: Stored as an ingested event's runtime when the sender reported no latency: latency
#: rules read it as "not measured", never as a fast request.
NO_LATENCY = -1.0


@dataclass(frozen=True, kw_only=True)
class IngestBatch:
    """Validated, encoded events of one model, to be committed together."""

    model_name: str
    #: One tuple per event: the store's ingest columns (events columns, entity id, hash).
    rows: list[tuple[Any, ...]]
    #: Every fingerprint the rows reference, by id.
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    #: Per distinct request id, its event count and first event time (for the requests table).
    requests: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: External version labels seen in the batch and the integer version each became.
    versions: dict[str, int] = field(default_factory=dict)
    #: True when no two rows share an id (ids the file path derived itself), so the
    #: store may skip looking for repeats inside the batch.
    unique_keys: bool = False
    #: Positions in ``rows`` whose value is the same in every row (a promise of the
    #: encoder, which made them so): a store may bind them once per batch, not per row.
    constant_columns: frozenset[int] = frozenset()

    @property
    def n_events(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class IngestOutcome:
    """What the store did with a batch: ``stored`` (``accepted`` new events and
    ``duplicates`` already stored with the same content), ``conflict`` (an event's
    id is stored with other content; nothing of the batch was written), or ``failed``."""

    status: Literal["stored", "conflict", "failed"]
    accepted: int = 0
    duplicates: int = 0
    #: For a conflict: the (request_id, row_index) pairs stored with other content.
    conflicts: tuple[tuple[str, int], ...] = ()
    error: str | None = None
