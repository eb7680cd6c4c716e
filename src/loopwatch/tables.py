"""Read tables from CSV or Parquet, by path or from bytes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Literal, Sequence

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


def split_names(values: Iterable[str]) -> list[str]:
    """Column names from repeated options that may each hold a comma-separated list, in order,
    once each: ``("a,b", "c")`` gives ``["a", "b", "c"]``."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def select_columns(
    reference: Sequence[str], current: Sequence[str], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> list[str]:
    """The columns of two tables to compare: ``include`` (all when empty) less ``exclude``.

    A name in neither table is refused, naming it: a misspelt ``--exclude`` would
    otherwise leave an id column to be tested as a feature and raise a false alarm.
    A name in only one table is fine; the comparison reports the missing column.
    """
    known = list(dict.fromkeys([*reference, *current]))
    unknown = [name for name in (*include, *exclude) if name not in known]
    if unknown:
        listed = ", ".join(repr(n) for n in dict.fromkeys(unknown))
        raise InvalidInput(f"no column named {listed} in either table; the columns are: {', '.join(known)}")
    chosen = [c for c in known if c in include] if include else known
    left = [c for c in chosen if c not in exclude]
    if not left:
        raise InvalidInput("no column is left to compare once --columns and --exclude are applied")
    return left
