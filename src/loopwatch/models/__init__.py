"""Training scikit-learn pipelines and keeping their artifacts safe."""

from loopwatch.models.artifacts import dump_model, load_model, sha256_hex
from loopwatch.models.training import ESTIMATORS, TrainedModel, train_model

__all__ = ["ESTIMATORS", "TrainedModel", "dump_model", "load_model", "sha256_hex", "train_model"]
