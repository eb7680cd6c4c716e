"""Outlier and novelty detectors: fitted on reference rows, calibrated on held-out ones.

Every detector follows :class:`~loopwatch.detectors.base.OutlierDetector`:
``fit(x_fit, x_calibration)``, ``score_samples`` (higher = more outlying),
``predict`` (score above the calibrated ``threshold_``) and
``infer_threshold(x, fpr)``. ``DETECTORS`` maps the names used in reports to
the classes.

They, the evasion detector and the extraction detector form one family with one
contract (:class:`~loopwatch.detectors.contract.Detector`); ``FAMILY`` maps each
member's name to its class.
"""

from __future__ import annotations

from loopwatch.detectors.adversarial import AdversarialDetector
from loopwatch.detectors.base import OutlierDetector
from loopwatch.detectors.contract import Detector
from loopwatch.detectors.elliptic_envelope import EllipticEnvelopeDetector
from loopwatch.detectors.extraction import ExtractionDetector
from loopwatch.detectors.isolation_forest import IsolationForestDetector
from loopwatch.detectors.novelty import LocalOutlierFactorNovelty

DETECTORS: dict[str, type[OutlierDetector]] = {
    cls.name: cls for cls in (IsolationForestDetector, EllipticEnvelopeDetector, LocalOutlierFactorNovelty)
}

#: Every detector of the family, by the name used in reports.
FAMILY: dict[str, type[Detector]] = {
    **DETECTORS, AdversarialDetector.name: AdversarialDetector, ExtractionDetector.name: ExtractionDetector,
}

__all__ = [
    "DETECTORS",
    "FAMILY",
    "AdversarialDetector",
    "Detector",
    "ExtractionDetector",
    "EllipticEnvelopeDetector",
    "IsolationForestDetector",
    "LocalOutlierFactorNovelty",
    "OutlierDetector",
]
