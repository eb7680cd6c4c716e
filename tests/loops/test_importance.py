"""Label-free sensitivity of a model to each feature, and the docstring examples of the
loops package."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from loopwatch.errors import InvalidInput
from loopwatch.loops.importance import prediction_sensitivity

FEATURES = ["x1", "x2", "x3"]


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, pd.DataFrame]:
    """y depends on x1 strongly, on x2 weakly and not at all on x3."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(4000, 3)), columns=FEATURES)
    logit = 3.0 * frame["x1"] + 0.6 * frame["x2"]
    y = rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))
    model = LogisticRegression().fit(frame[FEATURES], y)
    return model, frame


def _output(model: LogisticRegression):  # type: ignore[no-untyped-def]
    return lambda rows: model.predict_proba(rows[FEATURES])[:, 1]


def test_the_shares_follow_how_much_the_model_uses_each_feature(fitted) -> None:  # type: ignore[no-untyped-def]
    model, frame = fitted
    shares = prediction_sensitivity(_output(model), frame, FEATURES, seed=1)
    assert shares["x1"] > shares["x2"] > shares["x3"]
    assert shares["x3"] < 0.02
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(share >= 0 for share in shares.values())


def test_same_seed_same_shares_and_the_input_is_untouched(fitted) -> None:  # type: ignore[no-untyped-def]
    model, frame = fitted
    before = frame.copy()
    first = prediction_sensitivity(_output(model), frame, FEATURES, seed=3, max_rows=300)
    again = prediction_sensitivity(_output(model), frame, FEATURES, seed=3, max_rows=300)
    other = prediction_sensitivity(_output(model), frame, FEATURES, seed=4, max_rows=300)
    assert first == again
    assert first != other  # the seed is the only randomness, and it is used
    pd.testing.assert_frame_equal(frame, before)


def test_at_most_max_rows_reach_the_model(fitted) -> None:  # type: ignore[no-untyped-def]
    model, frame = fitted
    sizes: list[int] = []

    def counting(rows: pd.DataFrame) -> np.ndarray:
        sizes.append(len(rows))
        return _output(model)(rows)

    prediction_sensitivity(counting, frame, FEATURES, max_rows=250)
    assert sizes == [250] * (len(FEATURES) + 1)


def test_a_model_that_ignores_every_feature_shares_equally() -> None:
    rows = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) ** 2})
    assert prediction_sensitivity(lambda f: np.zeros(len(f)), rows, ["a", "b"]) == {"a": 0.5, "b": 0.5}
    assert prediction_sensitivity(lambda f: np.zeros(len(f)), rows, []) == {}


def test_categorical_columns_are_shuffled_too() -> None:
    rows = pd.DataFrame({"plan": pd.Categorical(["basic", "pro"] * 50), "noise": np.zeros(100)})
    shares = prediction_sensitivity(lambda f: (f["plan"] == "pro").to_numpy(dtype=float), rows, ["plan", "noise"])
    assert shares == {"plan": 1.0, "noise": 0.0}


@pytest.mark.parametrize(
    ("rows", "features", "max_rows"),
    [
        (pd.DataFrame({"a": [1.0, 2.0]}), ["a", "missing"], 500),
        (pd.DataFrame({"a": [1.0]}), ["a"], 500),
        (pd.DataFrame({"a": []}), ["a"], 500),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}), ["a"], 1),
    ],
)
def test_bad_input_is_refused_clearly(rows: pd.DataFrame, features: list[str], max_rows: int) -> None:
    with pytest.raises(InvalidInput):
        prediction_sensitivity(lambda f: f["a"].to_numpy(), rows, features, max_rows=max_rows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=-5, max_value=5), min_size=3, max_size=3),
    st.integers(min_value=2, max_value=80),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_shares_of_a_linear_model_sum_to_one(weights: list[float], n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    before = rows.copy()
    shares = prediction_sensitivity(lambda f: f[FEATURES].to_numpy() @ np.array(weights), rows, FEATURES,
                                    seed=seed)
    assert list(shares) == FEATURES
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(0.0 <= s <= 1.0 + 1e-12 for s in shares.values())
    if len(set(shares.values())) > 1:  # (a model that never moved shares equally)
        for name, weight in zip(FEATURES, weights):
            if weight == 0.0:
                assert shares[name] == 0.0
    pd.testing.assert_frame_equal(rows, before)
