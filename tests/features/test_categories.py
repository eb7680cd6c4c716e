"""Categories as users have them: integer codes, strings, booleans, with nulls.

One category is one label wherever the schema says the column is categorical: ``3``,
``3.0`` and ``"3"`` are the same code. These are the pure parts (the schema, validation and
the one canonical frame); tests/test_category_round_trip.py sends them through a real store
and the monitor.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import SchemaViolation
from loopwatch.features.frames import labels_of, model_frame, typed_frame
from loopwatch.features.schema import Feature, FeatureSchema, accepted_category_type, category_label, infer_schema
from loopwatch.features.validate import validate_rows


def plain(values: object) -> list[object]:
    """A column's values with pandas' missing markers as None."""
    return [None if pd.isna(v) else v for v in values]  # type: ignore[attr-defined]


def table(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "grade": rng.integers(1, 5, n),                       # integer codes, declared categorical
        "count": rng.integers(0, 9, n),                       # integers, not declared: numeric
        "flag": rng.integers(0, 2, n).astype(bool),
        "plan": rng.choice(["basic", "pro"], n),
        "coded_with_nulls": [1.0, None] + [2.0, 3.0] * ((n - 2) // 2),  # codes a CSV read as floats
        "y": [0, 1] * (n // 2),
    })


@pytest.fixture(scope="module")
def schema() -> FeatureSchema:
    return infer_schema(table(), "y", categorical=["grade", "coded_with_nulls"])


def test_the_schema_records_each_categorys_type_and_leaves_undeclared_codes_numeric(schema: FeatureSchema) -> None:
    kinds = {f.name: (f.kind, f.category_type) for f in schema.features}
    assert kinds == {
        "grade": ("categorical", "integer"), "count": ("numeric", None), "flag": ("categorical", "boolean"),
        "plan": ("categorical", "string"), "coded_with_nulls": ("categorical", "integer"),
    }
    assert schema.feature("coded_with_nulls").categories == ("1", "2", "3")
    assert schema.feature("flag").categories == ("false", "true")
    # the type survives the store's JSON
    assert FeatureSchema.from_dict(schema.to_dict()) == schema


@pytest.mark.parametrize("sent", [3, 3.0, "3", np.int64(3), np.float64(3.0)])
def test_every_form_of_an_integer_code_is_one_category(schema: FeatureSchema, sent: object) -> None:
    row = {"grade": sent, "count": 2, "flag": True, "plan": "pro", "coded_with_nulls": sent}
    validated = validate_rows(schema, [row])
    assert validated.rows[0]["grade"] == "3" and validated.rows[0]["coded_with_nulls"] == "3"
    assert validated.frame["grade"].tolist() == ["3"]


@pytest.mark.parametrize(
    ("feature", "sent", "problem"),
    [
        ("grade", 3.5, "expected an integer category code, got 3.5"),
        ("grade", True, "expected an integer category code or its label as a string, got boolean"),
        ("grade", [3], "expected an integer category code or its label as a string, got array"),
        ("grade", 2**70, "integer category code out of range"),
        ("flag", 1, "expected a boolean category or its label as a string, got number"),
        ("plan", 3, "expected a string category, got number"),
        ("plan", False, "expected a string category, got boolean"),
        ("count", "2", "expected a number, got string"),  # numbers are never read from text
        ("count", True, "expected a number, got boolean"),
    ],
)
def test_what_a_type_does_not_allow_is_a_clear_problem(
    schema: FeatureSchema, feature: str, sent: object, problem: str
) -> None:
    row = {"grade": 1, "count": 2, "flag": True, "plan": "pro", "coded_with_nulls": 1, feature: sent}
    with pytest.raises(SchemaViolation) as caught:
        validate_rows(schema, [row])
    assert caught.value.detail["problems"] == [{"row": 0, "feature": feature, "problem": problem}]


def test_a_string_is_always_a_category_even_an_unknown_one(schema: FeatureSchema) -> None:
    row = {"grade": "seven", "count": 2, "flag": "true", "plan": "3", "coded_with_nulls": "01"}
    assert validate_rows(schema, [row]).rows[0] == {**row, "count": 2.0}


def test_a_schema_stored_before_the_type_takes_codes_when_its_categories_are_codes() -> None:
    old = {"name": "grade", "kind": "categorical", "categories": ["1", "2", "10"]}
    stored = {"features": [old, {**old, "name": "plan", "categories": ["a", "b"]}], "target": "y",
              "task": "classification", "classes": [0, 1]}
    schema = FeatureSchema.from_dict(stored)
    assert schema.feature("grade").category_type is None
    assert accepted_category_type(schema.feature("grade")) == "integer"
    assert validate_rows(schema, [{"grade": 10, "plan": True}]).rows == [{"grade": "10", "plan": "true"}]
    with pytest.raises(SchemaViolation, match="expected a string category, got number"):
        validate_rows(schema, [{"grade": 1, "plan": 1}])
    assert accepted_category_type(Feature(name="f", kind="categorical", categories=("false", "true"))) == "boolean"
    # "01" is not the label of a number: such a column stays strings
    assert accepted_category_type(Feature(name="f", kind="categorical", categories=("01", "2"))) is None


def test_model_frame_is_the_pipelines_form_and_typed_frame_gives_the_recorded_types(schema: FeatureSchema) -> None:
    rows = pd.DataFrame({
        "grade": [3, "3", 3.0, None], "count": [1, None, 2.5, 4], "flag": [True, "false", None, np.True_],
        "plan": ["a", None, "b", "a"], "coded_with_nulls": [np.nan, 2.0, 2, "2"], "extra": [1, 2, 3, 4],
    })
    canonical = model_frame(rows, schema)
    assert list(canonical.columns) == schema.names
    assert plain(canonical["grade"]) == ["3", "3", "3", None]
    assert plain(canonical["flag"]) == ["true", "false", None, "true"]
    assert plain(canonical["coded_with_nulls"]) == [None, "2", "2", "2"]
    assert canonical["count"].dtype == np.float64 and np.isnan(canonical["count"][1])
    typed = typed_frame(canonical, schema)
    assert plain(typed["grade"]) == [3, 3, 3, None] and type(typed["grade"][0]) is int
    assert plain(typed["flag"]) == [True, False, None, True]
    assert plain(typed["plan"]) == ["a", None, "b", "a"]
    full = typed_frame(model_frame(table(), schema), schema)
    assert full["grade"].dtype == np.int64 and full["flag"].dtype == bool
    # retrained on the typed frame, a version records the types production recorded
    again = infer_schema(full.assign(y=table()["y"]), "y", categorical=["grade", "coded_with_nulls"])
    assert [f.category_type for f in again.features] == [f.category_type for f in schema.features]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**62), 2**62)), min_size=1, max_size=30))
def test_integer_codes_survive_every_form_and_come_back_as_sent(codes: list[int | None]) -> None:
    schema = FeatureSchema(
        features=(Feature(name="c", kind="categorical", nullable=True, category_type="integer"),),
        target="y", task="classification",
    )
    forms = [codes, [None if c is None else str(c) for c in codes],
             [None if c is None else float(c) if abs(c) < 2**53 else c for c in codes]]
    labels = [None if c is None else str(c) for c in codes]
    for form in forms:
        validated = validate_rows(schema, [{"c": v} for v in form])
        assert [r["c"] for r in validated.rows] == labels
    assert labels_of(pd.Series(codes, dtype=object)) == labels
    # logged rows hold labels, so even codes past a double's 2**53 come back exactly
    assert plain(typed_frame(pd.DataFrame(validated.rows), schema)["c"]) == codes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), st.text(max_size=12)), min_size=1, max_size=30))
def test_strings_and_booleans_are_their_labels(values: list[object]) -> None:
    assert labels_of(values) == [None if v is None else category_label(v) for v in values]
    flags = [v for v in values if v is None or isinstance(v, bool)]
    schema = FeatureSchema(
        features=(Feature(name="f", kind="categorical", nullable=True, category_type="boolean"),),
        target="y", task="classification",
    )
    if flags:
        rows = validate_rows(schema, [{"f": v} for v in flags]).rows
        assert plain(typed_frame(pd.DataFrame(rows), schema)["f"]) == flags


def test_a_number_whose_label_is_one_of_a_string_columns_categories_is_that_category() -> None:
    mixed = FeatureSchema(
        features=(Feature(name="room", kind="categorical", categories=("1", "2b", "true"), category_type="string"),),
        target="y", task="classification",
    )
    assert validate_rows(mixed, [{"room": 1}, {"room": 1.0}, {"room": True}, {"room": "2b"}]).rows == [
        {"room": "1"}, {"room": "1"}, {"room": "true"}, {"room": "2b"}]
    # a number that is no category of the column is a type mistake, not an unknown category
    with pytest.raises(SchemaViolation) as caught:
        validate_rows(mixed, [{"room": 2}, {"room": 10**5000}, {"room": False}])
    assert [p["problem"] for p in caught.value.detail["problems"]] == [
        "expected a string category, got number", "expected a string category, got number",
        "expected a string category, got boolean"]


def test_the_reference_sample_keeps_flags_and_codes_with_nulls_in_their_types() -> None:
    from loopwatch.registry.samples import decode_frame, encode_frame

    frame = pd.DataFrame({
        "flag": pd.Series([True, None, False], dtype=object),
        "code": pd.Series([3, None, 2**60], dtype=object),
        "huge": pd.Series([2**70, None, 1], dtype=object),
        "plan": ["a", None, "b"],
    })
    back = decode_frame(encode_frame(frame))
    assert plain(back["flag"]) == [True, None, False]  # not the strings "True" and "False"
    assert plain(back["code"]) == [3, None, 2**60]
    assert plain(back["huge"]) == [str(2**70), None, 1]
    assert plain(back["plan"]) == ["a", None, "b"]
    assert labels_of(back["flag"]) == ["true", None, "false"]
