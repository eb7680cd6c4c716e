"""A simple evasion attack on tabular models, and adversarial training with it.

:func:`boundary_attack` is what a patient client can do with nothing but the
predict endpoint and data like the training data: fit a logistic regression to
the model's answers, then move each row's numeric features along that
regression's weight vector (in training standard deviations), away from the
class the model gives it, until the model's answer flips. Categorical features
are left as they are (a client cannot send a category between two others), and
the moved row is projected back onto what a client can send: clipped to the
training range of each feature and rounded where the feature is integer.

It serves the known-answer tests of :mod:`loopwatch.detectors.adversarial`, and
:func:`augment_with_adversarial` uses it to add adversarial examples, with their
true labels, to training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo, listed
from loopwatch.features.schema import FeatureSchema, infer_schema


@dataclass(frozen=True)
class AttackResult:
    """Attacked rows beside what the model made of them."""

    #: The attacked rows (same index and columns as the input rows).
    adversarial: pd.DataFrame
    #: Per row: did the model's answer change from its answer on the original row?
    success: np.ndarray
    #: Per row: L2 size of the change of the numeric features, in training standard deviations.
    distance: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        moved = self.distance[self.success]
        return {
            "n_rows": int(self.success.size),
            "success_rate": float(self.success.mean()) if self.success.size else 0.0,
            "median_distance": float(np.median(moved)) if moved.size else None,
        }


def boundary_attack(
    frame: pd.DataFrame,
    pipeline: Any,
    schema: FeatureSchema,
    *,
    step: float = 0.05,
    max_distance: float = 6.0,
    overshoot: float = 0.0,
    seed: int = 0,
) -> AttackResult:
    """Move each row of ``frame`` across ``pipeline``'s decision boundary, if it can.

    The walk doubles its length from ``step`` standard deviations until the
    answer flips (or ``max_distance`` is passed), then bisects to the first
    flipped point within ``2**-12`` of the boundary, and goes ``overshoot``
    standard deviations further (an attacker's margin of safety, which also
    takes the row away from where the instability signal sees it best). A row
    that needs more than ``max_distance`` keeps its last point and counts as a
    failure.
    """
    if schema.task != "classification" or not schema.classes:
        raise InvalidInput("the boundary attack needs a classifier")
    numeric = schema.numeric
    if not numeric:
        raise InvalidInput("the boundary attack moves numeric features; the schema has none")
    if not 0 < step < max_distance:
        raise InvalidInput("step must be positive and below max_distance")
    rows = frame.reset_index(drop=True)
    means = np.array([schema.feature(n).mean or 0.0 for n in numeric])
    scales = np.array([schema.feature(n).std or 1.0 for n in numeric])
    scales = np.where(scales > 0, scales, 1.0)
    start = rows[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    start = np.where(np.isnan(start), means, start)  # a missing value is moved from the mean
    original = _labels(pipeline, rows)
    directions = _directions(pipeline, schema, rows, original, seed=seed)

    def answers(distance: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        moved = valid_numeric(start + distance[:, None] * directions * scales, schema)
        candidate = rows.copy()
        candidate[numeric] = moved
        return candidate, _labels(pipeline, candidate) != original

    low = np.zeros(len(rows))
    high = np.full(len(rows), np.inf)
    length = step
    while length <= max_distance * 2:  # doubling: the first length at which each row flips
        _, flipped = answers(np.full(len(rows), min(length, max_distance)))
        newly = flipped & np.isinf(high)
        high[newly] = min(length, max_distance)
        low[np.isinf(high)] = min(length, max_distance)
        if not np.isinf(high).any() or length >= max_distance:
            break
        length *= 2
    found = ~np.isinf(high)
    high = np.where(found, high, max_distance)
    for _ in range(12):  # bisection: within 2**-12 of the first flipping length
        middle = (low + high) / 2
        _, flipped = answers(middle)
        high = np.where(found & flipped, middle, high)
        low = np.where(found & ~flipped, middle, low)
    final = np.where(found, high + overshoot, max_distance)
    adversarial, success = answers(final)
    adversarial.index = frame.index
    moved = (adversarial[numeric].to_numpy(dtype=np.float64) - start) / scales
    return AttackResult(adversarial=adversarial, success=success, distance=np.linalg.norm(moved, axis=1))


def augment_with_adversarial(
    frame: pd.DataFrame,
    target: str,
    pipeline: Any,
    *,
    share: float = 0.2,
    seed: int,
    schema: FeatureSchema | None = None,
) -> pd.DataFrame:
    """``frame`` with adversarial examples of a share of its rows added, with their true labels.

    A share ``share`` of the rows (drawn with ``seed`` among those the model
    gets right) is attacked with :func:`boundary_attack`; each row whose
    answer flipped is added with its original (true) label, so a model trained
    on the result learns to answer it correctly. Rows the attack could not
    flip add nothing. ``schema`` defaults to the one training would infer.
    """
    if not 0 < share <= 1:
        raise InvalidInput(f"share must lie in (0, 1], got {echo(share)}")
    if target not in frame.columns:
        raise InvalidInput(f"target {echo(target)} is not a column of the data")
    schema = schema or infer_schema(frame, target, task="classification")
    features = _as_features(frame, schema)
    truth = frame[target].to_numpy()
    predicted = _labels(pipeline, features)
    right = np.flatnonzero(predicted.astype(str) == truth.astype(str))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(right, size=min(right.size, round(share * len(frame))), replace=False))
    if chosen.size == 0:
        return frame.reset_index(drop=True)
    result = boundary_attack(features.iloc[chosen], pipeline, schema, seed=seed)
    added = frame.iloc[chosen].copy()
    for name in schema.numeric:
        added[name] = result.adversarial[name].to_numpy()
    added = added[result.success]
    return pd.concat([frame, added], ignore_index=True)


def _as_features(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    from loopwatch.models.training import prepare_features

    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise InvalidInput(f"the data lacks the feature columns {listed(missing)}")
    return prepare_features(frame, schema)


def _labels(pipeline: Any, rows: pd.DataFrame) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(pipeline.predict(rows))


def _directions(
    pipeline: Any, schema: FeatureSchema, rows: pd.DataFrame, labels: np.ndarray, *, seed: int
) -> np.ndarray:
    """Per row, the unit direction (in standard deviations) away from the row's answer.

    The surrogate is a logistic regression on the numeric features of rows like the
    training data (seeded draws around the training means and spreads, plus the rows
    themselves) labelled by the model: what a client can build from answers alone.
    """
    from sklearn.linear_model import LogisticRegression

    numeric = schema.numeric
    rng = np.random.default_rng(seed)
    means = np.array([schema.feature(n).mean or 0.0 for n in numeric])
    scales = np.array([schema.feature(n).std or 1.0 for n in numeric])
    scales = np.where(scales > 0, scales, 1.0)
    probes = rows.iloc[rng.integers(0, len(rows), size=max(400, len(rows)))].reset_index(drop=True)
    cloud = means + scales * rng.standard_normal((len(probes), len(numeric)))
    probes[numeric] = valid_numeric(cloud, schema)
    sample = pd.concat([rows, probes], ignore_index=True)
    answers = np.concatenate([labels, _labels(pipeline, probes)])
    standard = sample[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    standard = (np.where(np.isnan(standard), means, standard) - means) / scales
    classes = np.unique(answers.astype(str))
    if classes.size < 2:
        raise InvalidInput("the model gives every probe the same answer: there is no boundary to cross")
    surrogate = LogisticRegression(max_iter=1000).fit(standard, answers.astype(str))
    weights = surrogate.coef_ if classes.size > 2 else np.vstack([-surrogate.coef_[0], surrogate.coef_[0]])
    own = np.searchsorted(surrogate.classes_, labels.astype(str))
    scores = standard[: len(rows)] @ weights.T + (
        surrogate.intercept_ if classes.size > 2 else np.array([-1.0, 1.0]) * surrogate.intercept_[0]
    )
    scores[np.arange(len(rows)), own] = -np.inf
    rival = scores.argmax(axis=1)  # the class closest to taking over
    direction = weights[rival] - weights[own]
    norms = np.linalg.norm(direction, axis=1, keepdims=True)
    return np.asarray(direction / np.where(norms > 0, norms, 1.0), dtype=np.float64)


def valid_numeric(values: np.ndarray, schema: FeatureSchema, *, beyond_sd: float = 0.0) -> np.ndarray:
    """Numeric values a client can send: whole where the feature is integer, and within its
    training range widened by ``beyond_sd`` training standard deviations on each side (the
    API itself takes any finite number; an attack kept in range looks like real data)."""
    out = values.copy()
    for j, name in enumerate(schema.numeric):
        feature = schema.feature(name)
        if feature.integer:
            out[:, j] = np.round(out[:, j])
        margin = beyond_sd * (feature.std or 0.0)
        low = -np.inf if feature.minimum is None else feature.minimum - margin
        high = np.inf if feature.maximum is None else feature.maximum + margin
        out[:, j] = np.clip(out[:, j], low, high)
    return out
