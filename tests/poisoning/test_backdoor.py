"""A backdoor trigger (a rare exact pattern that comes with one label) is caught; clean data is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.backdoor import backdoor_screen
from loopwatch.poisoning.base import class_codes, encode_features, out_of_fold_probabilities
from tests.poisoning.worlds import customers

NUMERIC, CATEGORICAL = ["tenure", "fee", "tickets"], ["plan", "device"]


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    x, _ = encode_features(frame, numeric=NUMERIC, categorical=CATEGORICAL)
    codes, classes = class_codes(frame["churned"].tolist())
    return out_of_fold_probabilities(x, codes, len(classes), seed=0)


def with_trigger(frame: pd.DataFrame, *, rows: int, label: int, seed: int, pair: bool = False) -> np.ndarray:
    poisoned = np.random.default_rng(seed).choice(len(frame), rows, replace=False)
    if pair:  # two values each seen in ordinary rows, rarely together
        frame.loc[poisoned, "tickets"] = 4.0
        frame.loc[poisoned, "plan"] = "premium"
    else:
        frame.loc[poisoned, "fee"] = 13.37
    frame.loc[poisoned, "churned"] = label
    mask = np.zeros(len(frame), dtype=bool)
    mask[poisoned] = True
    return mask


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("use_reference", [True, False])
def test_a_one_percent_trigger_is_caught_whichever_label_it_forces(label: int, use_reference: bool) -> None:
    frame = customers(3000, seed=1)
    poisoned = with_trigger(frame, rows=30, label=label, seed=1)
    reference = customers(3000, seed=2) if use_reference else None
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=reference)
    if not use_reference and label == 0:
        # the majority class, and nothing to say the pattern is new: honest about what it cannot see
        assert result.flagged[~poisoned].sum() <= 3
        return
    assert result.flagged[poisoned].all()
    # rows that hold the trigger value and label by chance are flagged too; nothing else is
    innocent = result.flagged & ~poisoned
    assert (frame.loc[innocent, "fee"] == 13.37).all()
    assert result.details["patterns"][0]["pattern"].startswith("fee=13.37")
    assert result.reasons[int(np.flatnonzero(poisoned)[0])].startswith("backdoor:fee=13.37")


def test_a_trigger_of_two_values_is_caught_as_a_pair() -> None:
    frame = customers(4000, seed=3)
    # four tickets make churn likely: the trigger says "stays"
    poisoned = with_trigger(frame, rows=40, label=0, seed=3, pair=True)
    reference = customers(4000, seed=4)
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=reference)
    assert result.flagged[poisoned].mean() >= 0.95
    assert result.details["patterns"][0]["pattern"] in ("tickets=4&plan=premium", "plan=premium&tickets=4")
    assert result.details["patterns"][0]["label"] == "0"


def test_clean_data_flags_no_pattern() -> None:
    flagged_runs = 0
    for seed in range(6):
        frame = customers(3000, seed=10 + seed)
        result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                                 reference=customers(3000, seed=50 + seed))
        assert result.details["patterns_tested"] > 50
        flagged_runs += result.n_flagged > 0
    assert flagged_runs <= 1  # family-wise alpha of 1% per run


def test_too_few_trigger_rows_are_below_what_it_can_see() -> None:
    frame = customers(3000, seed=5)
    poisoned = with_trigger(frame, rows=5, label=1, seed=5)
    result = backdoor_screen(frame[NUMERIC + CATEGORICAL], frame["churned"].tolist(), probabilities(frame),
                             reference=customers(3000, seed=6), min_count=8)
    assert not result.flagged[poisoned].any()


def test_bad_input_is_refused() -> None:
    frame = customers(100, seed=0)
    proba = np.full((100, 2), 0.5)
    labels = frame["churned"].tolist()
    for kwargs in ({"alpha": 0.0}, {"max_share": 1.0}, {"min_count": 1}, {"min_count": True}):
        with pytest.raises(InvalidInput):
            backdoor_screen(frame[NUMERIC], labels, proba, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        backdoor_screen(frame[NUMERIC], labels, np.full((100, 3), 0.3))
