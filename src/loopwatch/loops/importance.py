"""How much the model relies on each feature, measured without labels.

Drift on a feature the model barely uses weighs less. The sensitivity of a
feature is the mean absolute change of the model's output when that feature's
column is shuffled over reference rows (permutation importance with the output
itself as the yardstick, so it needs no labels and works for any model).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput


def prediction_sensitivity(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    features: Sequence[str],
    *,
    seed: int = 0,
    max_rows: int = 500,
) -> dict[str, float]:
    """Each feature's share of the model's sensitivity (the shares sum to 1).

    ``predict`` maps rows to one number per row (a probability or a prediction).

    >>> rows = pd.DataFrame({"a": np.arange(100.0), "b": np.ones(100)})
    >>> shares = prediction_sensitivity(lambda f: f["a"].to_numpy() * 2, rows, ["a", "b"])
    >>> shares["a"], shares["b"]
    (1.0, 0.0)
    """
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise InvalidInput(f"features not in the frame: {missing}")
    if max_rows < 2:
        raise InvalidInput(f"max_rows must be at least 2, got {max_rows}")
    if len(frame) < 2:
        raise InvalidInput(f"sensitivity needs at least 2 rows to shuffle, got {len(frame)}")
    rng = np.random.default_rng(seed)
    if len(frame) > max_rows:
        frame = frame.iloc[rng.choice(len(frame), size=max_rows, replace=False)]
    frame = frame.reset_index(drop=True)
    base = np.asarray(predict(frame), dtype=np.float64)
    raw: dict[str, float] = {}
    for name in features:
        shuffled = frame.copy()
        shuffled[name] = frame[name].to_numpy()[rng.permutation(len(frame))]
        raw[name] = float(np.mean(np.abs(np.asarray(predict(shuffled), dtype=np.float64) - base)))
    total = sum(raw.values())
    if total <= 0:
        return {name: 1.0 / len(raw) for name in raw} if raw else {}
    return {name: value / total for name, value in raw.items()}
