"""Is a window's outlier rate higher than expected?

An outlier detector's threshold is calibrated on held-out reference rows, so
the rate it should flag at is itself an estimate: ``k_reference`` flagged out
of ``n_reference``. Testing the window's ``k_window / n_window`` against that
estimate as if it were the true rate (a plain binomial test) ignores its
uncertainty, which matters as soon as the window is not small next to the
calibration set: with 1,000 calibration rows at 1% and a 5,000-row window,
the plain test's null spread is less than half the real one, and it fires
far more often than ``alpha`` on clean data.

:func:`rate_test` instead treats both counts as samples at one unknown rate
and conditions on their total ``k = k_window + k_reference``; for rare flags
(Poisson counts) ``k_window`` is then exactly ``Binomial(k, n_window /
(n_window + n_reference))`` whatever the rate, so the test needs no estimate
of it. (Fisher's exact test is the same idea with a hypergeometric null; it
coincides with this one for rare flags and is otherwise slightly less
conservative.) :func:`binomial_rate_test` is the plain test, kept for
comparison and for a rate that is known rather than estimated.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from scipy import stats

from loopwatch.errors import InvalidInput, echo


@dataclass(frozen=True)
class RateResult:
    """A window's rate, the rate it is compared with, and the one-sided p-value."""

    rate: float
    expected_rate: float
    p_value: float
    k_window: int
    n_window: int
    method: str
    alpha: float = 0.05

    @property
    def drift(self) -> bool:
        """True when the window's rate is significantly higher at ``alpha``."""
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "expected_rate": self.expected_rate,
            "p_value": self.p_value,
            "k_window": self.k_window,
            "n_window": self.n_window,
            "method": self.method,
            "alpha": self.alpha,
            "drift": self.drift,
        }


def _count(value: Any, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError as exc:
        raise InvalidInput(f"{name} must be an integer count, got {echo(value)}") from exc
    if number < 0:
        raise InvalidInput(f"{name} must be >= 0, got {number}")
    return int(number)


def _counts(k: Any, n: Any, side: str) -> tuple[int, int]:
    k_, n_ = _count(k, f"k_{side}"), _count(n, f"n_{side}")
    if n_ == 0:
        raise InvalidInput(f"n_{side} must be positive")
    if k_ > n_:
        raise InvalidInput(f"k_{side} ({k_}) exceeds n_{side} ({n_})")
    return k_, n_


def _alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise InvalidInput(f"alpha must lie in (0, 1), got {alpha}")
    return float(alpha)


def rate_test(
    k_window: int, n_window: int, k_reference: int, n_reference: int, *, alpha: float = 0.05
) -> RateResult:
    """One-sided conditional test: is the window's rate above the reference's?

    Under H0 (same rate), given ``k = k_window + k_reference``,
    ``k_window ~ Binomial(k, n_window / (n_window + n_reference))``; the
    p-value is ``P(X >= k_window)`` (``scipy.stats.binomtest``, greater).
    No flag at all (``k == 0``) is no evidence: p = 1.

    >>> r = rate_test(30, 1000, 10, 1000)
    >>> round(r.rate, 3), round(r.expected_rate, 3), r.p_value < 0.01
    (0.03, 0.01, True)
    >>> rate_test(12, 1000, 10, 1000).drift
    False
    """
    k_w, n_w = _counts(k_window, n_window, "window")
    k_r, n_r = _counts(k_reference, n_reference, "reference")
    level = _alpha(alpha)
    total = k_w + k_r
    share = n_w / (n_w + n_r)
    p_value = 1.0 if total == 0 else float(stats.binomtest(k_w, total, share, alternative="greater").pvalue)
    return RateResult(
        rate=k_w / n_w,
        expected_rate=k_r / n_r,
        p_value=min(1.0, p_value),
        k_window=k_w,
        n_window=n_w,
        method="conditional_binomial",
        alpha=level,
    )


def binomial_rate_test(k_window: int, n_window: int, expected_rate: float, *, alpha: float = 0.05) -> RateResult:
    """Plain one-sided binomial test of ``k_window`` against a *known* rate.

    Right when the rate is fixed by design; with a rate estimated on a
    finite calibration set it overstates significance (see the module doc).

    >>> binomial_rate_test(30, 1000, 0.01).p_value < 1e-6
    True
    """
    k_w, n_w = _counts(k_window, n_window, "window")
    level = _alpha(alpha)
    if not 0.0 <= expected_rate <= 1.0:
        raise InvalidInput(f"expected_rate must lie in [0, 1], got {expected_rate}")
    p_value = float(stats.binomtest(k_w, n_w, float(expected_rate), alternative="greater").pvalue)
    return RateResult(
        rate=k_w / n_w,
        expected_rate=float(expected_rate),
        p_value=min(1.0, p_value),
        k_window=k_w,
        n_window=n_w,
        method="binomial",
        alpha=level,
    )
