"""Multiple-testing adjustments for the p-values of many features at once.

A drift report tests every feature; at 5% each, a model with 40 features
raises about two false alarms per window. Adjusted p-values are compared with
the same alpha as raw ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from loopwatch.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]


def _p_values(p_values: npt.ArrayLike) -> FloatArray:
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("p-values must be numbers") from exc
    if p.ndim != 1:
        raise InvalidInput(f"p-values must be one-dimensional, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise InvalidInput("p-values must lie in [0, 1] (drop NaN before adjusting)")
    return p


def bonferroni(p_values: npt.ArrayLike) -> FloatArray:
    """``min(1, p m)``: controls the family-wise error rate.

    >>> bonferroni([0.01, 0.04, 0.5]).round(3).tolist()
    [0.03, 0.12, 1.0]
    """
    p = _p_values(p_values)
    return np.minimum(p * p.size, 1.0)


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in input order.

    ``p_(i) m / i`` made monotone from the largest p-value down and capped at 1;
    equal to ``scipy.stats.false_discovery_control(p, method="bh")`` and to
    statsmodels' ``fdr_bh``. Always between the raw and the Bonferroni values.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p = _p_values(p_values)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # a larger p-value's adjusted value bounds every smaller one's
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m, dtype=np.float64)
    out[order] = np.minimum(monotone, 1.0)
    return out
