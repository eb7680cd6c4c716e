"""A skewed feedback source is named; honest sources are not, even through a concept drift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.sources import NO_SOURCE, source_skew_screen, source_skew_test, two_proportion_z


def feedback(n: int, *, seed: int, sources: dict[str, float], error: float = 0.2) -> tuple[list, list, list]:
    """Labels from sources that flip the given shares; the model is right ``1 - error`` of the time."""
    rng = np.random.default_rng(seed)
    names = list(sources)
    who = rng.choice(names, n)
    truth = rng.integers(0, 2, n)
    predicted = np.where(rng.random(n) < error, 1 - truth, truth)
    flip = rng.random(n) < np.array([sources[s] for s in who])
    labels = np.where(flip, 1 - truth, truth)
    return labels.tolist(), who.tolist(), predicted.tolist()


def test_a_source_that_flips_labels_is_named_and_its_rows_flagged() -> None:
    labels, who, predicted = feedback(3000, seed=0, sources={"crm": 0.0, "partner-feed": 0.4, "app": 0.0})
    found = source_skew_test(labels, who, predicted, alpha=0.01)
    assert [e.source for e in found if e.suspect] == ["partner-feed"]
    partner = found[0]
    assert partner.disagreement > partner.disagreement_others + 0.2 and partner.adjusted_p < 1e-6
    result = source_skew_screen(labels, who, predicted)
    assert result.flagged.tolist() == [w == "partner-feed" for w in who]
    assert {r for r in result.reasons if r} == {"source:partner-feed"}
    assert result.details["sources"][0]["reason"] == "source:partner-feed"


def test_honest_sources_are_named_at_most_at_alpha() -> None:
    named = 0
    for seed in range(300):
        labels, who, predicted = feedback(600, seed=seed, sources={"a": 0.0, "b": 0.0, "c": 0.0})
        named += any(e.suspect for e in source_skew_test(labels, who, predicted, alpha=0.05))
    # family-wise: at most 5% of clean periods name anyone (Bonferroni is conservative)
    assert named / 300 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def test_a_concept_drift_that_moves_every_source_names_none() -> None:
    # the model is wrong 45% of the time for everyone: labels disagree, but alike
    labels, who, predicted = feedback(3000, seed=4, sources={"crm": 0.0, "app": 0.0}, error=0.45)
    assert not any(e.suspect for e in source_skew_test(labels, who, predicted))


def test_a_lone_source_and_small_sources_are_not_tested() -> None:
    labels, who, predicted = feedback(500, seed=1, sources={"crm": 0.4})
    assert source_skew_test(labels, who, predicted) == []
    labels, who, predicted = feedback(500, seed=1, sources={"crm": 0.0})
    who[:10] = ["tiny"] * 10
    labels[:10] = [1 - p for p in predicted[:10]]  # all wrong, but only ten labels
    assert [e.source for e in source_skew_test(labels, who, predicted, min_labels=30)] == []
    assert [e.source for e in source_skew_test(labels, who, predicted, min_labels=10)] == ["tiny", "crm"]


def test_labels_and_predictions_match_by_their_text_and_missing_sources_are_one_source() -> None:
    labels = ["1"] * 50 + [0] * 50
    who = [None] * 50 + ["crm"] * 50
    predicted = [1.0] * 50 + [0] * 50
    found = source_skew_test(labels, who, predicted)
    assert {e.source for e in found} == {NO_SOURCE, "crm"}
    assert all(e.disagreement == 0.0 for e in found)
    # the label distributions differ completely, but neither source disagrees with the model
    assert not any(e.suspect for e in found) and min(e.label_p for e in found) < 1e-10
    # rows without a prediction are left out of the disagreement test
    found = source_skew_test(labels, who, [None] * 100)
    assert all(e.disagreement is None and e.disagreement_p == 1.0 for e in found)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        source_skew_test([0, 1], ["a"], [0, 1])
    with pytest.raises(InvalidInput):
        source_skew_test([0, 1], ["a", "b"], [0, 1], alpha=0)
    with pytest.raises(InvalidInput):
        source_skew_test([0, 1], ["a", "b"], [0, 1], min_labels=0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_the_z_test_matches_scipy_chi_square(n1: int, n2: int, data: st.DataObject) -> None:
    k1 = data.draw(st.integers(0, n1))
    k2 = data.draw(st.integers(0, n2))
    z = two_proportion_z(k1, n1, k2, n2)
    if 0 < k1 + k2 < n1 + n2:
        chi2 = stats.chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)[0]
        assert z * z == pytest.approx(chi2, rel=1e-9, abs=1e-9)
    else:
        assert z == 0.0
    assert two_proportion_z(k2, n2, k1, n1) == pytest.approx(-z)
