"""Feature names, category levels and the stable-world marginals of the churn demo.

Kept in one place so that the population sampler, the true churn model, the
incident effects and the tests agree on the exact same names and numbers; the
demo's model schema is built from these constants too.
"""

from __future__ import annotations

import math
from typing import Final

TARGET: Final = "churned"

NUMERIC_FEATURES: Final = ("tenure_months", "monthly_fee", "watch_hours", "support_tickets", "age")
CATEGORICAL_FEATURES: Final = ("plan", "device", "country")
FEATURES: Final = NUMERIC_FEATURES + CATEGORICAL_FEATURES

PLANS: Final = ("basic", "standard", "premium")
PLAN_SHARES: Final = (0.45, 0.37, 0.18)
# List prices in dollars; the country factor and a small noise (promotions,
# taxes) spread the fee so it is a genuinely numeric feature, not a plan proxy.
PLAN_PRICES: Final = {"basic": 8.99, "standard": 13.49, "premium": 17.99}

DEVICES: Final = ("tv", "mobile", "web", "tablet")
DEVICE_SHARES: Final = (0.38, 0.32, 0.20, 0.10)

COUNTRIES: Final = ("US", "GB", "DE", "FR", "ES", "IT")
COUNTRY_SHARES: Final = (0.36, 0.16, 0.14, 0.13, 0.11, 0.10)
# "BR" is only ever seen during a selection-bias incident. Its price level is
# the average one, so the incident shows in the country mix and not also as a
# fee drift that would blur which incident a detector has found.
PRICE_FACTORS: Final = {
    "US": 1.0,
    "GB": 0.97,
    "DE": 0.95,
    "FR": 0.95,
    "ES": 0.88,
    "IT": 0.88,
    "BR": 0.95,
}
FEE_NOISE_SD: Final = 0.6
MIN_FEE: Final = 4.99

TENURE_SHAPE: Final = 1.3
TENURE_SCALE: Final = 16.0  # months; mean ~21, long right tail like real subscriber bases

WATCH_HOURS_SHAPE: Final = 2.2
WATCH_HOURS_SCALE: Final = 4.8  # weekly hours
# Exact stable-world moments of the gamma distribution, so a covariate shift
# can be stated (and checked) in standard deviations without estimating them.
WATCH_HOURS_MEAN: Final = WATCH_HOURS_SHAPE * WATCH_HOURS_SCALE
WATCH_HOURS_SD: Final = math.sqrt(WATCH_HOURS_SHAPE) * WATCH_HOURS_SCALE

SUPPORT_TICKETS_RATE: Final = 0.8

AGE_MEAN: Final = 39.0
AGE_SD: Final = 12.0
AGE_MIN: Final = 18.0
AGE_MAX: Final = 85.0
AGE_MISSING_RATE: Final = 0.02

# Softwares that send watch time in minutes multiply it by this.
MINUTES_PER_HOUR: Final = 60.0
