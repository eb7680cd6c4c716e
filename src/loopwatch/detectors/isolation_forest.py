"""Isolation forest: outliers are the rows random splits isolate quickly."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from loopwatch.detectors.base import FloatArray, OutlierDetector


class IsolationForestDetector(OutlierDetector):
    """Outlier detector on scikit-learn's :class:`~sklearn.ensemble.IsolationForest`.

    Cheap, scale-free and happy with many (one-hot) columns; the score is
    the negated scikit-learn score, so higher means shorter average path
    length, i.e. more outlying.

    Parameters
    ----------
    n_estimators:
        Number of trees.
    expected_rate, random_state:
        See :class:`~loopwatch.detectors.base.OutlierDetector`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = IsolationForestDetector(expected_rate=0.02, random_state=0)
    >>> det = det.fit(rng.normal(size=(500, 3)), rng.normal(size=(500, 3)))
    >>> det.calibration_k_, det.calibration_n_
    (10, 500)
    >>> det.predict(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]])).tolist()
    [False, True]
    """

    name = "isolation_forest"

    def __init__(
        self, *, n_estimators: int = 100, expected_rate: float = 0.01, random_state: int | None = None
    ) -> None:
        super().__init__(expected_rate=expected_rate, random_state=random_state)
        self.n_estimators = n_estimators

    def _fit_estimator(self, x: FloatArray) -> IsolationForest:
        # contamination only sets scikit-learn's own offset_, which is not used: the threshold is calibrated.
        return IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state).fit(x)

    def _outlyingness(self, x: FloatArray) -> FloatArray:
        return np.asarray(-self.estimator_.score_samples(x), dtype=np.float64)
