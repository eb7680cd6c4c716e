"""The true churn model: a logistic model of the features, and its drifted versions.

The ground truth has to be simple enough that a logistic regression can learn
it (so the demo's model is good), yet rich enough (categoricals, a missing
value, a long-tailed tenure) that monitoring has something to watch. A concept
drift is stated as the AUC a fixed model is expected to lose, so
:func:`drifted_concept` solves for the coefficient change that produces that
loss instead of leaving the effect size a loose promise.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.simulate import schema
from loopwatch.simulate.population import sample_customers

# Centres keep the intercept interpretable (log-odds of an average customer).
FEE_CENTRE = 13.0
WATCH_CENTRE = 10.0
AGE_CENTRE = schema.AGE_MEAN

# The direction of the concept drift, per unit of strength: a cheaper rival
# launches, so price sensitivity rises and long tenure stops protecting.
DRIFT_FEE_PER_UNIT = 0.25
DRIFT_TENURE_PER_UNIT = 0.05

_CALIBRATION_SEED = 20260105
_CALIBRATION_SIZE = 40_000
_MAX_STRENGTH = 4.0


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, kw_only=True)
class ChurnConcept:
    """Coefficients of the true log-odds of churn.

    Categorical levels missing from a table (e.g. an unseen country) add 0, and
    a missing age counts as an average age: the truth must be defined for every
    row the simulator can emit.
    """

    intercept: float = -0.95
    tenure_months: float = -0.05
    monthly_fee: float = 0.10
    watch_hours: float = -0.13
    support_tickets: float = 0.45
    age: float = -0.012
    plan: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"basic": 0.25, "standard": 0.0, "premium": -0.35})
    )
    device: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"tv": -0.25, "mobile": 0.25, "web": 0.05, "tablet": 0.10})
    )
    country: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"US": 0.0, "GB": 0.05, "DE": -0.10, "FR": 0.05, "ES": 0.15, "IT": 0.10, "BR": 0.35}
        )
    )

    def __post_init__(self) -> None:
        for name in ("plan", "device", "country"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def logit(self, frame: pd.DataFrame) -> np.ndarray:
        """True log-odds of churn of each row of ``frame`` (true, not as-sent, values)."""
        age = frame["age"].to_numpy(dtype=float)
        z = (
            self.intercept
            + self.tenure_months * frame["tenure_months"].to_numpy(dtype=float)
            + self.monthly_fee * (frame["monthly_fee"].to_numpy(dtype=float) - FEE_CENTRE)
            + self.watch_hours * (frame["watch_hours"].to_numpy(dtype=float) - WATCH_CENTRE)
            + self.support_tickets * frame["support_tickets"].to_numpy(dtype=float)
            + self.age * np.nan_to_num(age - AGE_CENTRE, nan=0.0)
        )
        for name, table in (("plan", self.plan), ("device", self.device), ("country", self.country)):
            z = z + frame[name].map(dict(table)).fillna(0.0).to_numpy(dtype=float)
        return np.asarray(z, dtype=float)

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """True probability of churn of each row."""
        return _sigmoid(self.logit(frame))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "tenure_months": self.tenure_months,
            "monthly_fee": self.monthly_fee,
            "watch_hours": self.watch_hours,
            "support_tickets": self.support_tickets,
            "age": self.age,
            "plan": dict(self.plan),
            "device": dict(self.device),
            "country": dict(self.country),
        }


STABLE_CONCEPT = ChurnConcept()


def stable_churn_probability(frame: pd.DataFrame) -> np.ndarray:
    """Probability of churn in the stable world (what the demo's model approximates)."""
    return STABLE_CONCEPT.probability(frame)


def expected_auc(scores: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC-AUC of ``scores`` expected when labels are Bernoulli(``probabilities``).

    Computed exactly over all pairs in O(n log n), so calibration is free of
    label-sampling noise. Ties in ``scores`` are assumed negligible.
    """
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    q = np.asarray(probabilities, dtype=float)[order]
    negatives_below = np.cumsum(1.0 - q) - (1.0 - q)
    numerator = float(np.sum(q * negatives_below))
    denominator = float(q.sum() * (1.0 - q).sum() - np.sum(q * (1.0 - q)))
    return numerator / denominator


def drifted_concept(*, auc_drop: float) -> ChurnConcept:
    """The concept after a drift that costs a stable-world model ``auc_drop`` of AUC.

    The inputs keep their distribution and the base churn rate is held fixed
    (the intercept is re-centred), so the drift is invisible to input and
    prediction monitors and only shows once labels arrive: that is what makes it
    a concept drift rather than a data incident.
    """
    if not 0.0 <= auc_drop < 0.3:
        raise ValueError(f"auc_drop must be in [0, 0.3), got {auc_drop}")
    strength, intercept_shift = _solve_strength(round(auc_drop, 6))
    return _concept_at(strength, intercept_shift)


def _concept_at(strength: float, intercept_shift: float) -> ChurnConcept:
    base = STABLE_CONCEPT
    return replace(
        base,
        intercept=base.intercept + intercept_shift,
        monthly_fee=base.monthly_fee + strength * DRIFT_FEE_PER_UNIT,
        tenure_months=base.tenure_months + strength * DRIFT_TENURE_PER_UNIT,
    )


@functools.lru_cache(maxsize=16)
def _solve_strength(auc_drop: float) -> tuple[float, float]:
    # A fixed private seed: the calibration is a property of the concept, not
    # of a scenario, so every scenario gets the same drifted concept.
    frame = _calibration_sample()
    stable_logit = STABLE_CONCEPT.logit(frame)
    stable_p = _sigmoid(stable_logit)
    base_auc = expected_auc(stable_logit, stable_p)
    direction = DRIFT_FEE_PER_UNIT * (frame["monthly_fee"].to_numpy() - FEE_CENTRE) + (
        DRIFT_TENURE_PER_UNIT * frame["tenure_months"].to_numpy()
    )

    def drop_at(strength: float) -> tuple[float, float]:
        shift = _recentre(stable_logit + strength * direction, float(stable_p.mean()))
        drifted_p = _sigmoid(stable_logit + strength * direction + shift)
        return base_auc - expected_auc(stable_logit, drifted_p), shift

    if auc_drop == 0.0:
        return 0.0, 0.0
    low, high = 0.0, _MAX_STRENGTH
    if drop_at(high)[0] < auc_drop:
        raise ValueError(f"an AUC drop of {auc_drop} is beyond what the drift can produce")
    for _ in range(40):
        middle = (low + high) / 2.0
        if drop_at(middle)[0] < auc_drop:
            low = middle
        else:
            high = middle
    strength = (low + high) / 2.0
    return strength, drop_at(strength)[1]


@functools.lru_cache(maxsize=1)
def _calibration_sample() -> pd.DataFrame:
    return sample_customers(np.random.default_rng(_CALIBRATION_SEED), n=_CALIBRATION_SIZE)


def _recentre(logit: np.ndarray, target_mean: float) -> float:
    """Intercept shift that brings the mean probability back to ``target_mean`` (Newton)."""
    shift = 0.0
    for _ in range(50):
        p = _sigmoid(logit + shift)
        gap = float(p.mean()) - target_mean
        if abs(gap) < 1e-10:
            break
        shift -= gap / float(np.mean(p * (1.0 - p)))
    return shift


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))
