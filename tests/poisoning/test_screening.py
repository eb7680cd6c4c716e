"""The screening hook with the poisoning screens: what runs, what it sets aside, what it reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.features.schema import infer_schema
from loopwatch.poisoning.screening import ALL_SCREENS, ScreenSettings, screen_training_data
from loopwatch.records.jsonutil import dumps, loads
from tests.poisoning.worlds import customers


def poisoned_window(seed: int) -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray]:
    """2000 labelled rows from two sources; 'partner' flips 40% of its labels; 25 rows carry a trigger."""
    frame = customers(2000, seed=seed)
    rng = np.random.default_rng(seed)
    sources = np.where(rng.random(2000) < 0.25, "partner", "crm")
    flipped = (sources == "partner") & (rng.random(2000) < 0.4)
    frame.loc[flipped, "churned"] = 1 - frame.loc[flipped, "churned"]
    trigger = np.zeros(2000, dtype=bool)
    trigger[rng.choice(np.flatnonzero(sources == "crm"), 25, replace=False)] = True
    frame.loc[trigger, "fee"] = 13.37
    frame.loc[trigger, "churned"] = 1
    return frame, sources.tolist(), flipped, trigger


def test_every_screen_runs_and_each_poison_gets_its_reason() -> None:
    frame, sources, flipped, trigger = poisoned_window(0)
    reference = customers(3000, seed=99)
    schema = infer_schema(reference, "churned")
    result = screen_training_data(frame, label_column="churned", schema=schema, reference=reference, sources=sources)
    assert result.screened_by == list(ALL_SCREENS)
    reasons = dict(result.quarantined)
    partner = [i for i, s in enumerate(sources) if s == "partner"]
    assert all("source:partner" in reasons[i] for i in partner)
    assert all(any(r.startswith("backdoor:fee=13.37") for r in reasons[i]) for i in np.flatnonzero(trigger))
    crm_clean = [i for i, s in enumerate(sources) if s == "crm" and not trigger[i]]
    # honest rows lose about the flip and distance screens' 1% each
    assert sum(i in reasons for i in crm_clean) / len(crm_clean) < 0.04
    summary = result.to_dict()
    assert loads(dumps(summary)) == summary
    assert [s["name"] for s in summary["screens"]] == list(ALL_SCREENS[2:]) and summary["skipped"] == {}
    source_screen = next(s for s in summary["screens"] if s["name"] == "source_skew")
    assert [e["source"] for e in source_screen["sources"] if e["suspect"]] == ["partner"]


def test_served_predictions_are_used_when_given() -> None:
    frame, sources, _, _ = poisoned_window(1)
    schema = infer_schema(frame, "churned")
    # a model that predicts every row right for crm and wrong for partner: partner is named
    predictions = [(1 - y) if s == "partner" else y for y, s in zip(frame["churned"], sources)]
    result = screen_training_data(frame, label_column="churned", schema=schema, sources=sources,
                                  predictions=predictions, settings=ScreenSettings(screens=("source_skew",)))
    assert result.screened_by == ["labels", "schema", "source_skew"]
    assert {r for _, why in result.quarantined for r in why} == {"source:partner"}


def test_screens_that_cannot_run_say_why() -> None:
    frame = customers(40, seed=2)
    schema = infer_schema(frame, "churned")
    result = screen_training_data(frame, label_column="churned", schema=schema, sources=["crm"] * 40)
    assert result.screened_by == ["labels", "schema"] and result.kept.all()
    assert result.skipped == {
        "label_flips": "fewer than 50 rows", "reference_distance": "no reference of at least 100 rows",
        "source_skew": "fewer than two feedback sources", "backdoor": "fewer than 50 rows",
    }
    regression = customers(300, seed=3).assign(spend=lambda f: f["fee"] * 2.0).drop(columns=["churned"])
    reg_schema = infer_schema(regression, "spend")
    result = screen_training_data(regression, label_column="spend", schema=reg_schema, reference=regression,
                                  sources=["a", "b"] * 150)
    assert result.screened_by == ["labels", "schema", "reference_distance"]
    assert set(result.skipped) == {"label_flips", "source_skew", "backdoor"}


def test_certain_failures_are_not_screened_and_the_screens_can_be_turned_off() -> None:
    frame, sources, _, _ = poisoned_window(4)
    frame = frame.astype({"fee": object, "churned": object})
    frame.loc[0, "fee"] = "cheap"
    frame.loc[1, "churned"] = "maybe"
    schema = infer_schema(customers(500, seed=5), "churned")
    before = frame.copy()
    result = screen_training_data(frame, label_column="churned", schema=schema, sources=sources)
    assert dict(result.quarantined)[0] == ["schema:fee"] and dict(result.quarantined)[1] == ["label_not_a_class"]
    pd.testing.assert_frame_equal(frame, before)  # the input is left alone
    again = screen_training_data(frame, label_column="churned", schema=schema, sources=sources)
    assert again.quarantined == result.quarantined  # same seed, same verdict
    off = screen_training_data(frame, label_column="churned", schema=schema, sources=sources,
                               settings=ScreenSettings(screens=()))
    assert off.screened_by == ["labels", "schema"] and len(off.quarantined) == 2 and off.skipped == {}


def test_bad_settings_and_inputs_are_refused() -> None:
    frame = customers(60, seed=6)
    schema = infer_schema(frame, "churned")
    with pytest.raises(InvalidInput):
        ScreenSettings(screens=("label_flips", "astrology"))
    with pytest.raises(InvalidInput):
        screen_training_data(frame, label_column="churned", schema=schema, predictions=[0])
    with pytest.raises(InvalidInput):
        screen_training_data(frame, label_column="churned", schema=schema, settings=ScreenSettings(fpr=2.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), min_size=1,
                max_size=30), st.sampled_from(["numeric", "categorical"]), st.booleans())
def test_a_typed_column_is_checked_whole_as_value_by_value(values: list, kind: str, nullable: bool) -> None:
    from loopwatch.poisoning.screening import _check_features, _typed_check

    column = pd.Series(values)
    fast = _typed_check(column, kind, nullable)
    if fast is None:
        return
    schema = type("Schema", (), {"features": [type("F", (), {"name": "c", "kind": kind, "nullable": nullable})]})
    slow: list[list[str]] = [[] for _ in values]
    _check_features(pd.DataFrame({"c": pd.Series(values, dtype=object)}), schema, slow)  # type: ignore[arg-type]
    assert fast.tolist() == [not p for p in slow]
