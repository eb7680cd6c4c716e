"""Read tables from CSV or Parquet, by path or from bytes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import pandas as pd

from loopwatch.errors import InvalidInput, NotFound, UnreadableData, require

TableFormat = Literal["csv", "parquet"]


def format_of(path: str | Path) -> TableFormat:
    suffix = Path(path).suffix.lower()
    if suffix in {".csv", ".txt"}:
        return "csv"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise InvalidInput(f"cannot tell the format of {str(path)!r}: name it .csv or .parquet")


def read_table(source: str | Path | bytes, *, fmt: TableFormat | None = None) -> pd.DataFrame:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"no such file: {path}")
        fmt = fmt or format_of(path)
        handle: object = path
    else:
        if fmt is None:
            raise InvalidInput("the format of the data must be named: csv or parquet")
        handle = io.BytesIO(source)
    try:
        if fmt == "parquet":
            require("pyarrow", "parquet")
            frame = pd.read_parquet(handle)  # type: ignore[arg-type]
        else:
            frame = pd.read_csv(handle)  # type: ignore[arg-type]
    except (InvalidInput, NotFound):
        raise
    except Exception as exc:
        raise UnreadableData(f"could not read the {fmt} data: {exc}") from exc
    if frame.empty:
        raise UnreadableData("the table has no rows")
    return frame
