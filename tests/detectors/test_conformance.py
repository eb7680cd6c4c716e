"""The contract every detector of the family keeps (river-style: one check, run over every
class), with one way per detector to build what it is fitted on: matrices for the outlier
detectors, a reference table for the extraction detector, a model and its rows for the
evasion detector (:mod:`loopwatch.detectors.contract`)."""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from loopwatch.detectors import (
    DETECTORS,
    FAMILY,
    AdversarialDetector,
    Detector,
    ExtractionDetector,
    OutlierDetector,
)
from loopwatch.errors import InvalidInput
from loopwatch.stats.rates import rate_test

ALL = sorted(DETECTORS.values(), key=lambda cls: cls.name)


# -- one way per detector to build its data, fit it, score it and decide ---------------------------


@dataclass(frozen=True)
class Case:
    """How the suite drives one detector: ``data(seed)`` builds its fit inputs, fresh no-shift
    units and a few units to score; the rest fit, score and decide on them."""

    cls: type
    #: The parameters the suite builds it with (besides its seed).
    params: dict[str, Any]
    data: Callable[[int], dict[str, Any]]
    fit: Callable[[Any, dict[str, Any]], Any]
    #: Scores of ``data["new"]`` (higher = more suspicious), one per unit.
    scores: Callable[[Any, dict[str, Any], Any], np.ndarray]
    #: How many of ``data["null"]`` (fresh units like the reference) are flagged, of how many.
    null_flags: Callable[[Any, dict[str, Any]], tuple[int, int]]
    #: The stated rate is exact (row detectors calibrated at a quantile) or an upper bound.
    exact_rate: bool = True

    def make(self, seed: int = 0) -> Any:
        return self.cls(**self.params, **{self.cls.seed_parameter: seed})

    def fitted(self, seed: int = 0, data_seed: int = 0) -> Any:
        return self.fit(self.make(seed), _data(self, data_seed))


def _matrices(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"fit": rng.standard_normal((300, 4)), "calibration": rng.standard_normal((1000, 4)),
            "new": rng.standard_normal((50, 4)), "null": rng.standard_normal((4000, 4))}


def _outlier_case(cls: type[OutlierDetector]) -> Case:
    return Case(
        cls=cls, params={"expected_rate": 0.05}, data=_matrices,
        fit=lambda det, d: det.fit(d["fit"], d["calibration"]),
        scores=lambda det, d, x: det.score_samples(x),
        null_flags=lambda det, d: (int(det.predict(d["null"]).sum()), len(d["null"])),
    )


def _customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "a": rng.gamma(2.0, 3.0, n).round(2), "b": rng.normal(50, 9, n).round(2),
        "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]),
    })


def _churn_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """A fixed model's outputs: what the extraction detector reads of the model."""
    p = 1.0 / (1.0 + np.exp(-(frame["a"].to_numpy() - 6.0) / 2.0 - (frame["b"].to_numpy() - 50.0) / 9.0))
    return np.column_stack([1.0 - p, p])


def _extraction_data(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    reference = _customers(rng, 600)
    clients = [_customers(rng, int(rng.integers(60, 200))) for _ in range(30)]
    return {"reference": reference, "new": clients[:3], "null": clients}


EXTRACTION = Case(
    cls=ExtractionDetector, params={}, data=_extraction_data, exact_rate=False,
    fit=lambda det, d: det.fit(d["reference"], probabilities=_churn_probabilities(d["reference"])),
    scores=lambda det, d, clients: np.array([det.score(c, _churn_probabilities(c)).score for c in clients]),
    null_flags=lambda det, d: (sum(det.predict(c, _churn_probabilities(c)) for c in d["null"]), len(d["null"])),
)


def _adversarial_data(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(rng.normal(size=(6000, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(rows[:600], (rows["a"] + 0.5 * rows["b"] - rows["c"] > 0)[:600])
    # the calibration rows split in two: 1,000 set the signals' nulls, 1,000 the threshold
    return {"model": model, "fit": rows[:600], "calibration": rows[600:2600], "new": rows[2600:2650],
            "null": rows[2600:]}


ADVERSARIAL = Case(
    cls=AdversarialDetector, params={"numeric": ("a", "b", "c"), "expected_rate": 0.05}, data=_adversarial_data,
    fit=lambda det, d: det.fit(d["fit"], d["calibration"], model=d["model"]),
    scores=lambda det, d, x: det.score_samples(x, model=d["model"]),
    null_flags=lambda det, d: (int(det.predict(d["null"], model=d["model"]).sum()), len(d["null"])),
)

CASES = {cls.name: _outlier_case(cls) for cls in ALL} | {"extraction": EXTRACTION, "adversarial": ADVERSARIAL}
_DATA: dict[tuple[str, int], dict[str, Any]] = {}


def _data(case: Case, seed: int) -> dict[str, Any]:
    key = (case.cls.name, seed)
    if key not in _DATA:  # built once per module run: the extraction reference costs a little
        _DATA[key] = case.data(seed)
    return _DATA[key]


_FITTED: dict[str, Any] = {}


def _fitted(case: Case) -> Any:
    if case.cls.name not in _FITTED:
        _FITTED[case.cls.name] = case.fitted()
    return _FITTED[case.cls.name]


def _thresholds(det: Any) -> Any:
    return det.threshold_ if hasattr(det, "threshold_") else dict(det.thresholds_)


def _frozen(value: Any) -> Any:
    """A copy to compare with after a call, with numpy arrays made read-only (a write raises)."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
        return value.copy()
    if isinstance(value, pd.DataFrame):
        return value.copy(deep=True)
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return None


def _assert_same(value: Any, copy: Any) -> None:
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(value, copy)
    elif isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(value, copy)
    elif isinstance(value, list):
        for v, c in zip(value, copy):
            _assert_same(v, c)


def test_the_family_names_every_detector() -> None:
    assert sorted(DETECTORS) == ["elliptic_envelope", "isolation_forest", "novelty"]
    assert sorted(FAMILY) == sorted(CASES) == sorted([*DETECTORS, "adversarial", "extraction"])
    assert all(name == cls.name for name, cls in FAMILY.items())


@pytest.mark.parametrize("name", sorted(CASES))
class TestFamily:
    def test_keeps_the_protocol(self, name: str) -> None:
        case = CASES[name]
        assert isinstance(case.make(), Detector) and isinstance(_fitted(case), Detector)
        assert case.cls.seed_parameter in case.make().get_params()

    def test_parameters_are_keyword_only(self, name: str) -> None:
        parameters = list(inspect.signature(CASES[name].cls.__init__).parameters.values())[1:]
        assert parameters and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)

    def test_has_a_docstring_with_an_example(self, name: str) -> None:
        cls = CASES[name].cls
        assert cls.__doc__ and ">>>" in (cls.__doc__ + (sys.modules[cls.__module__].__doc__ or ""))

    def test_fit_returns_self_and_fitted_attributes_end_in_an_underscore(self, name: str) -> None:
        case = CASES[name]
        det = case.make()
        assert case.fit(det, _data(case, 0)) is det
        learnt = set(vars(det)) - set(det.get_params())
        assert learnt and all(attribute.endswith("_") for attribute in learnt), sorted(learnt)

    def test_clone_gives_an_unfitted_copy_with_the_same_parameters(self, name: str) -> None:
        det = _fitted(CASES[name])
        twin = clone(det)
        assert twin.get_params() == det.get_params()
        assert not [a for a in vars(twin) if a.endswith("_")]
        with pytest.raises(InvalidInput):
            twin.calibration_counts()

    def test_same_seed_gives_the_same_scores_and_thresholds(self, name: str) -> None:
        case = CASES[name]
        a, b = _fitted(case), case.fitted()
        d = _data(case, 0)
        np.testing.assert_array_equal(case.scores(a, d, d["new"]), case.scores(b, d, d["new"]))
        assert _thresholds(a) == _thresholds(b) and a.calibration_counts() == b.calibration_counts()

    def test_does_not_mutate_its_inputs(self, name: str) -> None:
        case = CASES[name]
        d = case.data(1)  # its own copy: the arrays are made read-only
        copies = {key: _frozen(value) for key, value in d.items()}
        det = case.fit(case.make(), d)
        case.scores(det, d, d["new"])
        for key, value in d.items():
            _assert_same(value, copies[key])

    def test_skops_round_trip_keeps_scores_thresholds_and_counts(self, name: str) -> None:
        case = CASES[name]
        det = _fitted(case)
        data = sio.dumps(det)
        back = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        d = _data(case, 0)
        assert type(back) is case.cls
        np.testing.assert_array_equal(case.scores(back, d, d["new"]), case.scores(det, d, d["new"]))
        assert _thresholds(back) == _thresholds(det)
        assert back.calibration_counts() == det.calibration_counts()

    def test_false_alarms_on_no_shift_data_are_near_the_stated_rate(self, name: str) -> None:
        case = CASES[name]
        det = _fitted(case)
        k, n = case.null_flags(det, _data(case, 0))
        assert _near_the_stated_rate(k, n, det.calibration_counts(), det.stated_rate, exact=case.exact_rate)


def _near_the_stated_rate(k: int, n: int, calibration: tuple[int, int], stated: float, *, exact: bool) -> bool:
    """``k`` of ``n`` fresh no-shift units flagged: never above the calibration units' rate (by the
    test a window's count is judged with) nor the stated rate; and for a quantile threshold,
    within three standard errors of the stated rate (both samples' noise), not merely below it."""
    k_reference, n_reference = calibration
    if rate_test(k, n, k_reference, n_reference, alpha=0.001).drift:
        return False
    if not exact:  # a bound: binomial at the stated rate or below
        return bool(k <= stats.binom.ppf(0.999, n, stated))
    se = math.sqrt(stated * (1 - stated) * (1 / n + 1 / n_reference))
    return k_reference == math.floor(stated * n_reference + 1e-9) and abs(k / n - stated) <= 3 * se


# -- what only the outlier detectors share: matrices in, a calibrated quantile ---------------------


def _outlier_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = _matrices(seed)
    return d["fit"], d["calibration"], d["new"]


def _outlier(cls: type[OutlierDetector], seed: int = 0) -> OutlierDetector:
    x_fit, x_cal, _ = _outlier_data(seed)
    return cls(expected_rate=0.05, random_state=0).fit(x_fit, x_cal)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
class TestOutlierDetectors:
    def test_infer_threshold_returns_self(self, cls: type[OutlierDetector]) -> None:
        x_fit, x_cal, _ = _outlier_data()
        det = cls(random_state=0).fit(x_fit, x_cal)
        assert det.infer_threshold(x_cal, 0.1) is det
        assert {"expected_rate", "random_state"} <= set(det.get_params())

    def test_calibration_flags_the_expected_share(self, cls: type[OutlierDetector]) -> None:
        _, x_cal, _ = _outlier_data()
        det = _outlier(cls)
        assert det.calibration_counts() == (math.floor(0.05 * 1000), 1000)
        assert det.calibration_k_ == int(det.predict(x_cal).sum())
        assert det.predict(x_cal).dtype == np.bool_

    def test_higher_scores_mean_more_outlying(self, cls: type[OutlierDetector]) -> None:
        det = _outlier(cls)
        centre, far = det.score_samples(np.array([[0.0] * 4, [6.0, -6.0, 6.0, -6.0]]))
        assert far > det.threshold_ > centre

    def test_refuses_bad_input(self, cls: type[OutlierDetector]) -> None:
        x_fit, x_cal, x_new = _outlier_data()
        with pytest.raises(InvalidInput):
            cls().score_samples(x_new)  # not fitted
        det = _outlier(cls)
        for bad in (x_new[:, :3], np.full((2, 4), np.nan), x_new[0]):
            with pytest.raises(InvalidInput):
                det.score_samples(bad)
        with pytest.raises(InvalidInput):
            cls(expected_rate=1.5).fit(x_fit, x_cal)
        with pytest.raises(InvalidInput):
            cls().fit(x_fit, x_cal[:, :3])
        with pytest.raises(InvalidInput):
            det.infer_threshold(x_cal, 0.0)


def test_the_suites_checks_can_fail() -> None:
    # a detector flagging twice, or half, its stated share of fresh rows fails the rate check
    assert _near_the_stated_rate(200, 4000, (50, 1000), 0.05, exact=True)
    assert not _near_the_stated_rate(400, 4000, (50, 1000), 0.05, exact=True)
    assert not _near_the_stated_rate(80, 4000, (50, 1000), 0.05, exact=True)
    assert not _near_the_stated_rate(4, 30, (0, 100), 0.01, exact=False)
    # and a parameter given by position would be caught by the keyword-only check
    class Positional:
        def __init__(self, fpr: float = 0.01) -> None:
            self.fpr = fpr

    parameters = list(inspect.signature(Positional.__init__).parameters.values())[1:]
    assert not all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
