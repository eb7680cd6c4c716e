"""JSON in and out, strict about non-finite numbers in both directions.

orjson refuses ``NaN``/``Infinity`` literals when parsing, so hostile bodies
cannot smuggle them in; when writing it turns non-finite floats into ``null``,
which is what a logged missing value should be.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from loopwatch.errors import UnreadableData

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def _default(value: Any) -> Any:
    # numpy scalars of kinds orjson does not know (e.g. np.str_), sets, paths
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableData(f"body is not valid JSON: {exc}") from exc


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
