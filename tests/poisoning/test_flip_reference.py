"""The flip screen judged against a trusted reference: flips a model of the table absorbs are found,
genuine tables keep their rows, a change of class shares is not taken for flips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.features.schema import infer_schema
from loopwatch.poisoning.screening import screen_training_data
from loopwatch.poisoning.base import null_threshold
from loopwatch.poisoning.flip_reference import MIN_REFERENCE_LABELS, reference_null, with_shares
from loopwatch.poisoning.label_flips import label_flip_screen
from tests.poisoning.worlds import logistic_world
from tests.realdata import FERTILITY_CATEGORICAL, fertility


def flipped(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    poisoned = rng.random(y.size) < share
    out = y.copy()
    out[poisoned] = 1 - out[poisoned]
    return out, poisoned


def screen(x: np.ndarray, y: np.ndarray, x_ref: np.ndarray | None, y_ref: np.ndarray | None, seed: int):
    null = None
    if x_ref is not None and y_ref is not None:
        shares = np.bincount(y, minlength=2) / y.size
        null = reference_null(x_ref, y_ref.tolist(), x, ["0", "1"], shares, seed=seed)
    return label_flip_screen(x, y, fpr=0.01, seed=seed, alpha=0.01, reference=null)


def test_random_flips_in_noisy_labels_are_found_against_a_reference_and_not_without() -> None:
    found_with, found_without, false_positives = [], [], []
    for seed in (21, 22, 23):
        # churn-like: a fifth positive, honest labels disagree with any model often
        x, y = logistic_world(5000, seed=seed, strength=1.5, intercept=-1.5)
        x_ref, y_ref = logistic_world(5000, seed=seed + 100, strength=1.5, intercept=-1.5)
        y_bad, poisoned = flipped(y, 0.05, seed)
        with_reference = screen(x, y_bad, x_ref, y_ref, seed)
        assert with_reference.details["null"] == "reference of 5000 rows"
        found_with.append(with_reference.flagged[poisoned].mean())
        false_positives.append(with_reference.flagged[~poisoned].mean())
        found_without.append(screen(x, y_bad, None, None, seed).flagged[poisoned].mean())
    # a model fitted on the flipped table learns to expect the flips; a model of the reference does not
    assert np.median(found_with) >= 0.1 and np.median(found_with) > np.median(found_without) + 0.05
    assert max(false_positives) <= 0.02  # what a poisoned table pays: the rows above the 1% line


def test_clean_tables_lose_no_row_against_a_reference_of_the_same_world() -> None:
    runs_with_rows_set_aside = 0
    for seed in range(5):
        x, y = logistic_world(4000, seed=seed, strength=1.5, intercept=-1.5)
        x_ref, y_ref = logistic_world(3000, seed=seed + 50, strength=1.5, intercept=-1.5)
        result = screen(x, y, x_ref, y_ref, seed)
        runs_with_rows_set_aside += result.n_flagged > 0
    assert runs_with_rows_set_aside == 0  # alpha is 1% a run


def test_more_positive_labels_alone_are_not_flips() -> None:
    # the same relation of features to labels, twice the positives: a change of class shares
    rng = np.random.default_rng(7)
    x_ref = rng.normal(size=(4000, 3))
    x = rng.normal(size=(4000, 3))

    def labels(features: np.ndarray, intercept: float) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(intercept + 2.0 * features[:, 0])))
        return (rng.random(len(features)) < p).astype(int)

    y_ref, y = labels(x_ref, -2.0), labels(x, -0.8)
    assert y.mean() > 1.6 * y_ref.mean()
    result = screen(x, y, x_ref, y_ref, 0)
    assert result.n_flagged == 0 and not result.details["excess"]["holds_poison"]


def test_the_reference_null_counts_as_a_direct_sum() -> None:
    x, y = logistic_world(600, seed=3)
    x_ref, y_ref = logistic_world(400, seed=4)
    null = reference_null(x_ref, y_ref.tolist(), x, ["0", "1"], np.array([0.5, 0.5]), seed=0)
    assert null is not None and null.n_reference == 400
    for cut in (0.5, 0.8, 0.95):
        direct = sum(q[c] for q in null.probabilities for c in range(2) if 1.0 - q[c] >= cut)
        own = null.reference_scores
        on_reference = null.reference_weights[null.reference_candidates >= cut].sum()
        scale = max(1.0, ((own >= cut).sum() + 1.0) / (on_reference + 1.0))
        assert null.expected(cut) == pytest.approx(direct * scale)
    # the model's part is the clean-label null of the threshold: above its 1% line, at most 1% of rows
    t = null_threshold(1.0 - null.probabilities, null.probabilities, 0.01)
    q = null.probabilities
    assert q[(1.0 - q) > t].sum() / 600 <= 0.01 + 1e-12


def test_a_reference_too_small_or_missing_a_class_gives_no_null() -> None:
    x, _ = logistic_world(300, seed=1)
    x_ref, y_ref = logistic_world(MIN_REFERENCE_LABELS - 1, seed=2)
    assert reference_null(x_ref, y_ref.tolist(), x, ["0", "1"], np.array([0.5, 0.5])) is None
    x_ref, _ = logistic_world(500, seed=2)
    assert reference_null(x_ref, [0] * 500, x, ["0", "1"], np.array([0.5, 0.5])) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.floats(0.05, 0.9))
def test_with_shares_meets_the_shares_and_moves_every_row_by_one_factor_per_class(seed, k, first) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=200)
    shares = np.r_[first, (1.0 - first) * rng.dirichlet(np.ones(k - 1))]
    adjusted = with_shares(p, shares)
    assert np.allclose(adjusted.sum(axis=1), 1.0)
    assert np.allclose(adjusted.mean(axis=0), shares, atol=1e-3)
    # a prior shift: the odds of class c against class 0 change by the same factor on every row
    ratio = (adjusted[:, 1:] / adjusted[:, :1]) / (p[:, 1:] / p[:, :1])
    assert np.allclose(ratio, ratio[0], rtol=1e-6)


def test_genuine_census_mothers_against_a_reference_of_other_mothers_keep_their_rows() -> None:
    census = fertility().sample(frac=1.0, random_state=5).reset_index(drop=True)
    half = len(census) // 2
    reference = census.iloc[:half].sample(n=10_000, random_state=0).reset_index(drop=True)
    table = census.iloc[half:].sample(n=30_000, random_state=0).reset_index(drop=True)
    schema = infer_schema(reference, "morekids", categorical=FERTILITY_CATEGORICAL)
    result = screen_training_data(table, label_column="morekids", schema=schema, reference=reference)
    flips = next(s for s in result.screens if s["name"] == "label_flips")
    assert flips["null"] == "reference of 10000 rows"
    assert (~result.kept).mean() <= 0.005, result.to_dict(max_rows=0)["reasons"]
