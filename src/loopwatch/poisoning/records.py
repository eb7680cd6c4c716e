"""The quarantine record: one labelled prediction row set aside from training, and why.

A row is named by its prediction (``request_id``, ``row_index``) and the
revision of its label that was screened: a release applies to that label
only, so a later correction of the label is screened afresh. Records check
themselves when built, as the feedback records do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopwatch.errors import InvalidInput, echo
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.records.jsonutil import utc_iso

#: Reasons of the certain checks: a row with one of them cannot be trained on, released or not.
CERTAIN_REASONS = ("label_missing", "label_not_a_class", "label_not_finite", "schema")
#: Most reasons kept per row, and the longest reason.
MAX_REASONS = 20
MAX_REASON_LENGTH = 300


def entry_id(request_id: str, row_index: int) -> str:
    """The id a quarantined row is listed and released by: ``<request_id>:<row_index>``."""
    return f"{request_id}:{row_index}"


def parse_entry_id(text: Any) -> tuple[str, int]:
    """``(request_id, row_index)`` of an id made by :func:`entry_id`, or InvalidInput."""
    if not isinstance(text, str) or ":" not in text:
        raise InvalidInput(f"a quarantine id is REQUEST_ID:ROW_INDEX, got {echo(str(text)[:100])}")
    request_id, _, row = text.rpartition(":")
    if not row.isdigit() or len(row) > 10 or not request_id:
        raise InvalidInput(f"a quarantine id is REQUEST_ID:ROW_INDEX, got {echo(text[:100])}")
    key_text(request_id, "request_id")
    index = int(row)
    if index >= 2**31:
        raise InvalidInput("row_index must be between 0 and 2147483647")
    return request_id, index


def storable_reasons(reasons: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Reasons as a record holds them: at most :data:`MAX_REASONS`, each cut to
    :data:`MAX_REASON_LENGTH` characters, NUL (which PostgreSQL refuses) written as ``\\0``."""
    return tuple(r.replace("\x00", "\\0")[:MAX_REASON_LENGTH] or "?" for r in reasons[:MAX_REASONS])


def is_releasable(reasons: tuple[str, ...] | list[str]) -> bool:
    """True when every reason is a poisoning screen's: a certain check's verdict stands."""
    return not any(r == c or r.startswith(c + ":") for r in reasons for c in CERTAIN_REASONS)


@dataclass(frozen=True, kw_only=True)
class QuarantineEntry:
    """One labelled prediction row that training leaves out until it is released."""

    model_name: str
    request_id: str
    row_index: int
    #: The revision of the row's label that was screened (0: its first label).
    label_revision: int
    reasons: tuple[str, ...]
    #: Who sent the label (its ``client_id``).
    source: str | None
    quarantined_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None

    def __post_init__(self) -> None:
        key_text(self.model_name, "model")
        key_text(self.request_id, "request_id")
        for name in ("row_index", "label_revision"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
                raise InvalidInput(f"{name} must be an integer between 0 and 2147483647")
        reasons = tuple(self.reasons)
        if not reasons or len(reasons) > MAX_REASONS:
            raise InvalidInput(f"a quarantined row has between 1 and {MAX_REASONS} reasons")
        for reason in reasons:
            key_text(reason, "reason", max_length=MAX_REASON_LENGTH)
        object.__setattr__(self, "reasons", reasons)
        if self.source is not None:
            key_text(self.source, "source")
        object.__setattr__(self, "quarantined_at", utc_moment(self.quarantined_at, "quarantined_at"))
        if self.released_at is not None:
            object.__setattr__(self, "released_at", utc_moment(self.released_at, "released_at"))
        if self.released_by is not None:
            key_text(self.released_by, "released_by")

    @property
    def id(self) -> str:
        return entry_id(self.request_id, self.row_index)

    @property
    def released(self) -> bool:
        return self.released_at is not None

    @property
    def releasable(self) -> bool:
        return is_releasable(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model_name": self.model_name, "request_id": self.request_id,
            "row_index": self.row_index, "label_revision": self.label_revision, "reasons": list(self.reasons),
            "source": self.source, "quarantined_at": utc_iso(self.quarantined_at),
            "released_at": None if self.released_at is None else utc_iso(self.released_at),
            "released_by": self.released_by, "releasable": self.releasable,
        }
