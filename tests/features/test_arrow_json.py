"""Bulk JSON encoding of Arrow columns: what each row's object reads back as."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.features.arrow_json import encode_feature, join_objects, list_texts, number_texts
from loopwatch.features.schema import Feature

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finite, st.none()), min_size=1, max_size=40))
def test_numbers_read_back_as_the_same_float(values: list[float | None]) -> None:
    array = np.array([0.0 if v is None else v for v in values])
    missing = np.array([v is None for v in values])
    texts = number_texts(array, missing).to_pylist()
    for text, value in zip(texts, values):
        parsed = orjson.loads(text)  # also proves the text is JSON
        if value is None:
            assert parsed is None
        else:
            assert float(parsed) == value
            assert math.copysign(1.0, float(parsed)) == math.copysign(1.0, value) or value == 0.0


def test_integral_floats_are_written_as_integers_and_fractions_in_shortest_form() -> None:
    assert number_texts(np.array([544.0, -3.0, 0.0]), np.zeros(3, bool)).to_pylist() == ["544", "-3", "0"]
    assert number_texts(np.array([0.1, 2.0]), np.zeros(2, bool)).to_pylist() == ["0.1", "2"]
    # beyond 2**53 an integral float is not formatted through int64
    assert orjson.loads(number_texts(np.array([1e22]), np.zeros(1, bool)).to_pylist()[0]) == 1e22


labels = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(labels, st.none()), min_size=1, max_size=30),
       st.lists(st.one_of(finite, st.none()), min_size=30, max_size=30))
def test_objects_read_back_as_the_rows(categories: list[str | None], numbers: list[float | None]) -> None:
    n = len(categories)
    numbers = numbers[:n]
    known = tuple(sorted({c for c in categories if c is not None})) or ("a",)
    colour = Feature(name='colour "quoted"\\', kind="categorical", categories=known, category_type="string")
    size = Feature(name="size", kind="numeric")
    problems: list[dict] = []
    encoded = [encode_feature(colour, pa.array(categories, type=pa.string()), offset=0, problems=problems),
               encode_feature(size, pa.array(numbers, type=pa.float64()), offset=0, problems=problems)]
    assert problems == []
    rows = [orjson.loads(text) for text in join_objects(encoded).to_pylist()]
    assert rows == [{colour.name: c, "size": v} for c, v in zip(categories, numbers)]
    assert encoded[0].missing.tolist() == [c is None for c in categories]


def test_integer_codes_become_labels_and_a_refused_column_names_its_rows() -> None:
    code = Feature(name="carrier", kind="categorical", categories=("3", "10"), category_type="integer")
    problems: list[dict] = []
    encoded = encode_feature(code, pa.array([3, 10, None, 3], type=pa.int64()), offset=100, problems=problems)
    assert encoded is not None
    assert encoded.pieces.to_pylist() == ['"carrier":"3"', '"carrier":"10"', '"carrier":null', '"carrier":"3"']
    refused = encode_feature(code, pa.array([3.0, 2.5, None, 1.5]), offset=100, problems=problems)
    assert refused is None
    assert [p["row"] for p in problems] == [101, 103]
    assert {p["feature"] for p in problems} == {"carrier"}


def test_a_numeric_column_refuses_strings_and_non_finite_numbers() -> None:
    size = Feature(name="size", kind="numeric")
    problems: list[dict] = []
    assert encode_feature(size, pa.array(["a", "b"]), offset=0, problems=problems) is None
    assert encode_feature(size, pa.array([1.0, float("inf")]), offset=0, problems=problems) is None
    assert [p["row"] for p in problems] == [0, 1]


def test_a_column_left_empty_is_all_missing_not_refused() -> None:
    problems: list[dict] = []
    for feature in (Feature(name="x", kind="numeric"),
                    Feature(name="c", kind="categorical", categories=("a",), category_type="string")):
        encoded = encode_feature(feature, pa.nulls(3), offset=0, problems=problems)
        assert encoded is not None and encoded.missing.all()
        assert [orjson.loads("{" + piece + "}") for piece in encoded.pieces.to_pylist()] == [{feature.name: None}] * 3
    assert problems == []


def test_probability_rows_are_json_arrays() -> None:
    texts = list_texts([np.array([0.25, 1.0]), np.array([0.75, 0.0])]).to_pylist()
    assert [orjson.loads(t) for t in texts] == [[0.25, 0.75], [1.0, 0.0]]


def test_join_needs_a_column() -> None:
    with pytest.raises(ValueError):
        join_objects([])
