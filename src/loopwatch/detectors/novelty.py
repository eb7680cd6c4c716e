"""Novelty detection with the local outlier factor."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from loopwatch.detectors.base import FloatArray, OutlierDetector


class LocalOutlierFactorNovelty(OutlierDetector):
    """Novelty detector on scikit-learn's :class:`~sklearn.neighbors.LocalOutlierFactor`.

    ``novelty=True``: new rows are compared with the density of their
    ``n_neighbors`` nearest fit rows, so it finds rows in regions the
    reference never covered, even between clusters. The score is the local
    outlier factor (about 1 for inliers, higher = more outlying). LOF is
    deterministic; ``random_state`` is accepted for a uniform interface.

    Parameters
    ----------
    n_neighbors:
        Neighbours that define local density.
    expected_rate, random_state:
        See :class:`~loopwatch.detectors.base.OutlierDetector`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = LocalOutlierFactorNovelty(expected_rate=0.02)
    >>> det = det.fit(rng.normal(size=(500, 3)), rng.normal(size=(500, 3)))
    >>> det.predict(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]])).tolist()
    [False, True]
    """

    name = "novelty"

    def __init__(
        self, *, n_neighbors: int = 20, expected_rate: float = 0.01, random_state: int | None = None
    ) -> None:
        super().__init__(expected_rate=expected_rate, random_state=random_state)
        self.n_neighbors = n_neighbors

    def _fit_estimator(self, x: FloatArray) -> LocalOutlierFactor:
        return LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True).fit(x)

    def _outlyingness(self, x: FloatArray) -> FloatArray:
        return np.asarray(-self.estimator_.score_samples(x), dtype=np.float64)
