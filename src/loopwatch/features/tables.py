"""Read tables from CSV or Parquet, by path or from bytes."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Iterable, Literal, Sequence

import pandas as pd

from loopwatch.errors import InvalidInput, NotFound, UnreadableData, require, echo, listed

TableFormat = Literal["csv", "parquet"]


def format_of(path: str | Path) -> TableFormat:
    suffix = Path(path).suffix.lower()
    if suffix in {".csv", ".txt"}:
        return "csv"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise InvalidInput(f"cannot tell the format of {echo(str(path))}: name it .csv or .parquet")


def read_table(
    source: str | Path | bytes, *, fmt: TableFormat | None = None, text_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """A CSV or Parquet table. ``text_columns`` of a CSV are read as the text they hold
    (``007`` stays ``007``, not the number 7), as ids must be to match ids sent later."""
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
            frame = pd.read_parquet(handle)
        else:
            frame = pd.read_csv(handle, dtype={c: str for c in text_columns} or None)
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
        raise InvalidInput(f"no column named {listed(dict.fromkeys(unknown), quote=True)} in either table; "
                           f"the columns are: {listed(known, most=50)}")
    chosen = [c for c in known if c in include] if include else known
    left = [c for c in chosen if c not in exclude]
    if not left:
        raise InvalidInput("no column is left to compare once --columns and --exclude are applied")
    return left


#: Rows named in an error about a column's cells.
_ROWS_SHOWN = 5


def _rows(positions: Sequence[int]) -> str:
    shown = ", ".join(str(p) for p in positions[:_ROWS_SHOWN])
    return f"{shown} and {len(positions) - _ROWS_SHOWN} more" if len(positions) > _ROWS_SHOWN else shown


def column_times(column: pd.Series, *, name: str) -> list[datetime]:
    """A column of event times as UTC datetimes: ISO-8601 text (a time without a zone is UTC,
    as everywhere on the command line) or timestamps (a Parquet column). A cell that is empty
    or holds no time is refused, naming its row (counted from 0)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
    elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
        text = column.where(column.map(lambda v: isinstance(v, str)))
        parsed = pd.to_datetime(text.str.strip(), utc=True, errors="coerce", format="ISO8601")
    else:  # numbers are no times: seconds, milliseconds or days since when?
        raise InvalidInput(f"column {echo(name)} holds {column.dtype} values, not times: "
                           "write ISO-8601 times such as 2013-03-04T06:00:00Z")
    missing = [int(i) for i in (~parsed.notna()).to_numpy().nonzero()[0]]
    if missing:
        raise InvalidInput(f"column {echo(name)}: row {_rows(missing)} holds no ISO-8601 time "
                           "(such as 2013-03-04T06:00:00Z)")
    return [moment.to_pydatetime(warn=False) for moment in parsed]


def column_ids(column: pd.Series) -> list[str | None]:
    """A column of ids as text, ``None`` where empty: integers (as Parquet holds them, or a CSV
    with empty cells read as floats) lose no digits and gain no ``.0``."""

    def text(value: object) -> str | None:
        if value is None or (isinstance(value, float) and value != value):  # NaN: an empty cell
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return str(value)

    return [text(v) for v in column.astype(object).tolist()]
