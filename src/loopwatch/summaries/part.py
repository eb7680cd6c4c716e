"""The contract every window-summary part follows.

A part is immutable. ``merge`` returns a new part that summarises the rows of both
operands; it is associative and commutative (exactly, for exact parts; within the
stated bound, for sketches). ``empty`` parts are the identity of ``merge``.
``to_dict`` gives JSON-safe values only (sketch bytes as base64 text), and
``from_dict(part.to_dict())`` equals ``part``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

PartT = TypeVar("PartT", bound="SummaryPart")


class SummaryPart(Protocol):
    #: The number of rows (or events) the part summarises.
    @property
    def n(self) -> int: ...

    def merge(self: PartT, other: PartT, /) -> PartT: ...

    def to_dict(self) -> dict[str, Any]: ...


def frozen_mapping(value: Any) -> Any:
    """A read-only view of a mapping and of every mapping inside it (other values unchanged),
    so that a part's counts and sums cannot change after it is built.

    >>> m = frozen_mapping({"a": {"b": 1}})
    >>> m["a"]["b"], isinstance(m, MappingProxyType), isinstance(m["a"], MappingProxyType)
    (1, True, True)
    """
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen_mapping(v) for key, v in value.items()})
    return value


def freeze_fields(part: Any, *names: str) -> None:
    """Replace the named mapping fields of a frozen dataclass by read-only views (for ``__post_init__``)."""
    for name in names:
        object.__setattr__(part, name, frozen_mapping(getattr(part, name)))
