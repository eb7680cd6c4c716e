"""Elliptic envelope: Mahalanobis distance under a robust covariance estimate."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.covariance import EllipticEnvelope

from loopwatch.detectors.base import FloatArray, OutlierDetector
from loopwatch.errors import InvalidInput

# Smallest singular value, relative to the largest, of a covariance that can be inverted safely.
_RANK_TOLERANCE = 1e-8
_ROBUST_SINGULAR = (
    "the covariance of the robust subset is singular (e.g. a rare one-hot category it left out): "
    "fit the elliptic envelope on PCA-reduced rows"
)


class EllipticEnvelopeDetector(OutlierDetector):
    """Outlier detector on scikit-learn's :class:`~sklearn.covariance.EllipticEnvelope`.

    The score is the squared robust (MCD) Mahalanobis distance, so higher
    means more outlying. The covariance must be invertible: one-hot columns
    (which sum to one) or constant columns make it singular, so give this
    detector the caller's PCA-reduced rows (e.g.
    :meth:`loopwatch.stats.multivariate.PcaBasis.transform`). A singular
    covariance -- of all rows, or of the robust subset MCD keeps (a rare
    category can vanish from it) -- raises InvalidInput instead of silently
    giving meaningless distances.

    Parameters
    ----------
    support_fraction:
        Share of rows in the robust estimate (None: scikit-learn's default,
        ``(n + d + 1) / 2``).
    expected_rate, random_state:
        See :class:`~loopwatch.detectors.base.OutlierDetector`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = EllipticEnvelopeDetector(expected_rate=0.02, random_state=0)
    >>> det = det.fit(rng.normal(size=(500, 3)), rng.normal(size=(500, 3)))
    >>> det.predict(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]])).tolist()
    [False, True]
    >>> x = rng.normal(size=(200, 2))
    >>> det.fit(np.column_stack([x, x.sum(axis=1)]), rng.normal(size=(50, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopwatch.errors.InvalidInput: the covariance of the fit rows is singular ...
    """

    name = "elliptic_envelope"

    def __init__(
        self, *, support_fraction: float | None = None, expected_rate: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(expected_rate=expected_rate, random_state=random_state)
        self.support_fraction = support_fraction

    def _fit_estimator(self, x: FloatArray) -> EllipticEnvelope:
        singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
        if singular[-1] <= _RANK_TOLERANCE * singular[0] or x.shape[0] <= x.shape[1]:
            raise InvalidInput(
                "the covariance of the fit rows is singular (collinear, constant or one-hot columns, "
                "or fewer rows than columns): fit the elliptic envelope on PCA-reduced rows"
            )
        model = EllipticEnvelope(support_fraction=self.support_fraction, random_state=self.random_state)
        with warnings.catch_warnings():
            # scikit-learn only *warns* when the robust subset's covariance is singular, then
            # returns distances that mean nothing: make that an error the caller sees.
            warnings.filterwarnings("error", message=".*not full rank.*")
            try:
                model.fit(x)
            except (UserWarning, ValueError, np.linalg.LinAlgError) as exc:
                raise InvalidInput(_ROBUST_SINGULAR + f" ({exc})") from exc
        # Nor does it refuse a singular robust estimate: it falls back to a pseudo-inverse,
        # which ignores the degenerate directions, so a row with a category the robust
        # subset never saw would score as normal.
        eigen = np.linalg.eigvalsh(model.covariance_)
        if eigen[0] <= _RANK_TOLERANCE * eigen[-1]:
            raise InvalidInput(_ROBUST_SINGULAR)
        return model

    def _outlyingness(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.estimator_.mahalanobis(x), dtype=np.float64)
