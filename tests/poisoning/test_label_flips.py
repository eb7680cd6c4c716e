"""The label-flip screen: gross flips caught, clean labels flagged at most at the stated rate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.base import null_threshold, out_of_fold_probabilities, quantile_threshold
from loopwatch.poisoning.label_flips import flip_excess, label_flip_screen, neighbour_disagreement
from tests.poisoning.worlds import logistic_world


def test_gross_flips_on_small_data_are_caught() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    far = np.flatnonzero(np.abs(x[:, 0] + x[:, 1]) > 2.0)[:10]  # deep inside a class: no doubt about them
    y[far] = 1 - y[far]
    result = label_flip_screen(x, y, fpr=0.01, seed=0)
    assert result.flagged[far].all(), result.scores[far]
    assert result.n_flagged - 10 <= 12  # clean rows flagged: about 1% of 590, with room for chance
    assert result.reasons[far[0]] == "label_flip" and result.reasons[np.flatnonzero(~result.flagged)[0]] is None
    assert result.to_dict()["n_flagged"] == result.n_flagged and result.fpr == 0.01


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_clean_labels_lose_no_row_though_the_threshold_keeps_its_rate(fpr: float) -> None:
    rates, runs_with_rows_set_aside = [], 0
    for seed in range(6):
        x, y = logistic_world(2000, seed=seed)
        result = label_flip_screen(x, y, fpr=fpr, seed=seed)
        rates.append(result.details["rows_above"] / y.size)
        runs_with_rows_set_aside += result.n_flagged > 0
        assert result.n_flagged in (0, result.details["rows_above"])
    # honest noise fills the tail as the null expects: no excess, so nothing is set aside (alpha 1% a run)
    assert runs_with_rows_set_aside <= 1
    # the threshold bounds the expected rate; calibration error of the fitted model may add a little
    assert np.mean(rates) <= fpr * 1.3 + 0.002
    assert np.mean(rates) >= fpr * 0.3  # not so conservative that it never fires


def test_the_excess_test_against_a_known_null() -> None:
    # 1,000 rows each 1% likely to carry the other label: the null expects 10 rows at score 0.99
    candidate = np.tile([0.01, 0.99], (1000, 1))
    weights = np.tile([0.99, 0.01], (1000, 1))
    honest = np.where(np.arange(1000) < 10, 0.99, 0.01)  # as many as the null expects
    assert not flip_excess(honest, candidate, weights, up_to=10, alpha=0.01).passes(0.01)
    flipped = np.where(np.arange(1000) < 60, 0.99, 0.01)  # six times as many: 50 flips beyond honest noise
    found = flip_excess(flipped, candidate, weights, up_to=60, alpha=0.01)
    assert found.passes(0.01) and found.observed == 60 and found.expected == pytest.approx(10.0)
    # the p-value is the binomial tail at the null's mean, times the ranks tried (8, 16, 32)
    assert found.p_value == pytest.approx(min(1.0, 3 * stats.binom.sf(59, 1000, 0.01)))


def test_random_flips_are_found_far_above_the_false_positive_rate() -> None:
    x, y = logistic_world(3000, seed=11, strength=4.0)
    rng = np.random.default_rng(11)
    flipped = rng.random(y.size) < 0.05
    result = label_flip_screen(x, np.where(flipped, 1 - y, y), fpr=0.01, seed=0)
    # flips near the boundary look like honest noise: a share is found, many times the false-positive rate
    assert result.flagged[flipped].mean() > 0.15
    assert result.flagged[~flipped].mean() < 0.02


def test_more_than_two_classes_and_text_labels() -> None:
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0], [6, 0], [0, 6]])
    codes = rng.integers(0, 3, 3000)
    x = centres[codes] + rng.normal(size=(3000, 2))
    labels = np.array(["red", "green", "blue"], dtype=object)[codes]
    labels[:30] = "green"  # about 20 rows of the other two clusters called green
    wrong = codes[:30] != 1
    result = label_flip_screen(x, labels.tolist(), seed=1)
    assert result.flagged[:30][wrong].all() and not result.flagged[30:].any()
    assert result.details["classes"] == ["blue", "green", "red"]


def test_the_screen_is_deterministic_and_leaves_its_input_alone() -> None:
    x, y = logistic_world(400, seed=2)
    x_before, y_before = x.copy(), y.copy()
    first, second = label_flip_screen(x, y, seed=7), label_flip_screen(x, y, seed=7)
    assert np.array_equal(first.scores, second.scores) and first.threshold == second.threshold
    assert np.array_equal(x, x_before) and np.array_equal(y, y_before)


def test_bad_input_is_refused() -> None:
    x, y = logistic_world(100, seed=0)
    for kwargs in ({"fpr": 0.0}, {"fpr": 1.5}, {"k": 0}, {"k": True}, {"probabilities": np.ones((3, 2))}):
        with pytest.raises(InvalidInput):
            label_flip_screen(x, y, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        label_flip_screen(x[:50], y)


def test_neighbour_disagreement_against_a_brute_force_count() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    codes = rng.integers(0, 3, 60)
    got = neighbour_disagreement(x, codes, 3, k=5)
    distances = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    for i in range(60):
        nearest = np.argsort(distances[i], kind="stable")[:5]
        for c in range(3):
            assert got[i, c] == pytest.approx(1.0 - np.mean(codes[nearest] == c))


def test_out_of_fold_probabilities_never_saw_their_row() -> None:
    x, y = logistic_world(300, seed=4)
    proba = out_of_fold_probabilities(x, y, 2, seed=0)
    assert proba.shape == (300, 2) and np.allclose(proba.sum(axis=1), 1.0)
    # a row duplicated with the other label changes only the probabilities of other folds' rows
    assert out_of_fold_probabilities(x, y, 2, seed=0).tolist() == proba.tolist()
    one_class = out_of_fold_probabilities(x, np.zeros(300, dtype=np.int64), 2)
    assert np.allclose(one_class, [1.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 40).flatmap(lambda n: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=n * 2, max_size=n * 2),
        st.lists(st.floats(0.0, 1.0), min_size=n * 2, max_size=n * 2),
    )),
    st.floats(0.001, 0.5),
)
def test_null_threshold_is_the_lowest_that_keeps_the_expected_rate(pair: tuple[list[float], list[float]],
                                                                    fpr: float) -> None:
    scores = np.round(np.array(pair[0]).reshape(-1, 2), 2)  # ties on purpose
    raw = np.array(pair[1]).reshape(-1, 2) + 1e-9
    weights = raw / raw.sum(axis=1, keepdims=True)
    t = null_threshold(scores, weights, fpr)
    n = scores.shape[0]

    def expected(threshold: float) -> float:
        return float((weights * (scores > threshold)).sum() / n)

    assert expected(t) <= fpr + 1e-9
    lower = scores[scores < t]
    if lower.size:  # the next candidate down would flag too much
        assert expected(float(lower.max())) > fpr - 1e-9


def test_quantile_threshold_flags_at_most_the_share() -> None:
    scores = np.arange(1000.0)
    t = quantile_threshold(scores, 0.01)
    assert (scores > t).sum() == 10
    assert (scores > quantile_threshold(scores, 0.0001)).sum() == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300), st.floats(1.0, 3.0), st.integers(0, 300))
def test_an_excess_that_clean_data_explains_never_passes(values: list[float], inflation: float, up_to: int) -> None:
    from loopwatch.poisoning.base import MAX_NOISE_SHARE, tail_excess

    scores = np.array(values)

    def as_many_as_seen(cut: float) -> float:  # clean data explains every row, or more
        return inflation * float((scores >= cut).sum())

    found = tail_excess(scores, as_many_as_seen, up_to=up_to, alpha=0.01)
    assert not found.passes(0.01)
    assert found.observed == int((scores >= found.cut).sum())
    # and where clean data puts nothing, eight rows or more are an excess
    nothing = tail_excess(scores, lambda cut: 0.0, up_to=up_to, alpha=0.01)
    assert nothing.passes(0.01) == (scores.size >= 8)
    assert nothing.expected <= MAX_NOISE_SHARE * nothing.observed
