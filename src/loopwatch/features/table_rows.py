"""Validate a training table sent as JSON rows, as strictly as predict rows are validated.

A training table has no schema yet: its columns get their kinds from it. So the
rules are per column. Each value is a number, a string or null; a column holds
numbers or strings, never both (a string ``"0.5"`` in a numeric column is an
error, not a number read from text). A column of booleans trains a categorical
feature of boolean flags (known as ``"true"`` and ``"false"``, as predict reads
them); a boolean among numbers is an error. Arrays, objects, non-finite
numbers, strings with a NUL character and strings over
:data:`~loopwatch.features.validate.MAX_CATEGORY_LENGTH` are refused. A key
missing from a row is a null, as in a CSV with an empty cell.

>>> rows = [{"x": 1.5, "plan": "basic"}, {"x": 2, "plan": None}]
>>> validate_table_rows(rows, min_rows=2).dtypes.to_dict()
{'x': dtype('float64'), 'plan': dtype('O')}
>>> validate_table_rows([{"x": 1.5}, {"x": "2"}, {"x": 3}], min_rows=3)
Traceback (most recent call last):
...
loopwatch.errors.SchemaViolation: column 'x': row 1 holds a string among numbers
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from loopwatch.errors import InvalidInput, SchemaViolation, echo
from loopwatch.features.validate import MAX_CATEGORY_LENGTH, MAX_REPORTED_PROBLEMS, json_type

#: Longest column name accepted.
MAX_COLUMN_NAME_LENGTH = 200


def validate_table_rows(rows: Sequence[Any], *, min_rows: int = 10) -> pd.DataFrame:
    """The rows as a table, or a :class:`SchemaViolation` listing what is wrong (up to a limit)."""
    if not isinstance(rows, list) or len(rows) < min_rows or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput(f"rows must be a list of at least {min_rows} objects")
    problems: list[dict[str, Any]] = []

    def problem(row: int | None, column: str, message: str) -> None:
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append({"row": row, "column": _shown(column), "problem": message})

    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            names.setdefault(key)
    for name in names:
        if len(name) > MAX_COLUMN_NAME_LENGTH or "\x00" in name or not name.strip():
            problem(None, name, f"a column name is 1 to {MAX_COLUMN_NAME_LENGTH} characters, without NUL")
    columns: dict[str, list[Any]] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        kinds = [_kind(value) for value in values]
        for index, (value, kind) in enumerate(zip(values, kinds)):
            if kind == "bad":
                problem(index, name, _why_refused(value))
        present = {kind for kind in kinds if kind in ("number", "string", "boolean")}
        if len(present) > 1:
            # name the first row whose kind is the column's rarer one: that is the likely mistake
            rare = min(present, key=lambda k: (kinds.count(k), k))
            others = " and ".join(sorted(present - {rare}))
            problem(kinds.index(rare), name, f"row {kinds.index(rare)} holds a {rare} among {others}s")
        columns[name] = values
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise SchemaViolation(f"column {echo(first['column'])}: {first['problem']}{more}", detail={"problems": problems})
    return pd.DataFrame({name: _column(values) for name, values in columns.items()}, columns=list(columns))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        try:
            return "number" if math.isfinite(float(value)) else "bad"
        except OverflowError:
            return "bad"
    if isinstance(value, str):
        return "string" if len(value) <= MAX_CATEGORY_LENGTH and "\x00" not in value else "bad"
    return "bad"


def _why_refused(value: Any) -> str:
    if isinstance(value, str):
        if "\x00" in value:
            return "text with a NUL character"
        return f"a string longer than {MAX_CATEGORY_LENGTH} characters"
    if isinstance(value, (int, float)):
        return "a number must be finite and within a double's range"
    return f"expected a number, a string or null, got {json_type(value)}"


def _column(values: list[Any]) -> pd.Series:
    if any(isinstance(v, str) for v in values):
        return pd.Series(values, dtype=object)
    if any(isinstance(v, bool) for v in values):  # flags stay booleans: their schema records the type
        return pd.Series(values, dtype=object if None in values else bool)
    if all(v is None or isinstance(v, int) for v in values) and None not in values:
        return pd.Series(values, dtype="int64") if all(abs(v) < 2**63 for v in values) else pd.Series(
            [float(v) for v in values], dtype="float64")
    return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")


def _shown(name: str) -> str:
    # a name is echoed back: never at length (a hostile key can be megabytes)
    return name if len(name) <= 100 else name[:100] + "..."
