"""The outlier and novelty detectors on bounded samples, on real flights: a large current table
is scored on a seeded sample (``DriftConfig.outlier_max_rows``), thresholds are calibrated on
at most ``MAX_CALIBRATION_ROWS`` held-out rows, and nothing is fitted that a comparison will
not use. Flights' numeric columns are skewed and ``air_time`` has nulls; carrier and origin are
integer codes."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

import loopwatch.drift.profile as profile_module
from loopwatch.drift import DriftConfig, build_profile, compare
from loopwatch.errors import InvalidInput
from tests.realdata import flights

NUMERIC = ["sched_hour", "distance", "air_time"]
CATEGORICAL = ["carrier", "origin"]


@lru_cache(maxsize=1)
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = flights()[NUMERIC + CATEGORICAL].sample(n=16_000, random_state=4).reset_index(drop=True)
    return data.iloc[:6_000].reset_index(drop=True), data.iloc[6_000:].reset_index(drop=True)


def with_far_rows(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """``share`` of the rows moved far outside the reference (ten times the distance)."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(out)) < share
    out.loc[chosen, "distance"] = out.loc[chosen, "distance"] * 10 + 5_000
    return out


def test_a_large_window_is_scored_on_a_sample_and_still_flags_far_rows() -> None:
    reference, current = tables()
    config = DriftConfig(multivariate=False, outlier_max_rows=2_000)
    clean = compare(reference, current, categorical=CATEGORICAL, config=config)
    far = compare(reference, with_far_rows(current, 0.05, seed=1), categorical=CATEGORICAL, config=config)
    for name, rate in far.outliers.items():
        assert rate.n_scored == 2_000 and rate.rate == rate.n_flagged / 2_000
        assert rate.drift and rate.rate >= 0.04, name  # 5% of rows moved far: each detector sees it
        assert not clean.outliers[name].drift, name
    assert {r["n_scored"] for r in far.to_dict()["outliers"].values()} == {2_000} and len(far.outliers) == 3


def test_a_window_within_the_bound_is_scored_whole_as_before() -> None:
    reference, current = tables()
    small = current.iloc[:1_500]
    bounded = compare(reference, small, categorical=CATEGORICAL, multivariate=False, outlier_max_rows=1_500)
    for rate in bounded.outliers.values():
        assert rate.n_scored == 1_500 and rate.rate == rate.n_flagged / 1_500


def test_the_sample_is_seeded() -> None:
    reference, current = tables()
    runs = [compare(reference, current, categorical=CATEGORICAL, multivariate=False, outlier_max_rows=500, seed=s)
            for s in (3, 3)]
    flagged = [{n: r.n_flagged for n, r in run.outliers.items()} for run in runs]
    assert flagged[0] == flagged[1]


def test_thresholds_are_calibrated_on_a_bounded_share_of_the_holdout(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, _ = tables()
    monkeypatch.setattr(profile_module, "MAX_CALIBRATION_ROWS", 700)
    built = build_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL, seed=0)
    assert built.joint is not None and built.joint.detectors
    for detector in built.joint.detectors.values():
        # the holdout is 30% of 6,000 rows: 1,800, of which 700 calibrate
        assert detector.calibration_n_ == 700 and detector.calibration_k_ == 7


def test_nothing_is_fitted_that_the_comparison_will_not_use(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, current = tables()

    def refuse(**_: object) -> None:
        raise AssertionError("a detector was fitted for a comparison without outliers")

    monkeypatch.setattr(profile_module, "DETECTORS", {"novelty": refuse})
    report = compare(reference, current.iloc[:2_000], categorical=CATEGORICAL, outliers=False)
    assert report.outliers == {} and report.multivariate  # the multivariate tests still ran
    assert build_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL, detectors=False).joint is not None
    with pytest.raises(AssertionError, match="without outliers"):
        compare(reference, current.iloc[:2_000], categorical=CATEGORICAL, multivariate=False)


def test_a_bound_below_a_hundred_rows_is_refused() -> None:
    with pytest.raises(InvalidInput, match="outlier_max_rows"):
        DriftConfig(outlier_max_rows=50)
