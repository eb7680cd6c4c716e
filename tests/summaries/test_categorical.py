"""The categorical part: exact counts up to the cap, frequent items and distinct counts past it."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.features.frames import labels_of
from loopwatch.summaries.categorical import CategoricalPart

labels = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 6), st.none())


@settings(max_examples=100, deadline=None)
@given(st.lists(labels, max_size=40), st.data())
def test_exact_counts_merge_like_one_batch(rows: list[object], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    whole = CategoricalPart.from_values(rows)
    a, b = CategoricalPart.from_values(rows[:cut]), CategoricalPart.from_values(rows[cut:])
    assert a.merge(b) == whole == b.merge(a)
    assert a.merge(CategoricalPart.empty()) == a
    expected = Counter(label for label in labels_of(rows) if label is not None)
    assert whole.counts == dict(expected) and whole.n == len(rows)
    assert CategoricalPart.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole


def test_integer_codes_and_their_text_are_one_category() -> None:
    part = CategoricalPart.from_values([3, "3", 3.0, np.int64(3), None, float("nan")])
    assert part.counts == {"3": 4} and part.n_null == 2


def test_past_the_cap_estimates_stay_within_their_bound() -> None:
    rng = np.random.default_rng(7341)
    # a Zipf-like feature with 5,000 categories, in 6 batches of 20,000 rows
    batches = [rng.zipf(1.3, 20_000) % 5_000 for _ in range(6)]
    merged = CategoricalPart.empty()
    for batch in batches:
        merged = merged.merge(CategoricalPart.from_values(batch))
    truth = Counter(str(v) for v in np.concatenate(batches).tolist())
    assert not merged.exact and merged.count == sum(truth.values())
    assert 0 < merged.count_error <= 0.0035 * merged.count
    estimates = merged.estimated_counts()
    for label, true_count in truth.items():
        if label in estimates:
            assert true_count <= estimates[label] <= true_count + merged.count_error
        else:
            assert true_count <= merged.count_error
    est, low, high = merged.distinct_count()
    assert low <= len(truth) <= high and abs(est - len(truth)) < 0.05 * len(truth)
    again = CategoricalPart.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert again.estimated_counts() == estimates


def test_crossing_the_cap_in_a_merge() -> None:
    a = CategoricalPart.from_values(list("abc"), cap=4)
    b = CategoricalPart.from_values(list("cde"), cap=4)
    merged = a.merge(b)
    assert not merged.exact and merged.estimated_counts() == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}
    assert merged.merge(a).estimated_counts()["a"] == 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        CategoricalPart.from_values(["a"], cap=0)
    good = CategoricalPart.from_values(["a", "b"]).to_dict()
    sketched = CategoricalPart.from_values(list("abc"), cap=2).to_dict()
    with pytest.raises(InvalidInput, match="count"):
        CategoricalPart.from_dict({**sketched, "count": 4})
    for change in ({"count": 3}, {"counts": {"a": -1, "b": 3}}, {"counts": None}, {"kind": "numeric"},
                   {"counts": None, "frequent": "AAAA", "distinct": "AAAA"}, {"frequent": "!!"}):
        with pytest.raises(InvalidInput):
            CategoricalPart.from_dict({**good, **change})
