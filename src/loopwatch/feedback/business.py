"""Does the model's performance move a business metric, and after how long?

Two aligned series, one value per period (a day, say): a performance metric
of the model (accuracy, mean absolute error, ...) and a business metric
(revenue, churned customers, ...). :func:`lagged_correlation` correlates
performance in period ``t`` with the business metric in period ``t + lag``,
so a positive lag means the business follows the model; each correlation
comes with a confidence interval and a p-value. :func:`relation_changed`
asks whether that relation is different after some period than before it.

Periods where either series is missing (NaN) are dropped pair by pair. Series
with a ``PeriodIndex``, a ``DatetimeIndex`` or integer periods are aligned on
their index and completed to a regular range first, so a lag always counts periods, never
rows: a day missing from both series is still a day.

Statistics, each checked against scipy in the tests:

* Pearson's r, its p-value from the t distribution with ``n - 2`` degrees of
  freedom (``scipy.stats.pearsonr``), and the Fisher-z interval
  ``tanh(atanh(r) +- z / sqrt(n - 3))`` (``pearsonr(...).confidence_interval()``).
* Spearman's rho: Pearson's r of the ranks (ties averaged), the same
  t-based p-value as ``scipy.stats.spearmanr``, and the Fisher-z interval
  with the Fieller-Hartley-Pearson variance ``1.06 / (n - 3)``.
* A change of correlation: the z test of two independent correlations,
  ``(atanh r1 - atanh r2) / sqrt(1/(n1 - 3) + 1/(n2 - 3))``.
* A change of slope: the t test of the interaction term in one least-squares
  fit with its own intercept and slope on each side of the split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from loopwatch.errors import InvalidInput, echo

MIN_PAIRS = 4
CorrelationMethod = Literal["pearson", "spearman"]
SPEARMAN_VARIANCE = 1.06  # Fieller, Hartley and Pearson (1957): var(atanh rho) ~ 1.06 / (n - 3)


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class LagCorrelation:
    """The correlation of performance at ``t`` with the business metric at ``t + lag``."""

    lag: int
    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "lag": self.lag,
            "r": _json_float(self.r),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "p_value": _json_float(self.p_value),
            "n": self.n,
        }


def _regular_index(index: pd.Index) -> pd.Index:
    """The index completed to a regular range of periods (PeriodIndex, DatetimeIndex or integers)."""
    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(index.min(), index.max(), freq=index.freq)
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1:
        step = index.freq or pd.Series(index).diff().dropna().min()
        full = pd.date_range(index.min(), index.max(), freq=step)
        if not index.isin(full).all():
            raise InvalidInput(f"the periods of the series are not on a regular grid of {step}")
        return full
    if pd.api.types.is_integer_dtype(index) and len(index):
        return pd.RangeIndex(int(index.min()), int(index.max()) + 1)  # integer periods: 3 follows 2
    return index


def _as_float(values: Any, name: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numbers (NaN for a missing period)") from exc
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {array.shape}")
    if np.isinf(array).any():
        raise InvalidInput(f"{name} holds infinite values")
    return array


def align_series(performance: Any, business: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both series as float arrays over the same periods (NaN where a period is missing)."""
    if isinstance(performance, pd.Series) and isinstance(business, pd.Series):
        for name, series in (("performance", performance), ("business", business)):
            if not series.index.is_unique:
                raise InvalidInput(f"{name} has repeated periods in its index")
        try:
            index = _regular_index(performance.index.union(business.index).sort_values())
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"the two series' indexes cannot be aligned: {exc}") from exc
        performance, business = performance.reindex(index), business.reindex(index)
    elif isinstance(performance, pd.Series) or isinstance(business, pd.Series):
        raise InvalidInput("pass both series as pandas Series (aligned on their index) or both as arrays")
    x, y = _as_float(performance, "performance"), _as_float(business, "business")
    if len(x) != len(y):
        raise InvalidInput(f"performance has {len(x)} periods, business has {len(y)}")
    return x, y


def _lagged_pairs(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x[t], y[t + lag], t) for every period t where both are present."""
    t = np.arange(len(x))
    keep = (t + lag >= 0) & (t + lag < len(y))
    t = t[keep]
    xs, ys = x[t], y[t + lag]
    ok = ~(np.isnan(xs) | np.isnan(ys))
    return xs[ok], ys[ok], t[ok]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < MIN_PAIRS:  # before the means: a lag without pairs must not warn of an empty mean
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx <= 0 or syy <= 0:
        return math.nan
    # the product sxx * syy can underflow for tiny deviations where each root does not
    return float(np.clip((dx @ dy) / (math.sqrt(sxx) * math.sqrt(syy)), -1.0, 1.0))


def _p_value(r: float, n: int) -> float:
    if not math.isfinite(r):
        return math.nan
    if abs(r) == 1.0:
        return 0.0
    t = r * math.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), n - 2))


def correlation(x: np.ndarray, y: np.ndarray, *, confidence: float = 0.95,
                method: CorrelationMethod = "pearson") -> tuple[float, float, float, float]:
    """(r, ci_low, ci_high, p_value) of complete pairs; all NaN with fewer than 4 pairs."""
    n = len(x)
    if method == "spearman" and n >= MIN_PAIRS:
        x, y = stats.rankdata(x), stats.rankdata(y)
    r = _pearson(x, y)
    if not math.isfinite(r):
        return math.nan, math.nan, math.nan, math.nan
    variance = (SPEARMAN_VARIANCE if method == "spearman" else 1.0) / (n - 3)
    z, half = math.atanh(min(abs(r), 1.0 - 1e-16)) * np.sign(r), stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(variance)
    low, high = (math.tanh(z - half), math.tanh(z + half)) if abs(r) < 1.0 else (r, r)
    return r, low, high, _p_value(r, n)


def _check(confidence: float, method: str) -> None:
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1, got {echo(confidence)}")
    if method not in ("pearson", "spearman"):
        raise InvalidInput(f"method must be 'pearson' or 'spearman', not {echo(method)}")


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"{name} must be an integer, got {echo(value)}")
    return int(value)


def lagged_correlation(
    performance: Any,
    business: Any,
    *,
    max_lag: int = 7,
    min_lag: int = 0,
    confidence: float = 0.95,
    method: CorrelationMethod = "pearson",
) -> list[LagCorrelation]:
    """Correlation of performance at ``t`` with the business metric at ``t + lag``, for each lag.

    Lags run from ``min_lag`` (negative: the business metric leads) to
    ``max_lag``. A lag with fewer than 4 complete pairs, or a constant series,
    gets NaN.

    >>> perf = [0.90, 0.85, 0.92, 0.80, 0.88, 0.95, 0.83, 0.91, 0.86, 0.89]
    >>> revenue = [100, 97, 108, 89, 109, 83, 99, 114, 86, 106]  # follows perf two days later
    >>> best = max(lagged_correlation(perf, revenue, max_lag=3), key=lambda c: abs(c.r))
    >>> best.lag, round(best.r, 2), best.n
    (2, 0.98, 8)
    """
    _check(confidence, method)
    max_lag, min_lag = _check_int(max_lag, "max_lag"), _check_int(min_lag, "min_lag")
    if min_lag > max_lag:
        raise InvalidInput("min_lag must not exceed max_lag")
    x, y = align_series(performance, business)
    out = []
    for lag in range(min_lag, max_lag + 1):
        xs, ys, _ = _lagged_pairs(x, y, lag)
        r, low, high, p = correlation(xs, ys, confidence=confidence, method=method)
        out.append(LagCorrelation(lag=lag, r=r, ci_low=low, ci_high=high, p_value=p, n=len(xs)))
    return out


@dataclass(frozen=True)
class RelationChange:
    """Is the relation of business to performance different after ``split_index``?"""

    split_index: int
    lag: int
    n_before: int
    n_after: int
    r_before: float
    r_after: float
    z: float
    p_value: float
    slope_before: float
    slope_after: float
    slope_t: float
    slope_p_value: float
    alpha: float

    @property
    def changed(self) -> bool:
        """Either test below ``alpha / 2`` (Bonferroni over the two tests)."""
        p_values = [p for p in (self.p_value, self.slope_p_value) if math.isfinite(p)]
        return bool(p_values) and min(p_values) < self.alpha / 2

    def to_dict(self) -> dict[str, Any]:
        floats = ("r_before", "r_after", "z", "p_value", "slope_before", "slope_after", "slope_t", "slope_p_value")
        body: dict[str, Any] = {
            "split_index": self.split_index, "lag": self.lag,
            "n_before": self.n_before, "n_after": self.n_after,
        }
        body.update({name: _json_float(getattr(self, name)) for name in floats})
        body.update({"alpha": self.alpha, "changed": self.changed})
        return body


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(slope, sum of squares of x about its mean, residual sum of squares)."""
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 0:
        return math.nan, 0.0, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    residuals = (y - y.mean()) - slope * dx
    return slope, sxx, float(residuals @ residuals)


def relation_changed(
    performance: Any,
    business: Any,
    *,
    split_index: int,
    lag: int = 0,
    alpha: float = 0.01,
) -> RelationChange:
    """Compare the relation before period ``split_index`` (a position in the aligned
    series) with the one from it on: the correlation (two-correlation z test) and
    the slope of business on performance (interaction t test). ``changed`` is
    either p-value below ``alpha / 2``; a side with fewer than 4 complete pairs
    gives NaN and no change.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> perf = rng.normal(size=120)
    >>> business = np.r_[2.0 * perf[:60], -0.5 * perf[60:]] + rng.normal(0, 0.5, 120)
    >>> result = relation_changed(perf, business, split_index=60)
    >>> result.changed, round(result.slope_before, 1), round(result.slope_after, 1)
    (True, 2.0, -0.6)
    """
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InvalidInput(f"alpha must be between 0 and 1, got {echo(alpha)}")
    x, y = align_series(performance, business)
    split_index, lag = _check_int(split_index, "split_index"), _check_int(lag, "lag")
    if not 0 < split_index < len(x):
        raise InvalidInput(f"split_index must be between 1 and {len(x) - 1} (a period inside the series)")
    xs, ys, t = _lagged_pairs(x, y, lag)
    before, after = t < split_index, t >= split_index
    r1, n1 = _pearson(xs[before], ys[before]), int(before.sum())
    r2, n2 = _pearson(xs[after], ys[after]), int(after.sum())
    z = p = math.nan
    if math.isfinite(r1) and math.isfinite(r2):
        clip = 1.0 - 1e-15
        z = (math.atanh(np.clip(r1, -clip, clip)) - math.atanh(np.clip(r2, -clip, clip))) / math.sqrt(
            1.0 / (n1 - 3) + 1.0 / (n2 - 3))
        p = float(2.0 * stats.norm.sf(abs(z)))
    b1, sxx1, rss1 = _slope(xs[before], ys[before]) if n1 >= MIN_PAIRS else (math.nan, 0.0, math.nan)
    b2, sxx2, rss2 = _slope(xs[after], ys[after]) if n2 >= MIN_PAIRS else (math.nan, 0.0, math.nan)
    slope_t = slope_p = math.nan
    if math.isfinite(b1) and math.isfinite(b2):
        s2 = (rss1 + rss2) / (n1 + n2 - 4)
        se = math.sqrt(s2 * (1.0 / sxx1 + 1.0 / sxx2))
        if se > 0:
            slope_t = (b2 - b1) / se
            slope_p = float(2.0 * stats.t.sf(abs(slope_t), n1 + n2 - 4))
    return RelationChange(
        split_index=split_index, lag=lag, n_before=n1, n_after=n2, r_before=r1, r_after=r2, z=z, p_value=p,
        slope_before=b1, slope_after=b2, slope_t=slope_t, slope_p_value=slope_p, alpha=float(alpha),
    )
