"""Rows and labels of the security incidents: boundary probing and label poisoning.

Both are generated from their own random streams so that adding or removing
them never changes the ordinary traffic of the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from loopwatch.simulate.concept import stable_churn_probability
from loopwatch.simulate.population import sample_customers
from loopwatch.simulate.records import FeedbackRecord

# Grid steps of the probe: far below anything a real customer's data would
# move by, which is what gives a probe away.
PROBE_STEPS = {"watch_hours": 0.05, "monthly_fee": 0.05}
_ANCHOR_POOL = 4000


def probe_frame(rng: np.random.Generator, *, n_rows: int, anchors: int) -> pd.DataFrame:
    """``n_rows`` grid-like perturbations around ``anchors`` points of churn probability ~0.5.

    Anchors are chosen under the stable-world probability, because the attacker
    maps the deployed model (trained on the stable world), not the truth. Each
    anchor is swept in raster order over a square grid of tiny steps in
    ``watch_hours`` x ``monthly_fee``; all other features stay the anchor's.
    """
    if n_rows <= 0:
        return sample_customers(rng, n=0)
    anchors = max(1, anchors)
    pool = sample_customers(rng, n=_ANCHOR_POOL)
    pool = pool[pool["age"].notna()].reset_index(drop=True)
    closeness = np.abs(stable_churn_probability(pool) - 0.5)
    chosen = pool.iloc[np.argsort(closeness, kind="stable")[:anchors]].reset_index(drop=True)

    per_anchor = math.ceil(n_rows / anchors)
    half_width = math.ceil((math.sqrt(per_anchor) - 1.0) / 2.0)
    steps = np.arange(-half_width, half_width + 1)
    fee_steps, watch_steps = np.meshgrid(steps, steps, indexing="ij")
    fee_steps = fee_steps.ravel()[:per_anchor]
    watch_steps = watch_steps.ravel()[:per_anchor]

    parts = []
    for position in range(len(chosen)):
        part = chosen.iloc[np.zeros(per_anchor, dtype=int) + position].reset_index(drop=True)
        part["watch_hours"] = np.round(
            np.maximum(part["watch_hours"].to_numpy() + watch_steps * PROBE_STEPS["watch_hours"], 0.0), 2
        )
        part["monthly_fee"] = np.round(
            np.maximum(part["monthly_fee"].to_numpy() + fee_steps * PROBE_STEPS["monthly_fee"], 0.0), 2
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True).iloc[:n_rows].reset_index(drop=True)


def probe_offsets(rng: np.random.Generator, *, n_rows: int, start: float, hours: float) -> np.ndarray:
    """Seconds after midnight of the probe rows: a steady machine cadence with a little jitter."""
    if n_rows <= 0:
        return np.zeros(0)
    span = hours * 3600.0
    cadence = np.linspace(0.0, span, num=n_rows, endpoint=False)
    jitter = rng.random(n_rows) * (span / n_rows) * 0.5
    return np.round(start + np.sort(cadence + jitter), 3)


def poisoned_feedback(
    rng: np.random.Generator,
    *,
    candidates: Sequence[FeedbackRecord],
    n_records: int,
    flip_rate: float,
    source: str,
    start: datetime,
    hours: float,
) -> tuple[FeedbackRecord, ...]:
    """Labels from ``source`` for a random subset of ``candidates``, ``flip_rate`` of them flipped.

    Exactly ``round(flip_rate * n)`` labels are flipped, so the stated rate is
    the realised rate and tests need no tolerance for sampling luck.
    """
    if not 0.0 <= flip_rate <= 1.0:
        raise ValueError(f"flip_rate must be in [0, 1], got {flip_rate}")
    n = min(n_records, len(candidates))
    if n <= 0:
        return ()
    picked = np.sort(rng.choice(len(candidates), size=n, replace=False))
    flips = np.zeros(n, dtype=bool)
    flips[rng.choice(n, size=int(round(flip_rate * n)), replace=False)] = True
    arrival = np.sort(rng.random(n)) * hours * 3600.0
    records = []
    for position, index in enumerate(picked.tolist()):
        truth = candidates[index]
        label = 1 - truth.true_label if flips[position] else truth.true_label
        records.append(
            FeedbackRecord(
                entity_id=truth.entity_id,
                label=label,
                label_time=start + timedelta(milliseconds=round(float(arrival[position]) * 1000.0)),
                source=source,
                prediction_time=truth.prediction_time,
                true_label=truth.true_label,
            )
        )
    return tuple(records)
