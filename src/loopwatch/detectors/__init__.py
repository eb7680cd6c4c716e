"""Outlier and novelty detectors: fitted on reference rows, calibrated on held-out ones.

Every detector follows :class:`~loopwatch.detectors.base.OutlierDetector`:
``fit(x_fit, x_calibration)``, ``score_samples`` (higher = more outlying),
``predict`` (score above the calibrated ``threshold_``) and
``infer_threshold(x, fpr)``. ``DETECTORS`` maps the names used in reports to
the classes.
"""

from __future__ import annotations

from loopwatch.detectors.base import OutlierDetector
from loopwatch.detectors.elliptic_envelope import EllipticEnvelopeDetector
from loopwatch.detectors.isolation_forest import IsolationForestDetector
from loopwatch.detectors.novelty import LocalOutlierFactorNovelty

DETECTORS: dict[str, type[OutlierDetector]] = {
    cls.name: cls for cls in (IsolationForestDetector, EllipticEnvelopeDetector, LocalOutlierFactorNovelty)
}

__all__ = [
    "DETECTORS",
    "EllipticEnvelopeDetector",
    "IsolationForestDetector",
    "LocalOutlierFactorNovelty",
    "OutlierDetector",
]
