"""Model performance: realized once labels arrive, estimated before they do.

* :mod:`~loopwatch.performance.realized`: classification and regression
  metrics of a window with seeded, vectorised bootstrap intervals, and the gap
  between production and the holdout.
* :mod:`~loopwatch.performance.estimation`: confidence-based performance
  estimation (CBPE) for classifiers and direct loss estimation (DLE) for
  regressors, each with the interval the realized value should fall in, and
  the comparison of estimates with realized values once labels come.
* :mod:`~loopwatch.performance.reference`: what a model version keeps of its
  holdout (inside its reference profile) to fit an estimator at monitor time.

Pure numpy (scikit-learn for the calibrators and loss models, imported when
fitted); nothing here touches a store, the service or the CLI.
"""

from __future__ import annotations

from loopwatch.performance.concept import (
    DETECTORS,
    ConceptDriftDetector,
    ConceptDriftResult,
    TargetDriftResult,
    detect_concept_drift,
    per_prediction_loss,
    target_drift,
)
from loopwatch.performance.estimation import (
    ConfidenceBasedEstimator,
    DirectLossEstimator,
    departures,
    estimation_error,
)
from loopwatch.performance.realized import (
    MetricValue,
    classification_metrics,
    overfitting_gap,
    regression_metrics,
)
from loopwatch.performance.reference import (
    PerformanceReference,
    classifier_reference,
    fit_estimator,
    performance_reference_of,
    regressor_reference,
)

__all__ = [
    "DETECTORS",
    "ConceptDriftDetector",
    "ConceptDriftResult",
    "TargetDriftResult",
    "detect_concept_drift",
    "per_prediction_loss",
    "target_drift",
    "ConfidenceBasedEstimator",
    "DirectLossEstimator",
    "MetricValue",
    "PerformanceReference",
    "classification_metrics",
    "classifier_reference",
    "departures",
    "estimation_error",
    "fit_estimator",
    "overfitting_gap",
    "performance_reference_of",
    "regression_metrics",
    "regressor_reference",
]
