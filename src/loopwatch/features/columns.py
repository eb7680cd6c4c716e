"""Validate whole columns against a feature schema: the rules of :mod:`validate`, vectorised.

Bulk ingestion of a file checks a column at a time with numpy instead of a value at
a time. The rules are those of :func:`~loopwatch.features.validate.validate_rows`:
a numeric feature takes finite numbers, never strings or booleans; a categorical
feature takes what its recorded type allows (integer codes as integers or integral
floats, flags as booleans, any category as its label string, and a number or flag
whose label is a category of a string column) and is known by its label from then
on. A null is accepted and counted as missing, as ingestion accepts it (the model
has already answered). Problems carry the row and feature like row validation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopwatch.features.schema import Feature, accepted_category_type
from loopwatch.features.validate import MAX_CATEGORY_LENGTH, MAX_REPORTED_PROBLEMS


@dataclass(frozen=True)
class CheckedColumn:
    #: Numbers as float64 (NaN for nulls), or category labels as objects (None for nulls).
    values: np.ndarray
    #: True where the value was null.
    missing: np.ndarray


def check_column(feature: Feature, values: np.ndarray, missing: np.ndarray, *, offset: int = 0,
                 problems: list[dict[str, Any]]) -> CheckedColumn | None:
    """``values`` as numpy gives them (any dtype), ``missing`` the null mask; ``None`` when
    refused, after appending its problems (rows numbered from ``offset``)."""
    name = feature.name

    def refuse(rows: np.ndarray, message: str) -> None:
        for row in rows[: max(0, MAX_REPORTED_PROBLEMS - len(problems))]:
            problems.append({"row": int(row) + offset, "feature": name, "problem": message})

    present = ~missing
    kind = values.dtype.kind
    if not present.any():
        # all null (a file's column left empty in a batch is typed null): nothing to check
        if feature.kind == "numeric":
            return CheckedColumn(np.full(len(values), np.nan), missing)
        return CheckedColumn(np.full(len(values), None, dtype=object), missing)
    if feature.kind == "numeric":
        if kind not in "iuf":
            what = {"b": "boolean", "U": "string", "O": "string", "S": "string"}.get(kind, kind)
            refuse(np.flatnonzero(present)[:1], f"expected a number, got {what}")
            return None
        numbers = values.astype(np.float64, copy=False)
        bad = present & ~np.isfinite(numbers)
        if bad.any():
            refuse(np.flatnonzero(bad), "number must be finite")
            return None
        out = numbers.copy() if numbers is values else numbers
        out[missing] = np.nan
        return CheckedColumn(out, missing)
    category_type = accepted_category_type(feature)
    labels = np.empty(len(values), dtype=object)
    if kind in "iu" and category_type == "integer":
        labels[present] = values[present].astype(str).astype(object)
    elif kind == "f" and category_type == "integer":
        chosen = values[present]
        bad = ~(np.isfinite(chosen) & (np.floor(chosen) == chosen) & (np.abs(chosen) < 2.0**64))
        if bad.any():
            refuse(np.flatnonzero(present)[bad], "expected an integer category code")
            return None
        if (np.abs(chosen) < 2.0**63).all():  # the common case, in numpy
            labels[present] = chosen.astype(np.int64).astype(str).astype(object)
        else:
            labels[present] = np.array([str(int(v)) for v in chosen.tolist()], dtype=object)
    elif kind == "b" and category_type in ("boolean", None):
        labels[present] = np.where(values[present], "true", "false").astype(object)
    elif kind in "OUS":
        chosen = values[present]
        if not all(isinstance(v, str) for v in chosen):
            refuse(np.flatnonzero(present)[:1], "expected a string category")
            return None
        too_long = np.fromiter((len(v) > MAX_CATEGORY_LENGTH for v in chosen), dtype=bool, count=len(chosen))
        if too_long.any():
            refuse(np.flatnonzero(present)[too_long], f"category longer than {MAX_CATEGORY_LENGTH} characters")
            return None
        labels[present] = chosen
    elif category_type == "string" and kind in "iufb":
        # a number whose label is one of the column's categories is that category
        from loopwatch.features.schema import category_label

        known = frozenset(feature.categories)
        chosen = [category_label(v) for v in values[present].tolist()]
        bad = np.array([label not in known for label in chosen], dtype=bool)
        if bad.any():
            refuse(np.flatnonzero(present)[bad], "expected a string category")
            return None
        labels[present] = np.array(chosen, dtype=object)
    else:
        expected = {"integer": "an integer category code", "boolean": "a boolean category"}.get(category_type or "",
                                                                                             "a string category")
        refuse(np.flatnonzero(present)[:1], f"expected {expected} or its label as a string")
        return None
    labels[missing] = None
    return CheckedColumn(labels, missing)
