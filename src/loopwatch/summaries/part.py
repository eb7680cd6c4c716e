"""The contract every window-summary part follows.

A part is immutable. ``merge`` returns a new part that summarises the rows of both
operands; it is associative and commutative (exactly, for exact parts; within the
stated bound, for sketches). ``empty`` parts are the identity of ``merge``.
``to_dict`` gives JSON-safe values only (sketch bytes as base64 text), and
``from_dict(part.to_dict())`` equals ``part``.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

PartT = TypeVar("PartT", bound="SummaryPart")


class SummaryPart(Protocol):
    #: The number of rows (or events) the part summarises.
    @property
    def n(self) -> int: ...

    def merge(self: PartT, other: PartT, /) -> PartT: ...

    def to_dict(self) -> dict[str, Any]: ...
