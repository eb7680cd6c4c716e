"""Feedback: labels that arrive after the prediction, and business metrics.

* :mod:`~loopwatch.feedback.bookkeeping`: label coverage and delay per window.
* :mod:`~loopwatch.feedback.business`: model performance against a business metric, at lags.
* :mod:`~loopwatch.feedback.value`: what predictions are worth (a value matrix, a cost function).
"""

from loopwatch.feedback.bookkeeping import LabelCoverage, label_coverage
from loopwatch.feedback.business import LagCorrelation, RelationChange, lagged_correlation, relation_changed
from loopwatch.feedback.value import (
    BusinessValue,
    CostFunction,
    ValueMatrix,
    classification_value,
    expected_classification_value,
    regression_cost,
)

__all__ = [
    "BusinessValue",
    "CostFunction",
    "LabelCoverage",
    "LagCorrelation",
    "RelationChange",
    "ValueMatrix",
    "classification_value",
    "expected_classification_value",
    "label_coverage",
    "lagged_correlation",
    "regression_cost",
    "relation_changed",
]
