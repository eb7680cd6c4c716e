"""A metric without a value says why, with the sizes that decided it."""

from __future__ import annotations

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.performance.unmeasured import Unmeasured, unrealized


def test_too_few_labels_names_both_sizes() -> None:
    found = unrealized(metric="accuracy", labels=[0, 1] * 6, min_labels=200, classification=True)
    assert found.to_dict() == {"value": None, "metric": "accuracy", "reason": "too_few_labels",
                               "n_labels": 12, "min_labels": 200}


def test_enough_labels_of_one_class_is_single_class_for_a_classifier_only() -> None:
    assert unrealized(metric="roc_auc", labels=[1] * 300, min_labels=200, classification=True).reason == "single_class"
    assert unrealized(metric="mae", labels=[1.0] * 300, min_labels=200, classification=False).reason == "undefined"
    assert unrealized(metric="roc_auc", labels=[0, 1] * 150, min_labels=200, classification=True).reason == "undefined"


def test_an_estimate_counts_rows_and_unknown_reasons_are_refused() -> None:
    found = Unmeasured(metric="roc_auc", reason="too_few_rows", counted="rows", n=2, minimum=50)
    assert found.to_dict() == {"value": None, "metric": "roc_auc", "reason": "too_few_rows",
                               "n_rows": 2, "min_rows": 50}
    with pytest.raises(InvalidInput):
        Unmeasured(metric="roc_auc", reason="unlucky", counted="rows", n=2)
