"""Reference samples as compact, typed, gzip-compressed JSON.

Kept in the store beside the artifact so that every worker and every machine
that reaches the database sees the same reference data; JSON keeps the core
free of a Parquet dependency, and the column kinds travel with it.
"""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.records.jsonutil import dumps, loads


def encode_frame(frame: pd.DataFrame) -> bytes:
    columns: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            columns[str(name)] = {"kind": "bool", "values": [bool(v) for v in column]}
        elif pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            integral = bool(np.all(np.isnan(values) | (np.mod(values, 1) == 0)))
            columns[str(name)] = {
                "kind": "int" if integral and not np.isnan(values).any() else "float",
                "values": [None if np.isnan(v) else float(v) for v in values],
            }
        else:
            values = [_plain(v) for v in column]
            # strings alone keep the format samples always had; a column mixing JSON types
            # (integer codes or flags with nulls) keeps each value's type, so ``True`` does not
            # come back as the string "True" and a code past 2**53 is not rounded
            kind = "str" if all(v is None or isinstance(v, str) for v in values) else "json"
            columns[str(name)] = {"kind": kind, "values": values}
    return gzip.compress(dumps({"columns": columns}), mtime=0)


def _plain(value: Any) -> Any:
    """A sample value as JSON holds it: None for missing; bool, int, finite float, str; else text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)  # past what JSON numbers carry here; its label is the same text
    return value if isinstance(value, (bool, int, str)) else str(value)


def decode_frame(data: bytes) -> pd.DataFrame:
    columns = loads(gzip.decompress(data))["columns"]
    out = {}
    for name, spec in columns.items():
        values = spec["values"]
        if spec["kind"] == "int":
            out[name] = np.array(values, dtype=np.int64)
        elif spec["kind"] == "float":
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif spec["kind"] == "bool":
            out[name] = np.array(values, dtype=bool)
        else:
            out[name] = pd.array(values, dtype=object)
    return pd.DataFrame(out)
