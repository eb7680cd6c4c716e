"""Label-free estimation on real data, a cheap version of benchmarks/estimation_realdata.py.

One seed (0, one of the benchmark's reported seeds; the method was tuned on 100-104) and chunks
of 2,000 rows: on the 2013 flights, CBPE's 95% intervals hold the realized accuracy and ROC AUC
in at least 90% of chunks drawn at random and 85% of chunks under covariate shift, no more than
1.5 times as wide as the intervals of the probabilities alone; DLE's RMSE estimate of arrival
delays (heavy-tailed errors) is unbiased on average, where a floor once put it about 10% high.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import estimation_cases as cases

SEED = 0
SIZE = 2000
CHUNKS = 30


def _track(case: cases.Case, estimator, condition: str) -> tuple[list[bool], list[float], list[float]]:
    inside, widths, errors = [], [], []
    for rows in case.chunks(size=SIZE, count=CHUNKS, condition=condition, seed=1):
        estimate, realized = cases.estimate(case, estimator, rows), cases.realized(case, rows)
        for name, value in realized.items():
            inside.append(estimate[name].contains(value))
            widths.append(estimate[name].ci_high - estimate[name].ci_low)
            errors.append((estimate[name].value - value) / value)
    return inside, widths, errors


@pytest.fixture(scope="module")
def late() -> cases.Case:
    return cases.build("flights_late", seed=SEED)


def test_cbpe_intervals_cover_in_distribution_and_under_covariate_shift(late) -> None:
    estimator = cases.fit_estimator(late, seed=SEED)
    scores_only = cases.fit_estimator(late, seed=SEED, inputs=False)
    for condition, target in (("in_distribution", 0.90), ("covariate_shift", 0.85)):
        inside, widths, _ = _track(late, estimator, condition)
        assert np.mean(inside) >= target, (condition, np.mean(inside))
        _, narrow, _ = _track(late, scores_only, condition)
        assert np.median(widths) <= 1.5 * np.median(narrow), condition


def test_dle_rmse_is_unbiased_on_heavy_tailed_arrival_delays() -> None:
    case = cases.build("flights_arr_delay", seed=SEED)
    estimator = cases.fit_estimator(case, seed=SEED)
    inside, _, errors = _track(case, estimator, "in_distribution")
    relative = np.array(errors).reshape(-1, 2)  # per chunk: MAE, RMSE
    assert abs(relative[:, 1].mean()) < 0.05, relative[:, 1].mean()
    assert abs(relative[:, 0].mean()) < 0.05, relative[:, 0].mean()
    assert np.mean(inside) >= 0.9
