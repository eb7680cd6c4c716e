"""Known answers: calibrated detectors keep their false-alarm rate on reference-like
data and the window rate test fires when 5% of a window are far outliers."""

from __future__ import annotations

import numpy as np
import pytest

from loopwatch.detectors import DETECTORS, EllipticEnvelopeDetector, OutlierDetector
from loopwatch.errors import InvalidInput
from loopwatch.stats.multivariate import PcaBasis
from loopwatch.stats.rates import rate_test

D = 5
RATE = 0.02
N_CALIBRATION = 500
N_WINDOW = 500
#: One-sided binomial bound on false alarms: P(Binomial(200, 0.05) > 18) < 0.01.
MAX_FALSE_ALARMS = 18


def _far_outliers(rng: np.random.Generator, n: int, radius: float = 6.0) -> np.ndarray:
    """Points 6 sd from the centre, in random directions."""
    v = rng.standard_normal((n, D))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=sorted(DETECTORS), ids=str)
def fitted(request: pytest.FixtureRequest) -> OutlierDetector:
    # One fit per detector: given the fitted model, fresh calibration and window rows are
    # exchangeable, which is all the rate test assumes, so repetitions only redraw those.
    rng = np.random.default_rng(0)
    cls = DETECTORS[request.param]
    return cls(expected_rate=RATE, random_state=0).fit(rng.standard_normal((1000, D)),
                                                        rng.standard_normal((N_CALIBRATION, D)))


def _window_test(det: OutlierDetector, rng: np.random.Generator, n_outliers: int) -> bool:
    det.infer_threshold(rng.standard_normal((N_CALIBRATION, D)), RATE)
    window = rng.standard_normal((N_WINDOW, D))
    window[:n_outliers] = _far_outliers(rng, n_outliers)
    k = int(det.predict(window).sum())
    return rate_test(k, N_WINDOW, det.calibration_k_, det.calibration_n_).drift


def test_false_alarms_on_reference_like_data_stay_within_the_binomial_bound(fitted: OutlierDetector) -> None:
    alarms = sum(_window_test(fitted, np.random.default_rng([1, rep]), 0) for rep in range(200))
    # Measured: 13 (isolation forest), 9 (elliptic envelope), 10 (novelty) of 200.
    assert alarms <= MAX_FALSE_ALARMS


def test_five_percent_far_outliers_make_the_window_rate_test_fire(fitted: OutlierDetector) -> None:
    fired = sum(_window_test(fitted, np.random.default_rng([2, rep]), N_WINDOW // 20) for rep in range(20))
    assert fired >= 19  # measured: 20 of 20 for each detector


def test_elliptic_envelope_refuses_a_singular_covariance_and_works_on_pca_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 3))
    collinear = np.column_stack([x, x[:, 0] - x[:, 1]])
    with pytest.raises(InvalidInput, match="PCA-reduced"):
        EllipticEnvelopeDetector(random_state=0).fit(collinear[:400], collinear[400:])
    # A rare one-hot category: the full covariance is fine, the robust subset's is not.
    hot = np.zeros(600)
    hot[rng.choice(600, 5, replace=False)] = 1.0
    with pytest.raises(InvalidInput, match="robust subset"):
        EllipticEnvelopeDetector(random_state=0).fit(np.column_stack([x, hot])[:400], np.column_stack([x, hot])[400:])
    basis = PcaBasis.fit(collinear[:400], variance=0.9)
    det = EllipticEnvelopeDetector(random_state=0).fit(basis.transform(collinear[:400]),
                                                      basis.transform(collinear[400:]))
    assert det.n_features_in_ == basis.n_components
