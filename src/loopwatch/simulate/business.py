"""The business metric of the demo: daily revenue, per country and in total."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd

from loopwatch.simulate import schema
from loopwatch.simulate.records import BusinessMetric

REVENUE_METRIC: Final = "revenue"
# Each scored customer stands for this many subscribers like them, so daily
# revenue lands in a believable range (tens of thousands of dollars a day).
SUBSCRIBERS_PER_ROW: Final = 100
DAYS_PER_MONTH: Final = 365.25 / 12.0


def revenue(customers: pd.DataFrame, labels: np.ndarray, timestamp: datetime) -> tuple[BusinessMetric, ...]:
    """Daily revenue kept from the day's scored customers, per country and in total.

    Booked on the scoring day (a simplification, so that an incident's business
    effect shows on its own day): customers who will not churn keep paying,
    and the daily share of their monthly fee is summed. Every training country
    is reported every day, even at 0, so a missing segment never looks like a
    drop; a new country appears as an extra segment.
    """
    daily = customers["monthly_fee"].to_numpy(dtype=float) * SUBSCRIBERS_PER_ROW / DAYS_PER_MONTH
    kept = np.where(labels == 0, daily, 0.0)
    by_country = pd.Series(kept).groupby(customers["country"].to_numpy()).sum()
    segments = list(schema.COUNTRIES) + sorted(set(by_country.index) - set(schema.COUNTRIES))
    metrics = [
        BusinessMetric(
            name=REVENUE_METRIC,
            timestamp=timestamp,
            value=round(float(by_country.get(country, 0.0)), 2),
            segment=country,
        )
        for country in segments
    ]
    total = BusinessMetric(name=REVENUE_METRIC, timestamp=timestamp, value=round(float(kept.sum()), 2), segment=None)
    return (*metrics, total)
