"""Fixtures of the extraction detector's tests: the churn model and a detector fitted on its
training rows with the model's own probabilities."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from loopwatch.detectors.extraction import ExtractionDetector
from loopwatch.models import train_model
from loopwatch.models.training import prepare_features


@pytest.fixture(scope="module")
def model(churn_training: pd.DataFrame) -> Any:
    return train_model(churn_training, "churned")


@pytest.fixture(scope="module")
def proba(model: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda frame: model.pipeline.predict_proba(prepare_features(frame, model.schema))


@pytest.fixture(scope="module")
def detector(model: Any, churn_training: pd.DataFrame, proba: Any) -> ExtractionDetector:
    reference = churn_training.drop(columns="churned")
    return ExtractionDetector(seed=0).fit(
        reference, probabilities=proba(reference),
        numeric=list(model.schema.numeric), categorical=list(model.schema.categorical),
    )
