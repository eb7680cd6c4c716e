"""Sampling customers of the stable world, and turning them into request rows.

Every random draw is made unconditionally and in a fixed order, whatever the
incidents: a day of a scenario with incidents and the same day of the same seed
without incidents then share their customers exactly, apart from the incident's
own effect. That makes "what did the incident change?" answerable row by row
and makes false-alarm baselines directly comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from loopwatch.simulate import schema

Row = dict[str, float | str | None]


def sample_customers(
    rng: np.random.Generator,
    *,
    n: int,
    new_country: str = "BR",
    new_country_share: np.ndarray | None = None,
    watch_hours_factor: np.ndarray | None = None,
) -> pd.DataFrame:
    """Draw ``n`` customers with their true feature values.

    ``new_country_share`` is a per-row probability of the customer coming from
    ``new_country`` (a selection-bias incident); ``watch_hours_factor`` is a
    per-row multiplier of the true weekly watch time (a covariate shift).
    Both default to the stable world. The fee is drawn after the country so
    that customers of a new market carry that market's prices.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    plan = np.asarray(schema.PLANS)[rng.choice(len(schema.PLANS), size=n, p=schema.PLAN_SHARES)]
    device = np.asarray(schema.DEVICES)[rng.choice(len(schema.DEVICES), size=n, p=schema.DEVICE_SHARES)]
    country = np.asarray(schema.COUNTRIES, dtype=object)[
        rng.choice(len(schema.COUNTRIES), size=n, p=schema.COUNTRY_SHARES)
    ]
    switch_draw = rng.random(n)
    if new_country_share is not None:
        country = country.copy()
        country[switch_draw < _per_row(new_country_share, n)] = new_country

    list_price = _lookup(plan, schema.PLAN_PRICES)
    price_factor = _lookup(country, schema.PRICE_FACTORS)
    fee_noise = rng.normal(0.0, schema.FEE_NOISE_SD, size=n)
    monthly_fee = np.round(np.maximum(list_price * price_factor + fee_noise, schema.MIN_FEE), 2)

    tenure = np.round(rng.gamma(schema.TENURE_SHAPE, schema.TENURE_SCALE, size=n), 1)
    watch = rng.gamma(schema.WATCH_HOURS_SHAPE, schema.WATCH_HOURS_SCALE, size=n)
    if watch_hours_factor is not None:
        watch = watch * _per_row(watch_hours_factor, n)
    watch = np.round(watch, 2)
    tickets = rng.poisson(schema.SUPPORT_TICKETS_RATE, size=n).astype(float)
    age = np.round(np.clip(rng.normal(schema.AGE_MEAN, schema.AGE_SD, size=n), schema.AGE_MIN, schema.AGE_MAX))
    age[rng.random(n) < schema.AGE_MISSING_RATE] = np.nan

    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_fee": monthly_fee,
            "watch_hours": watch,
            "support_tickets": tickets,
            "age": age,
            "plan": plan.astype(object),
            "device": device.astype(object),
            "country": country.astype(object),
        },
        columns=list(schema.FEATURES),
    )


def to_rows(frame: pd.DataFrame) -> list[Row]:
    """JSON-ready request rows: plain Python floats and strings, ``None`` for missing.

    Built column-wise rather than with ``DataFrame.to_dict("records")`` because
    the simulator makes tens of thousands of rows and must stay fast.
    """
    columns: list[Sequence[float | str | None]] = []
    for name in schema.FEATURES:
        values = frame[name].to_numpy()
        if name in schema.NUMERIC_FEATURES:
            floats = values.astype(float)
            listed: list[float | None] = floats.tolist()
            if np.isnan(floats).any():
                listed = [None if v != v else v for v in listed]
            columns.append(listed)
        else:
            columns.append([str(v) for v in values])
    names = schema.FEATURES
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def rows_to_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The inverse of :func:`to_rows`: missing values become NaN, numerics float."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(schema.FEATURES))
    for name in schema.NUMERIC_FEATURES:
        frame[name] = pd.to_numeric(frame[name], errors="raise").astype(float)
    return frame


def _lookup(keys: np.ndarray, table: dict[str, float]) -> np.ndarray:
    return np.fromiter((table[k] for k in keys), dtype=float, count=len(keys))


def _per_row(values: np.ndarray, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"expected one value per row ({n}), got shape {array.shape}")
    return array
