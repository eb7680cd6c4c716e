"""Feedback records: labels that arrive after the prediction, and business metrics.

A :class:`Label` is what a client sends: the outcome of one predicted row,
found by its request id and row index or by an entity id (a customer, an
order) that the prediction was logged with. The store keeps every revision of
a row's label and reads back the current one as a :class:`StoredLabel`.

A :class:`BusinessObservation` is one value of a business metric (revenue,
churn rate, conversions) at a time, optionally for a segment.

Records check themselves when built, so every edge (HTTP, CLI, library) gets
the same rules: times carry a timezone and are kept in UTC, numbers are
finite, texts fit the database (no NUL, bounded length).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from loopwatch.errors import InvalidInput
from loopwatch.records.jsonutil import utc_iso

#: Longest entity id, segment, metric name or client id.
MAX_KEY_LENGTH = 200
#: Longest text label (class labels are short; this is a bound, not a style).
MAX_LABEL_LENGTH = 1000
_INT64 = 2**63


def utc_moment(moment: Any, what: str) -> datetime:
    """``moment`` as an aware UTC datetime, or :class:`InvalidInput`."""
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{what} must be a time, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{what} must carry a timezone, e.g. 2026-01-05T10:00:00Z")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is past datetime.max in UTC
        raise InvalidInput(f"{what} is out of range") from exc


def key_text(value: Any, what: str, *, max_length: int = MAX_KEY_LENGTH) -> str:
    """A short identifier stored as text: non-empty, bounded, no NUL (PostgreSQL refuses it)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidInput(f"{what} must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters")
    return value


def label_value(value: Any) -> Any:
    """A label as stored: a JSON scalar (bool, 64-bit int, finite float or string)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars from tables
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidInput("an integer label must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("a label must be a finite number, not NaN or infinity")
        return value
    if isinstance(value, str):
        if len(value) > MAX_LABEL_LENGTH:
            raise InvalidInput(f"a text label must be at most {MAX_LABEL_LENGTH} characters")
        return value
    raise InvalidInput(
        f"a label must be a number, a string or a boolean, got {type(value).__name__}"
    )


def same_label(a: Any, b: Any) -> bool:
    """Equal label values: ``1`` and ``1.0`` are one value; ``True``, ``1`` and ``"1"`` are three."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return bool(a == b)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, kw_only=True)
class Label:
    """The outcome of one predicted row, as a client sends it.

    The row is named either by ``request_id`` with ``row_index`` or by
    ``entity_id``; an entity id resolves to the latest prediction for that
    entity made at or before ``label_time`` (or the latest one, when every
    prediction for it came later).
    """

    model_name: str
    #: A JSON scalar: the class label or the regression target.
    label: Any
    #: When the outcome became known (UTC, timezone-aware).
    label_time: datetime
    request_id: str | None = None
    row_index: int | None = None
    entity_id: str | None = None
    #: The feedback source (the X-Client-ID header).
    client_id: str | None = None
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        key_text(self.model_name, "model")
        _set(self, "label", label_value(self.label))
        _set(self, "label_time", utc_moment(self.label_time, "label_time"))
        by_request = self.request_id is not None or self.row_index is not None
        if by_request == (self.entity_id is not None):
            raise InvalidInput("a label names its prediction by request_id with row_index, or by entity_id")
        if by_request:
            if self.request_id is None or self.row_index is None:
                raise InvalidInput("request_id and row_index go together")
            key_text(self.request_id, "request_id")
            if isinstance(self.row_index, bool) or not isinstance(self.row_index, int):
                raise InvalidInput("row_index must be an integer")
            if not 0 <= self.row_index < 2**31:
                raise InvalidInput("row_index must be between 0 and 2147483647")
        else:
            key_text(self.entity_id, "entity_id")
        if self.client_id is not None:
            key_text(self.client_id, "client_id")
        if self.received_at is not None:
            _set(self, "received_at", utc_moment(self.received_at, "received_at"))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["label_time"] = utc_iso(self.label_time)
        out["received_at"] = None if self.received_at is None else utc_iso(self.received_at)
        return out


@dataclass(frozen=True)
class LabelOutcome:
    """What the store did with one label.

    ``stored``: the row's first label. ``duplicate``: the row already had this
    value; nothing changed. ``corrected``: the row had another value; this one
    is now current and the old one stays in the history. ``unmatched``: no
    logged prediction fits; nothing was stored (``error`` says why).
    """

    status: Literal["stored", "duplicate", "corrected", "unmatched"]
    request_id: str | None = None
    row_index: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class StoredLabel:
    """The label of one prediction row, as read back (the current one, or one revision)."""

    model_name: str
    request_id: str
    row_index: int
    entity_id: str | None
    model_version: int
    label: Any
    label_time: datetime
    #: The event time of the prediction, so the label delay is ``label_time - prediction_time``.
    prediction_time: datetime
    client_id: str | None
    received_at: datetime
    #: 0 for the first label of the row; n for its n-th correction.
    revision: int

    @property
    def delay_seconds(self) -> float:
        return (self.label_time - self.prediction_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("label_time", "prediction_time", "received_at"):
            out[name] = utc_iso(getattr(self, name))
        return out


@dataclass(frozen=True, kw_only=True)
class BusinessObservation:
    """One value of a business metric at a time, for the whole business or one segment.

    ``(name, timestamp, segment)`` identifies an observation: sending it again
    with the same value changes nothing, with another value replaces it.
    """

    name: str
    timestamp: datetime
    value: float
    segment: str | None = None
    client_id: str | None = None
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        key_text(self.name, "name")
        _set(self, "timestamp", utc_moment(self.timestamp, "timestamp"))
        value = self.value
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput("a business metric's value must be a number")
        try:
            value = float(value)
        except OverflowError as exc:
            raise InvalidInput("a business metric's value is out of range") from exc
        if not math.isfinite(value):
            raise InvalidInput("a business metric's value must be finite, not NaN or infinity")
        _set(self, "value", value)
        if self.segment is not None:
            key_text(self.segment, "segment")
        if self.client_id is not None:
            key_text(self.client_id, "client_id")
        if self.received_at is not None:
            _set(self, "received_at", utc_moment(self.received_at, "received_at"))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = utc_iso(self.timestamp)
        out["received_at"] = None if self.received_at is None else utc_iso(self.received_at)
        return out
