"""Row validation against a feature schema: strict, complete, never coercing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import PayloadTooLarge, SchemaViolation
from loopwatch.features import Feature, FeatureSchema, validate_rows

SCHEMA = FeatureSchema(
    features=(
        Feature(name="amount", kind="numeric", minimum=0, maximum=10),
        Feature(name="age", kind="numeric", nullable=True),
        Feature(name="country", kind="categorical", categories=("DE", "FR")),
        Feature(name="plan", kind="categorical", nullable=True, categories=("a", "b")),
    ),
    target="y",
    task="classification",
    classes=(0, 1),
)

finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**15), 10**15)
text = st.text(max_size=30)
valid_row = st.fixed_dictionaries(
    {
        "amount": finite,
        "age": finite | st.none(),
        "country": text,
        "plan": text | st.none(),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(valid_row, min_size=1, max_size=20))
def test_valid_rows_pass_and_keep_their_values(rows: list[dict]) -> None:
    validated = validate_rows(SCHEMA, rows)
    assert list(validated.frame.columns) == SCHEMA.names
    assert validated.n_rows == len(rows)
    np.testing.assert_array_equal(validated.frame["amount"].to_numpy(), [float(r["amount"]) for r in rows])
    for i, row in enumerate(rows):
        assert validated.missing[i] == [k for k in ("age", "plan") if row[k] is None]
        assert validated.rows[i]["country"] == row["country"]
    summary = validated.request_summary()
    assert summary["shape"] == [len(rows), 4]
    assert summary["n_missing"] == sum(len(m) for m in validated.missing)


bad_number = (
    st.text(max_size=5)
    | st.booleans()
    | st.just(math.nan)
    | st.just(math.inf)
    | st.just(-math.inf)
    | st.just(10**400)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)
)
bad_category = st.floats() | st.integers() | st.lists(st.text(max_size=2), max_size=2) | st.just({})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(valid_row, min_size=1, max_size=10),
    st.data(),
)
def test_any_bad_value_is_named_with_its_row_and_feature(rows: list[dict], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    feature, value = data.draw(
        st.sampled_from(["amount", "country", "null", "unknown", "missing"]).flatmap(
            lambda kind: st.tuples(
                st.just(kind),
                bad_number if kind == "amount" else bad_category if kind == "country" else st.just(None),
            )
        )
    )
    row = dict(rows[index])
    if feature == "null":
        feature, row["amount"] = "amount", None
    elif feature == "unknown":
        feature, row["colour"] = "colour", 1
    elif feature == "missing":
        feature = "country"
        del row["country"]
    else:
        row[feature] = value
    rows = [*rows[:index], row, *rows[index + 1 :]]
    with pytest.raises(SchemaViolation) as caught:
        validate_rows(SCHEMA, rows)
    problems = caught.value.detail["problems"]
    assert {"row": index, "feature": feature} in [{"row": p["row"], "feature": p["feature"]} for p in problems]
    assert caught.value.status == 422


def test_booleans_are_categories_never_numbers() -> None:
    with pytest.raises(SchemaViolation, match="expected a number, got boolean"):
        validate_rows(SCHEMA, [{"amount": True, "age": 1, "country": "DE", "plan": "a"}])
    validated = validate_rows(SCHEMA, [{"amount": 1, "age": 1, "country": True, "plan": "a"}])
    assert validated.rows[0]["country"] == "true"


def test_problems_are_listed_up_to_a_limit() -> None:
    rows = [{"amount": "x", "age": 1, "country": "DE", "plan": None}] * 100
    with pytest.raises(SchemaViolation) as caught:
        validate_rows(SCHEMA, rows)
    assert len(caught.value.detail["problems"]) == 20
    assert "more problems" in caught.value.message


def test_shape_errors() -> None:
    with pytest.raises(SchemaViolation, match="at least one row"):
        validate_rows(SCHEMA, [])
    with pytest.raises(SchemaViolation, match="list"):
        validate_rows(SCHEMA, {"amount": 1})  # type: ignore[arg-type]
    with pytest.raises(SchemaViolation, match="JSON object"):
        validate_rows(SCHEMA, [[1, 2]])
    with pytest.raises(PayloadTooLarge):
        validate_rows(SCHEMA, [{"amount": 1, "age": 1, "country": "DE", "plan": "a"}] * 6, max_rows=5)
    with pytest.raises(SchemaViolation, match="longer than"):
        validate_rows(SCHEMA, [{"amount": 1, "age": 1, "country": "D" * 2000, "plan": "a"}])
