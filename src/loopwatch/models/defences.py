"""Input defences applied to validated rows before the model sees them.

Both undo the small, precise moves an evasion attack relies on, at the price
of a little resolution; each model chooses its own (``defences`` in its
monitoring configuration) and the choice applies to every prediction:

``clip``
    Each numeric feature is clipped to its training range. A model has never
    seen values beyond it, so it extrapolates there (a linear model without
    bound), which is where gradient attacks with a large budget go.
``squeeze``
    Feature squeezing: each numeric feature is rounded to a grid of
    :data:`SQUEEZE_SHARE` training standard deviations (integer features to
    whole numbers at least), so a perturbation smaller than half a grid step
    is undone, and a minimal attack that stops just past the decision boundary
    is often pulled back across it.

The raw rows are what is logged and what the adversarial score reads: a
defence changes what the model answers, not what the client sent.

>>> import pandas as pd
>>> from loopwatch.features.schema import Feature, FeatureSchema
>>> schema = FeatureSchema(features=(Feature(name="fee", kind="numeric", minimum=5.0, maximum=20.0,
...     mean=12.0, std=4.0),), target="y", task="classification")
>>> apply_defences(pd.DataFrame({"fee": [3.0, 12.13, 99.0]}), schema, ["clip", "squeeze"])["fee"].tolist()
[5.0, 12.2, 20.0]
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.schema import FeatureSchema

#: The defences a model can choose.
DEFENCES = ("clip", "squeeze")
#: The order they are applied in: squeezing first, so that clipping keeps every value in range.
_ORDER = ("squeeze", "clip")
#: Grid step of squeezing, in training standard deviations.
SQUEEZE_SHARE = 0.1


def check_defences(names: Iterable[str]) -> tuple[str, ...]:
    """The named defences in the order they are applied; unknown or repeated names are an error."""
    chosen = list(names)
    unknown = [str(n)[:50] for n in chosen if n not in DEFENCES]  # echoed back: never at length
    if unknown:
        raise InvalidInput(f"unknown defences {echo(unknown)}; choose from {', '.join(DEFENCES)}")
    if len(set(chosen)) != len(chosen):
        raise InvalidInput("a defence is named twice")
    return tuple(d for d in _ORDER if d in chosen)


def clip_to_training_range(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """``frame`` with every numeric feature clipped to its training range (missing values kept)."""
    return apply_defences(frame, schema, ["clip"])


def squeeze_to_grid(frame: pd.DataFrame, schema: FeatureSchema, *, share: float = SQUEEZE_SHARE) -> pd.DataFrame:
    """``frame`` with every numeric feature rounded to a grid of ``share`` training standard deviations.

    The grid starts at the training minimum, so its points stay values the
    training data could hold; integer features use whole steps of at least one.
    """
    return apply_defences(frame, schema, ["squeeze"], share=share)


def apply_defences(
    frame: pd.DataFrame, schema: FeatureSchema, defences: Iterable[str], *, share: float = SQUEEZE_SHARE
) -> pd.DataFrame:
    """``frame`` after each chosen defence (squeezing, then clipping); the input is not changed."""
    chosen = check_defences(defences)
    if not 0 < share <= 1:
        raise InvalidInput(f"share must lie in (0, 1], got {echo(share)}")
    columns = {}
    for feature in schema.features:
        if feature.kind != "numeric" or feature.name not in frame.columns:
            continue
        values = frame[feature.name].to_numpy(dtype=np.float64, na_value=np.nan)
        if "squeeze" in chosen:
            std = feature.std if feature.std and feature.std > 0 else 1.0
            step = max(1.0, float(np.round(share * std))) if feature.integer else share * std
            origin = feature.minimum or 0.0
            # rounding of the float step can leave 12.000000000000002: keep grid points tidy
            values = np.round(origin + np.round((values - origin) / step) * step, 10)
        if "clip" in chosen:
            low = -np.inf if feature.minimum is None else feature.minimum
            high = np.inf if feature.maximum is None else feature.maximum
            values = np.clip(values, low, high)
        columns[feature.name] = values
    out = frame.copy(deep=False)  # the other columns are shared, never written
    for name, values in columns.items():
        out[name] = values
    return out
