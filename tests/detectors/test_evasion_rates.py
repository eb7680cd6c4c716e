"""Per-client evasion rates: the tests agree with scipy's binomial test, fire on a client whose
flagged share is raised, and on clients at the calibrated rate stay within their stated level."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.detectors.evasion_rates import evasion_by_client
from loopwatch.errors import InvalidInput


def flags(k: int, n: int) -> list[bool]:
    return [True] * k + [False] * (n - k)


def test_p_values_are_scipys_conditional_binomial_tests() -> None:
    found = {c.client_id: c for c in evasion_by_client(
        {"a": flags(12, 300), "b": flags(3, 500)}, k_calibration=10, n_calibration=1000, alpha=0.05)}
    a = found["a"]
    total = 12 + 10
    expected_calibration = stats.binomtest(12, total, 300 / 1300, alternative="greater").pvalue
    expected_others = stats.binomtest(12, 12 + 3, 300 / 800, alternative="greater").pvalue
    assert a.p_calibration == pytest.approx(expected_calibration, rel=1e-12)
    assert a.p_others == pytest.approx(expected_others, rel=1e-12)
    assert a.level == pytest.approx(0.025)  # Bonferroni over the two clients tested
    assert a.rate == pytest.approx(0.04) and a.calibrated_rate == pytest.approx(0.01)
    assert a.others_rate == pytest.approx(3 / 500)


def test_a_raised_share_is_a_suspect_and_the_ordinary_clients_are_not() -> None:
    rng = np.random.default_rng(0)
    clients = {f"client-{i}": list(rng.random(400) < 0.01) for i in range(5)}
    clients["evader"] = list(rng.random(60) < 0.4)
    found = evasion_by_client(clients, k_calibration=20, n_calibration=2000)
    assert [c.client_id for c in found if c.suspect] == ["evader"]
    assert found[0].client_id == "evader"  # most flagged share first


def test_everyone_raised_together_is_not_one_client_standing_out() -> None:
    """Drift raises every client's scores: no client stands out from the others."""
    rng = np.random.default_rng(1)
    clients = {f"client-{i}": list(rng.random(400) < 0.2) for i in range(4)}
    found = evasion_by_client(clients, k_calibration=20, n_calibration=2000)
    assert all(c.p_calibration < c.level for c in found)
    assert not any(c.suspect for c in found)


def test_a_client_flagged_often_every_day_is_judged_against_its_own_history() -> None:
    """A client whose customers differ from the training population is flagged at 5% every
    day: above the calibration and the other clients, but that is its normal."""
    rng = np.random.default_rng(3)
    window = {"mobile": list(rng.random(400) < 0.06), "web": list(rng.random(600) < 0.01)}
    history = {"mobile": (100, 2000), "web": (20, 2000)}
    without = {c.client_id: c for c in evasion_by_client(window, k_calibration=10, n_calibration=1000,
                                                         alpha=0.01)}
    with_history = {c.client_id: c for c in evasion_by_client(window, k_calibration=10, n_calibration=1000,
                                                              history=history, alpha=0.01)}
    assert without["mobile"].suspect and without["mobile"].p_history is None
    mobile = with_history["mobile"]
    assert not mobile.suspect and mobile.history_rate == pytest.approx(0.05)
    k = sum(window["mobile"])
    expected = stats.binomtest(k, k + 100, 400 / 2400, alternative="greater").pvalue
    assert mobile.p_history == pytest.approx(expected, rel=1e-12)
    # the same client, attacked: far above its own history too
    attacked = {**window, "mobile": window["mobile"][:300] + [True] * 100}
    (first, *_) = evasion_by_client(attacked, k_calibration=10, n_calibration=1000, history=history)
    assert first.client_id == "mobile" and first.suspect and first.p_history < first.level


def test_a_short_history_is_not_used() -> None:
    (found,) = evasion_by_client({"a": flags(20, 100)}, k_calibration=10, n_calibration=1000,
                                 history={"a": (10, 50)}, min_history=100)
    assert found.p_history is None and found.history_rate is None


def test_a_client_alone_is_tested_against_the_calibration_only() -> None:
    (alone,) = evasion_by_client({"only": flags(30, 100)}, k_calibration=10, n_calibration=1000)
    assert alone.others_rate is None and alone.p_others is None and alone.suspect


def test_clients_with_too_few_rows_are_not_tested_but_count_as_others() -> None:
    found = evasion_by_client({"big": flags(4, 400), "small": flags(10, 10)}, k_calibration=10,
                              n_calibration=1000, min_rows=30)
    (big,) = found
    assert big.client_id == "big" and big.level == 0.001 and big.others_rate is None
    assert evasion_by_client({"small": flags(10, 10)}, k_calibration=10, n_calibration=1000) == []


def test_at_the_calibrated_rate_false_suspects_stay_within_alpha() -> None:
    """2,000 windows of 5 clients, every row flagged with the calibration's own probability: the
    share of windows with any suspect is at most alpha (Bonferroni keeps the family's level)."""
    rng = np.random.default_rng(7)
    alpha, windows, rate = 0.05, 2000, 0.01
    n_calibration = 1000
    raised = 0
    for _ in range(windows):
        k_calibration = int(rng.binomial(n_calibration, rate))
        clients = {f"c{i}": list(rng.random(int(rng.integers(50, 400))) < rate) for i in range(5)}
        found = evasion_by_client(clients, k_calibration=k_calibration, n_calibration=n_calibration, alpha=alpha)
        raised += any(c.suspect for c in found)
    share = raised / windows
    # the binomial's 99.9% upper bound over 2,000 windows at the stated level
    assert share <= alpha + 3.1 * np.sqrt(alpha * (1 - alpha) / windows)


@settings(max_examples=150, deadline=None)
@given(st.integers(30, 300), st.data())
def test_more_flags_never_make_a_client_less_suspicious(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n - 1))
    others = {"other": flags(data.draw(st.integers(0, 50)), 200)}
    before = {c.client_id: c for c in evasion_by_client({"x": flags(k, n), **others}, k_calibration=5,
                                                          n_calibration=500)}["x"]
    after = {c.client_id: c for c in evasion_by_client({"x": flags(k + 1, n), **others}, k_calibration=5,
                                                         n_calibration=500)}["x"]
    assert after.p_calibration <= before.p_calibration + 1e-12
    assert after.suspect or not before.suspect


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=5), st.lists(st.booleans(), min_size=0, max_size=80),
                       max_size=5))
def test_the_order_of_clients_and_rows_does_not_matter(clients: dict[str, list[bool]]) -> None:
    forward = evasion_by_client(clients, k_calibration=3, n_calibration=300, min_rows=5)
    backward = evasion_by_client({c: v[::-1] for c, v in reversed(list(clients.items()))}, k_calibration=3,
                                 n_calibration=300, min_rows=5)
    assert [c.to_dict() for c in forward] == [c.to_dict() for c in backward]


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"min_rows": 0}, {"min_rows": 2.5},
                                    {"min_history": 0}, {"min_history": True}])
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        evasion_by_client({"a": flags(1, 40)}, k_calibration=1, n_calibration=100, **kwargs)
