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
            columns[str(name)] = {
                "kind": "str",
                "values": [None if pd.isna(v) else str(v) for v in column],
            }
    return gzip.compress(dumps({"columns": columns}), mtime=0)


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
