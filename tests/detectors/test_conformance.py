"""The contract every detector keeps (river-style: one check, run over every class)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone

from loopwatch.detectors import DETECTORS, OutlierDetector
from loopwatch.errors import InvalidInput

ALL = sorted(DETECTORS.values(), key=lambda cls: cls.name)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((300, 4)), rng.standard_normal((200, 4)), rng.standard_normal((50, 4))


def _fitted(cls: type[OutlierDetector], seed: int = 0) -> OutlierDetector:
    x_fit, x_cal, _ = _data(seed)
    return cls(expected_rate=0.05, random_state=0).fit(x_fit, x_cal)


def test_the_registry_names_the_report_names() -> None:
    assert sorted(DETECTORS) == ["elliptic_envelope", "isolation_forest", "novelty"]
    assert all(name == cls.name for name, cls in DETECTORS.items())


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
class TestConformance:
    def test_has_a_docstring_with_an_example(self, cls: type[OutlierDetector]) -> None:
        assert cls.__doc__ and ">>>" in cls.__doc__

    def test_fit_and_infer_threshold_return_self(self, cls: type[OutlierDetector]) -> None:
        x_fit, x_cal, _ = _data()
        det = cls(random_state=0)
        assert det.fit(x_fit, x_cal) is det
        assert det.infer_threshold(x_cal, 0.1) is det

    def test_does_not_mutate_its_inputs(self, cls: type[OutlierDetector]) -> None:
        arrays = _data()
        copies = [a.copy() for a in arrays]
        for a in arrays:
            a.flags.writeable = False  # an in-place write would raise
        x_fit, x_cal, x_new = arrays
        det = cls(random_state=0).fit(x_fit, x_cal)
        det.score_samples(x_new)
        det.predict(x_new)
        det.infer_threshold(x_cal, 0.05)
        for original, copy in zip(arrays, copies):
            np.testing.assert_array_equal(original, copy)

    def test_same_random_state_gives_the_same_scores(self, cls: type[OutlierDetector]) -> None:
        _, _, x_new = _data()
        a, b = _fitted(cls), _fitted(cls)
        np.testing.assert_array_equal(a.score_samples(x_new), b.score_samples(x_new))
        assert a.threshold_ == b.threshold_

    def test_clone_gives_an_unfitted_copy_with_the_same_parameters(self, cls: type[OutlierDetector]) -> None:
        det = _fitted(cls)
        twin = clone(det)
        assert twin.get_params() == det.get_params()
        assert {"expected_rate", "random_state"} <= set(det.get_params())
        assert not hasattr(twin, "threshold_") and not hasattr(twin, "estimator_")

    def test_skops_round_trip_keeps_the_scores(self, cls: type[OutlierDetector]) -> None:
        det = _fitted(cls)
        data = sio.dumps(det)
        back = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        _, _, x_new = _data()
        assert type(back) is cls
        np.testing.assert_array_equal(back.score_samples(x_new), det.score_samples(x_new))
        assert (back.threshold_, back.calibration_n_, back.calibration_k_) == (
            det.threshold_, det.calibration_n_, det.calibration_k_)

    def test_calibration_flags_the_expected_share(self, cls: type[OutlierDetector]) -> None:
        _, x_cal, _ = _data()
        det = _fitted(cls)
        assert det.calibration_n_ == 200
        assert det.calibration_k_ == math.floor(0.05 * 200) == int(det.predict(x_cal).sum())
        assert det.predict(x_cal).dtype == np.bool_

    def test_higher_scores_mean_more_outlying(self, cls: type[OutlierDetector]) -> None:
        det = _fitted(cls)
        centre, far = det.score_samples(np.array([[0.0] * 4, [6.0, -6.0, 6.0, -6.0]]))
        assert far > det.threshold_ > centre

    def test_refuses_bad_input(self, cls: type[OutlierDetector]) -> None:
        x_fit, x_cal, x_new = _data()
        with pytest.raises(InvalidInput):
            cls().score_samples(x_new)  # not fitted
        det = _fitted(cls)
        for bad in (x_new[:, :3], np.full((2, 4), np.nan), x_new[0]):
            with pytest.raises(InvalidInput):
                det.score_samples(bad)
        with pytest.raises(InvalidInput):
            cls(expected_rate=1.5).fit(x_fit, x_cal)
        with pytest.raises(InvalidInput):
            cls().fit(x_fit, x_cal[:, :3])
        with pytest.raises(InvalidInput):
            det.infer_threshold(x_cal, 0.0)
