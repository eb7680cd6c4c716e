"""Small seeded worlds the screens are tested on."""

from __future__ import annotations

import numpy as np
import pandas as pd


def logistic_world(
    n: int, *, seed: int, strength: float = 2.0, intercept: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels drawn from a logistic model: clean labels with honest noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    p = 1.0 / (1.0 + np.exp(-(intercept + strength * (x[:, 0] - 0.5 * x[:, 1]))))
    return x, (rng.random(n) < p).astype(int)


def customers(n: int, *, seed: int) -> pd.DataFrame:
    """A small table with numeric and categorical features and a churn-like label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure": rng.gamma(2.0, 12.0, n).round(1),
        "fee": rng.uniform(5.0, 20.0, n).round(2),
        "tickets": rng.poisson(1.0, n).astype(float),
        "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.3, 0.2]),
        "device": rng.choice(["tv", "web", "mobile"], n),
    })
    logit = -1.0 - 0.05 * frame["tenure"] + 0.15 * (frame["fee"] - 12) + 0.6 * frame["tickets"]
    frame["churned"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return frame
