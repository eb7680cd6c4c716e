"""Drift: reference profiles, the comparison of two tables, and its report.

``loopwatch.drift.compare(reference, current)`` is the library entry point.
"""

from loopwatch.drift.config import DriftConfig
from loopwatch.drift.compare import compare
from loopwatch.drift.profile import ReferenceProfile, build_profile
from loopwatch.drift.report import DriftReport, FeatureDrift, MultivariateDrift, OutlierRate

__all__ = [
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "MultivariateDrift",
    "OutlierRate",
    "ReferenceProfile",
    "build_profile",
    "compare",
]
