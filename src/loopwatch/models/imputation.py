"""Which features a fitted pipeline fills in itself when a request leaves them null.

loopwatch's own pipelines (:func:`~loopwatch.models.training.build_pipeline`) impute a
numeric feature with its training median and one-hot encode a category with
``handle_unknown="ignore"``, so a missing category is encoded as no category at all: both
take a null in any feature, also one that training never saw missing. A pipeline of
another shape is not assumed to: for it no feature is imputed, and a null in a feature
that is not declared nullable stays a 422.
"""

from __future__ import annotations

from typing import Any

#: What an encoder's ``handle_unknown`` must be for a missing category to be no category.
_FORGIVING = ("ignore", "infrequent_if_exist")


def imputed_features(pipeline: Any) -> frozenset[str]:
    """The features ``pipeline`` turns into finite inputs when they are null.

    Reads the structure only (no prediction is made): a ``features`` step that is a fitted
    ``ColumnTransformer``, whose numeric part begins with a ``SimpleImputer`` and whose
    categorical part is a ``OneHotEncoder`` that ignores unknown categories.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    steps = getattr(pipeline, "named_steps", None)
    transformer = steps.get("features") if isinstance(pipeline, Pipeline) and steps else None
    if not isinstance(transformer, ColumnTransformer) or not hasattr(transformer, "transformers_"):
        return frozenset()
    out: set[str] = set()
    for _, part, columns in transformer.transformers_:
        first = part.steps[0][1] if isinstance(part, Pipeline) and part.steps else part
        fills = isinstance(first, SimpleImputer) or (
            isinstance(part, OneHotEncoder) and part.handle_unknown in _FORGIVING
        )
        if fills and isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns):
            out.update(columns)
    return frozenset(out)
