"""Training rows sent as JSON: per-column kinds, never coerced, every problem reported."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput, SchemaViolation
from loopwatch.features.table_rows import validate_table_rows
from loopwatch.features.validate import MAX_CATEGORY_LENGTH, MAX_REPORTED_PROBLEMS


def table(**columns: list) -> list[dict]:
    n = len(next(iter(columns.values())))
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def test_an_ordinary_table_keeps_its_values_and_kinds() -> None:
    rows = table(x=[1.5, 2, None], n=[1, 2, 3], plan=["a", None, "b"], flag=[True, False, None])
    frame = validate_table_rows(rows, min_rows=3)
    assert list(frame.columns) == ["x", "n", "plan", "flag"]
    assert frame["x"].dtype == np.float64 and math.isnan(frame["x"][2]) and frame["x"][1] == 2.0
    assert frame["n"].dtype == np.int64 and frame["n"].tolist() == [1, 2, 3]
    assert frame["plan"].tolist() == ["a", None, "b"]
    # flags stay booleans, so the schema records boolean categories (labels "true", "false")
    assert frame["flag"].tolist() == [True, False, None]
    assert validate_table_rows(table(flag=[True, False, True]), min_rows=3)["flag"].dtype == bool


def test_a_missing_key_is_a_null() -> None:
    frame = validate_table_rows([{"x": 1.0, "y": "a"}, {"x": 2.0}], min_rows=2)
    assert frame["y"].tolist() == ["a", None]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0.5", "row 1 holds a string among numbers"),
        (True, "row 1 holds a boolean among numbers"),
        ({"value": 1}, "expected a number, a string or null, got object"),
        ([1, 2], "expected a number, a string or null, got array"),
        (math.inf, "finite"),
        (10**400, "finite"),
    ],
)
def test_a_wrong_value_in_a_numeric_column_is_named_with_its_row(bad: object, message: str) -> None:
    rows = table(x=[1.0, bad, 3.0, 4.0], y=["a", "b", "a", "b"])
    with pytest.raises(SchemaViolation, match="column 'x'") as caught:
        validate_table_rows(rows, min_rows=4)
    problems = caught.value.detail["problems"]
    assert problems[0]["column"] == "x" and problems[0]["row"] == 1
    assert message in problems[0]["problem"]


@pytest.mark.parametrize(("bad", "message"), [
    ("a\x00b", "NUL"),
    ("x" * (MAX_CATEGORY_LENGTH + 1), f"longer than {MAX_CATEGORY_LENGTH}"),
])
def test_hostile_text_is_refused(bad: str, message: str) -> None:
    with pytest.raises(SchemaViolation, match=message):
        validate_table_rows(table(plan=["a", "b", bad]), min_rows=3)


def test_a_category_of_the_longest_length_is_accepted() -> None:
    longest = "x" * MAX_CATEGORY_LENGTH
    assert validate_table_rows(table(plan=["a", longest]), min_rows=2)["plan"][1] == longest


def test_hostile_column_names_are_refused_and_never_echoed_at_length() -> None:
    long_name = "k" * 10_000
    with pytest.raises(SchemaViolation) as caught:
        validate_table_rows([{long_name: 1}, {long_name: 2}], min_rows=2)
    assert len(caught.value.message) < 400
    with pytest.raises(SchemaViolation, match="column name"):
        validate_table_rows([{"a\x00": 1}, {"a\x00": 2}], min_rows=2)


def test_problems_are_listed_up_to_the_limit() -> None:
    rows = table(x=[1.0] + [{"bad": i} for i in range(50)])
    with pytest.raises(SchemaViolation, match="more problems") as caught:
        validate_table_rows(rows, min_rows=2)
    assert len(caught.value.detail["problems"]) == MAX_REPORTED_PROBLEMS


@pytest.mark.parametrize("rows", [[], [{"x": 1}] * 3, [{"x": 1}] * 9 + [[1]], {"x": [1] * 20}, None])
def test_too_few_rows_or_rows_that_are_not_objects(rows: object) -> None:
    with pytest.raises(InvalidInput, match="at least 10 objects"):
        validate_table_rows(rows)  # type: ignore[arg-type]


numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
texts = st.text(max_size=20).filter(lambda t: "\x00" not in t)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(numbers | st.none(), min_size=2, max_size=30),
    st.lists(texts | st.none(), min_size=2, max_size=30),
)
def test_a_column_of_one_kind_reads_as_pandas_reads_it(xs: list, ys: list) -> None:
    """The reference: pandas' own reading of the same records, once they are known to be clean."""
    n = min(len(xs), len(ys))
    rows = table(x=xs[:n], y=ys[:n])
    frame = validate_table_rows(rows, min_rows=2)
    expected = pd.DataFrame.from_records(rows)
    np.testing.assert_array_equal(frame["x"].to_numpy(dtype=float), expected["x"].to_numpy(dtype=float))
    # a column of nulls only has no kind: it reads as missing numbers, as pandas reads it
    assert [None if v is None or v != v else v for v in frame["y"].tolist()] == ys[:n]


@settings(max_examples=150, deadline=None)
@given(st.lists(numbers, min_size=2, max_size=20), texts, st.data())
def test_one_string_among_numbers_is_always_refused_at_its_row(xs: list, text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(xs) - 1))
    values = [*xs[:at], text, *xs[at + 1:]]
    if sum(isinstance(v, str) for v in values) * 2 >= len(values):
        return  # then the numbers are the rarer kind, and the first of them is named
    with pytest.raises(SchemaViolation) as caught:
        validate_table_rows(table(x=values), min_rows=2)
    assert caught.value.detail["problems"][0]["row"] == at
