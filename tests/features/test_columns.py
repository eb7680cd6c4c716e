"""Column checks agree with row validation: the same values are accepted or refused, and
accepted categories get the same labels (one rule, two speeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import SchemaViolation
from loopwatch.features import validate_rows
from loopwatch.features.columns import check_column
from loopwatch.features.schema import Feature, FeatureSchema

FEATURES = {
    "amount": Feature(name="amount", kind="numeric"),
    "carrier": Feature(name="carrier", kind="categorical", categories=("1", "2", "9"), category_type="integer"),
    "plan": Feature(name="plan", kind="categorical", categories=("basic", "3"), category_type="string"),
    "flag": Feature(name="flag", kind="categorical", categories=("true", "false"), category_type="boolean"),
}


def by_rows(feature: Feature, values: list[Any]) -> list[Any] | None:
    schema = FeatureSchema(features=(feature,), target="y", task="regression")
    try:
        checked = validate_rows(schema, [{feature.name: v} for v in values], imputes=[feature.name])
    except SchemaViolation:
        return None
    return [row[feature.name] for row in checked.rows]


def by_column(feature: Feature, values: np.ndarray, missing: np.ndarray) -> list[Any] | None:
    problems: list[dict[str, Any]] = []
    checked = check_column(feature, values, missing, problems=problems)
    if checked is None:
        assert problems and all(p["feature"] == feature.name for p in problems)
        return None
    out = checked.values.tolist()
    return [None if m else (v if feature.kind == "categorical" else float(v)) for v, m in zip(out, missing.tolist())]


@pytest.mark.parametrize(("name", "values", "accepted"), [
    ("amount", np.array([1.5, 2.0, -3.0]), True),
    ("amount", np.array([1.5, np.inf]), False),
    ("amount", np.array(["1.5", "2"], dtype=object), False),
    ("amount", np.array([True, False]), False),
    ("carrier", np.array([1, 2, 9]), True),
    ("carrier", np.array([1.0, 2.0]), True),
    ("carrier", np.array([1.5, 2.0]), False),
    ("carrier", np.array([1e19, 2.0]), True),
    ("carrier", np.array([2.0**64, 2.0]), False),
    ("carrier", np.array(["1", "7"], dtype=object), True),
    ("carrier", np.array([True, False]), False),
    ("plan", np.array(["basic", "gold"], dtype=object), True),
    ("plan", np.array([3, 3]), True),
    ("plan", np.array([4, 3]), False),
    ("flag", np.array([True, False]), True),
    ("flag", np.array(["true", "no"], dtype=object), True),
    ("flag", np.array([1, 0]), False),
])
def test_known_columns_are_judged_as_rows_are(name: str, values: np.ndarray, accepted: bool) -> None:
    feature = FEATURES[name]
    missing = np.zeros(len(values), dtype=bool)
    expected = by_rows(feature, values.tolist())
    assert (expected is not None) == accepted
    assert by_column(feature, values, missing) == expected


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["amount", "carrier"]),
    values=st.lists(st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=True, width=64),
                              st.none()), min_size=1, max_size=20),
)
def test_numeric_columns_with_nulls_agree_with_row_validation(name: str, values: list[Any]) -> None:
    feature = FEATURES[name]
    missing = np.array([v is None for v in values])
    column = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    expected = by_rows(feature, [None if v is None else float(v) for v in values])
    assert by_column(feature, column, missing) == expected
