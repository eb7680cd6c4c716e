"""Rows far from the trusted reference: injected rows caught, reference-like rows at the stated rate."""

from __future__ import annotations

import numpy as np
import pytest

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.reference_distance import reference_distance_screen


def test_injected_rows_far_from_the_reference_are_caught() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 4))
    rows = rng.normal(size=(500, 4))
    rows[:8] = rng.normal(size=(8, 4)) + np.array([7.0, -7.0, 0.0, 7.0])  # impossible combinations
    result = reference_distance_screen(rows, reference, fpr=0.01, seed=0)
    assert result.flagged[:8].all()
    assert result.flagged[8:].sum() <= 15
    assert set(result.reasons[:8]) == {"far_from_reference"}
    assert result.details["n_reference"] == 1000 and set(result.details["thresholds"]) == {"isolation_forest", "pca_reconstruction"}
    assert result.details["excess"]["holds_poison"] and result.details["excess"]["expected"] < 2


def test_the_excess_is_counted_against_the_held_out_reference() -> None:
    # a covariate shift of a whole table is an excess too: the screen reports it, as documented
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(2000, 3))
    shifted = reference_distance_screen(rng.normal(size=(1000, 3)) + 1.5, reference, seed=0)
    assert shifted.details["excess"]["holds_poison"] and shifted.n_flagged >= shifted.details["rows_above"]


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_rows_like_the_reference_lose_nothing_though_the_line_keeps_its_rate(fpr: float) -> None:
    rates, runs_with_rows_set_aside = [], 0
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        reference, rows = rng.normal(size=(2000, 5)), rng.normal(size=(2000, 5))
        result = reference_distance_screen(rows, reference, fpr=fpr, seed=seed)
        rates.append(result.details["rows_above"] / 2000)
        runs_with_rows_set_aside += result.n_flagged > 0
    # the farthest rows are as many as the reference's held-out half predicts: none set aside (alpha 1%)
    assert runs_with_rows_set_aside <= 1
    # two detectors at fpr / 2 each: between fpr / 2 (they flag the same rows) and fpr (disjoint
    # rows); each threshold is a quantile of 1000 held-out rows, with an error of about
    # sqrt(fpr / 2 / 1000) that five seeds average down
    slack = 3 * np.sqrt(fpr / 2 / 1000) / np.sqrt(5) + 0.002
    assert fpr / 2 - slack < np.mean(rates) < fpr + slack


def test_the_screen_is_deterministic_and_refuses_bad_input() -> None:
    rng = np.random.default_rng(1)
    reference, rows = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    before = rows.copy()
    first = reference_distance_screen(rows, reference, seed=3)
    assert np.array_equal(first.scores, reference_distance_screen(rows, reference, seed=3).scores)
    assert np.array_equal(rows, before)
    assert reference_distance_screen(np.zeros((0, 2)), reference).n_flagged == 0
    with pytest.raises(InvalidInput):
        reference_distance_screen(rows, reference[:50])
    with pytest.raises(InvalidInput):
        reference_distance_screen(rows[:, :1], reference)
    with pytest.raises(InvalidInput):
        reference_distance_screen(rows, reference, fpr=1.0)
