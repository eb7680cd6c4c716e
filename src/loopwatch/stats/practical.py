"""Practical thresholds: how large a difference must be to matter, whatever the window size.

A p-value answers "is there any difference?"; with thousands of rows per window
it says yes to differences nobody cares about, and every window alarms. So
every decisive statistic also has an *effect* and a *practical threshold*, and
a drift is declared only when the test is significant AND the effect reaches
the threshold.

The threshold is ``max(floor, band(min(n, band_rows)))``:

* ``floor``: an absolute smallest effect that matters (:data:`DEFAULT_FLOORS`).
  For numeric features it is Evidently's default for large data (Wasserstein
  distance in reference standard deviations 0.1); for categorical ones half of
  Evidently's Jensen-Shannon 0.1 (see the comment at the table).
* ``band(m)``: the reference's own variability, as NannyML measures it: the
  value the effect reaches by chance, between the reference and a window of
  ``m`` rows drawn from the reference, at :data:`BAND_LEVEL` (the one-sided
  level of mean + 3 sd under a normal null). A feature with many categories
  (a hundred destinations) has a much larger chance distance than a binary one,
  and the band says so.
* ``band_rows`` (N0, :data:`DEFAULT_BAND_ROWS`): the band is read at no more
  than N0 rows, so it stops narrowing as windows grow. A band at ``n`` rows
  shrinks like ``1/sqrt(n)``, and would end where a p-value ends: flagging
  everything at a million rows.

So the threshold never increases with ``n`` and is constant beyond N0, and it is
never below the floor. Each function below is the band of one statistic; all
are pure and cheap (closed forms or moments already in the reference profile),
so a monitor computes them per window without resampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from loopwatch.errors import InvalidInput, echo
from loopwatch.stats.calibration import NullCalibration, bootstrap_null  # noqa: F401  (doctest)

#: One-sided level of "mean + 3 sd" under a normal null: the band is exceeded by chance
#: in 0.135% of reference windows.
BAND_LEVEL = 0.99865
#: N0: rows at which the band stops narrowing.
DEFAULT_BAND_ROWS = 1_000
#: Smallest effect that matters, per statistic (overridable per statistic in the configuration).
DEFAULT_FLOORS: Mapping[str, float] = {
    # Wasserstein distance in reference sds, numeric features and outputs (Evidently: 0.1)
    "wasserstein_normed": 0.1,
    # Jensen-Shannon distance (base 2), categorical features and predicted labels: half of
    # Evidently's 0.1, which lets a balanced binary feature move by 11 points of share unseen;
    # 0.05 is a 6-point move (features with many categories get a larger reference band)
    "js_distance": 0.05,
    # relative rise of the mean PCA reconstruction error (10% worse)
    "pca_reconstruction": 0.1,
    # largest KS distance over principal components
    "pca_ks": 0.05,
    # squared kernel MMD on the principal components (median-heuristic bandwidth)
    "mmd": 0.01,
    # held-out AUC of the domain classifier minus 0.5
    "domain_classifier": 0.05,
    # share of rows flagged beyond the calibrated share (outlier and novelty detectors)
    "outlier_rate": 0.02,
    # share of predictions flagged adversarial beyond the calibrated share
    "evasion_rate": 0.02,
}
STATISTICS = tuple(DEFAULT_FLOORS)


@dataclass(frozen=True, kw_only=True)
class PracticalThreshold:
    """An effect beside the threshold it must reach, and where the threshold came from."""

    statistic: str
    effect: float
    threshold: float
    #: ``"calibrated"``: max(floor, band); ``"configured"``: set in the configuration.
    source: str
    floor: float
    #: The reference band at ``band_rows`` rows (None when configured or without a band).
    band: float | None
    band_rows: int

    @property
    def large_enough(self) -> bool:
        return bool(self.effect >= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "effect": _finite(self.effect),
            "threshold": _finite(self.threshold),
            "source": self.source,
            "floor": _finite(self.floor),
            "band": _finite(self.band),
            "band_rows": self.band_rows,
        }


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_overrides(overrides: Mapping[str, Any], *, name: str = "practical_thresholds") -> dict[str, float]:
    """Configured thresholds by statistic: known names, finite non-negative numbers."""
    if not isinstance(overrides, Mapping):
        raise InvalidInput(f"{name} must map statistic names to numbers")
    out: dict[str, float] = {}
    for key, value in overrides.items():
        if key not in DEFAULT_FLOORS:
            raise InvalidInput(f"{name}: unknown statistic {echo(key)}; known: {', '.join(STATISTICS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"{name}[{echo(key)}] must be a finite number >= 0")
        out[str(key)] = float(value)
    return out


def check_band_rows(value: Any, *, name: str = "practical_band_rows") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 10 <= value <= 10_000_000:
        raise InvalidInput(f"{name} must be an integer between 10 and 10,000,000")
    return int(value)


def practical(
    statistic: str,
    effect: float,
    *,
    band: float | None,
    band_rows: int,
    overrides: Mapping[str, float],
) -> PracticalThreshold:
    """The threshold of ``statistic`` (configured, or max(floor, band)) beside its ``effect``.

    >>> practical("js_distance", 0.2, band=0.03, band_rows=1000, overrides={}).threshold
    0.05
    >>> practical("js_distance", 0.2, band=0.14, band_rows=1000, overrides={}).threshold
    0.14
    >>> practical("js_distance", 0.2, band=0.14, band_rows=1000, overrides={"js_distance": 0.3}).large_enough
    False
    """
    floor = float(DEFAULT_FLOORS[statistic])
    if statistic in overrides:
        return PracticalThreshold(statistic=statistic, effect=float(effect), threshold=float(overrides[statistic]),
                                  source="configured", floor=floor, band=None, band_rows=band_rows)
    usable = band if band is not None and math.isfinite(band) else 0.0
    return PracticalThreshold(statistic=statistic, effect=float(effect), threshold=max(floor, usable),
                              source="calibrated", floor=floor, band=band, band_rows=band_rows)


def band_size(n_current: int, band_rows: int) -> int:
    """Rows at which the band is read: the window's, but never more than N0."""
    return max(1, min(int(n_current), int(band_rows)))


def distance_band(null: NullCalibration, statistic: str, *, n_reference: int, n_current: int,
                  band_rows: int) -> float:
    """A distance reached by chance between the reference and a window of min(n, N0) rows drawn
    from it: the :data:`BAND_LEVEL` quantile of the profile's bootstrap null, rescaled to
    those sizes (stats/calibration.py).

    >>> ref = np.sort(np.random.default_rng(1).normal(size=5000))
    >>> null = bootstrap_null(ref, 5000, ["wasserstein_normed"], rng=np.random.default_rng(2))
    >>> at = [distance_band(null, "wasserstein_normed", n_reference=5000, n_current=n, band_rows=1000)
    ...       for n in (100, 1000, 100_000)]
    >>> at[0] > at[1] == at[2]
    True
    """
    sized = replace(null, n_reference=max(1, int(n_reference)), n_current=band_size(n_current, band_rows))
    return sized.threshold(statistic, 1.0 - BAND_LEVEL)


def _one_sided_z() -> float:
    return float(math.sqrt(2.0) * special.erfinv(2.0 * BAND_LEVEL - 1.0))


def rate_band(expected_rate: float, n_current: int, n_calibration: int, *, band_rows: int) -> float:
    """Excess flagged share reached by chance: ``z * sqrt(p (1 - p) (1/m + 1/n_cal))``.

    Both the window's share (``m`` = min(n, N0) rows) and the calibrated share (``n_cal`` rows)
    are estimates.

    >>> round(rate_band(0.01, 5000, 10**9, band_rows=1000), 4)
    0.0094
    """
    p = min(max(float(expected_rate), 0.0), 1.0)
    m = band_size(n_current, band_rows)
    return _one_sided_z() * math.sqrt(p * (1.0 - p) * (1.0 / m + 1.0 / max(1, n_calibration)))


def auc_band(n_reference_test: int, n_current_test: int, *, band_rows: int) -> float:
    """AUC - 0.5 reached by chance: ``z`` times the Mann-Whitney null sd of the AUC.

    ``sqrt((n1 + n2 + 1) / (12 n1 n2))`` with the current side capped at N0 rows.

    >>> round(auc_band(500, 500, band_rows=1000), 4)
    0.0548
    """
    n1 = max(1, int(n_reference_test))
    n2 = band_size(n_current_test, band_rows)
    return _one_sided_z() * math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))


def ks_band(n_reference: int, n_current: int, n_components: int, *, band_rows: int) -> float:
    """Largest KS distance over ``n_components`` reached by chance (Kolmogorov's tail,
    ``P(D > c) ~ 2 exp(-2 n_eff c^2)``, Bonferroni over components).

    >>> round(ks_band(10**9, 1000, 1, band_rows=1000), 4)
    0.0604
    """
    m = band_size(n_current, band_rows)
    n_eff = n_reference * m / (n_reference + m)
    tail = (1.0 - BAND_LEVEL) / max(1, n_components)
    return math.sqrt(math.log(2.0 / tail) / (2.0 * n_eff))


def mean_ratio_band(reference_errors: np.ndarray, n_current: int, *, band_rows: int) -> float:
    """Relative rise of a window's mean error reached by chance: ``z * s * sqrt(1/m + 1/n_r) / mean``.

    >>> errors = np.random.default_rng(0).exponential(size=20000)
    >>> 0.09 < mean_ratio_band(errors, 5000, band_rows=1000) < 0.1
    True
    """
    errors = np.asarray(reference_errors, dtype=np.float64)
    mean = float(errors.mean()) if errors.size else 0.0
    if errors.size < 2 or mean <= 0:
        return 0.0
    m = band_size(n_current, band_rows)
    spread = float(errors.std(ddof=1)) * math.sqrt(1.0 / m + 1.0 / errors.size)
    return _one_sided_z() * spread / mean


__all__ = (
    "BAND_LEVEL", "DEFAULT_BAND_ROWS", "DEFAULT_FLOORS", "PracticalThreshold", "STATISTICS", "auc_band",
    "band_size", "check_band_rows", "check_overrides", "distance_band", "ks_band", "mean_ratio_band", "practical", "rate_band",
)
