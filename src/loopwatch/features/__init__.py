"""Feature schemas: what a model version accepts, inferred from its training data."""

from loopwatch.features.schema import Feature, FeatureSchema, infer_schema
from loopwatch.features.validate import ValidatedRows, validate_rows

__all__ = ["Feature", "FeatureSchema", "ValidatedRows", "infer_schema", "validate_rows"]
