"""Bonferroni and Benjamini-Hochberg, against scipy's false_discovery_control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.stats.multitest import benjamini_hochberg, bonferroni

p_lists = st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.0, 0.01, 0.05, 1.0]), min_size=1, max_size=60)


@pytest.mark.parametrize("seed", range(5))
def test_bh_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate((rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.0, 1.0, 0.03, 0.03]))
    rng.shuffle(p)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"),
                               rtol=1e-12, atol=1e-15)


def test_bonferroni() -> None:
    np.testing.assert_allclose(bonferroni([0.001, 0.2, 0.5]), [0.003, 0.6, 1.0])


@settings(max_examples=200, deadline=None)
@given(p_lists)
def test_bh_lies_between_raw_and_bonferroni_and_keeps_the_order(ps: list[float]) -> None:
    p = np.array(ps)
    bh, bonf = benjamini_hochberg(p), bonferroni(p)
    assert np.all(p <= bh + 1e-15) and np.all(bh <= bonf + 1e-15) and np.all(bh <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(bh[order]) >= -1e-15)
    np.testing.assert_allclose(bh, stats.false_discovery_control(p, method="bh"), rtol=1e-12, atol=1e-15)


def test_empty_input_gives_empty_output() -> None:
    assert benjamini_hochberg([]).size == 0 and bonferroni([]).size == 0


@pytest.mark.parametrize("bad", [[np.nan], [1.5], [-0.1], [[0.1, 0.2]], ["x"]])
def test_invalid_p_values(bad: object) -> None:
    for fn in (bonferroni, benjamini_hochberg):
        with pytest.raises(InvalidInput):
            fn(bad)  # type: ignore[arg-type]
