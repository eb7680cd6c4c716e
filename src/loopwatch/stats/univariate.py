"""Two-sample tests and distances for one feature: KS, Wasserstein, chi-square.

The reference is sorted once, when its profile is built (a sorted array or a
:class:`~loopwatch.stats.sketch.NumericSummary`); the current window is sorted
once per feature and reused: :func:`ks_and_wasserstein` computes both
statistics from one merge of the two sorted arrays, in
``O(n log m + n + m)`` (one ``searchsorted`` of the reference into the
current, then a scatter and a cumulative sum). Both equal scipy's
``ks_2samp`` and ``wasserstein_distance`` on the same arrays.

KS p-values follow ``scipy.stats.ks_2samp`` (scipy 1.17) exactly:

* ``method="auto"`` is exact when ``max(n_reference, n_current) <= 10_000``
  (scipy's own rule; the exact computation then takes at most ~0.1 s) and the
  reference holds every value; otherwise asymptotic.
* exact: the p-value of ``ks_2samp(method="exact")`` on the two arrays (scipy's
  lattice-path counts; if scipy's exact computation gives up numerically it
  falls back to asymptotic, as scipy does). Exact needs the reference values
  themselves and ``n_reference * n_current <= 1e8``, so its cost stays bounded.
* asymptotic: ``kstwo.sf(D, round(n m / (n + m)))``, scipy's formula, with
  ``n`` the number of reference *rows* (``summary.n``), not of summary points.
  Where scipy's ``kstwo.sf`` sums the exact one-sided Smirnov series in
  double-double arithmetic (effective sizes 1e4-1e6 with ``2.2 <= n D^2 <
  370``, i.e. p-values between ~1e-160 and 0.02: a drifted feature), which
  takes 0.2-3 s per call, the same series is summed vectorised in log space
  (tens of ms, same value to ~1e-9 relative).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

from loopwatch.errors import InvalidInput, echo
from loopwatch.stats.binned import align_categories
from loopwatch.stats.sketch import (
    FloatArray,
    NumericSummary,
    finite_array,
    scale_of,
    sorted_finite_array,
)

KSMethod = Literal["auto", "exact", "asymp"]
Reference = NumericSummary | npt.ArrayLike

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N
EXACT_MAX_PRODUCT = 100_000_000
SMIRNOV_FAST_MIN_N = 10_000  # below this scipy's own Smirnov sum is quick enough
SMIRNOV_MAX_N = 1_000_000  # scipy's SMIRNOV_MAX_COMPUTE_N: above it scipy approximates, and so do we


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    statistic: float
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return {"statistic": self.statistic, "p_value": self.p_value}


def _reference(reference: Reference) -> tuple[FloatArray, int, bool]:
    """(sorted values, rows they stand for, whether they are every row)."""
    if isinstance(reference, NumericSummary):
        return reference.sorted_values, reference.n, reference.exact
    arr = sorted_finite_array(reference, name="reference_sorted")
    return arr, int(arr.size), True


def _current(current: npt.ArrayLike, current_sorted: bool) -> FloatArray:
    if current_sorted:
        return sorted_finite_array(current, name="current_sorted")
    return np.sort(finite_array(current, name="current"))


def _merged_cdf_difference(ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Merge two sorted arrays; return (merged values, F_ref - F_cur at each
    merged value, mask of the last element of each run of equal values)."""
    n, m = ref.size, cur.size
    # ref[i] lands after the i earlier ref values and the current values below it
    pos = np.arange(n) + np.searchsorted(cur, ref, side="left")
    is_ref = np.zeros(n + m, dtype=bool)
    is_ref[pos] = True
    merged = np.empty(n + m, dtype=np.float64)
    merged[pos] = ref
    merged[~is_ref] = cur
    n_ref = np.cumsum(is_ref)
    n_cur = np.arange(1, n + m + 1) - n_ref
    # inside a run of ties only the last position has counted the whole run
    last = np.empty(n + m, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    return merged, n_ref / n - n_cur / m, last


def _ks_w(ref: FloatArray, cur: FloatArray) -> tuple[float, float]:
    merged, diff, last = _merged_cdf_difference(ref, cur)
    absdiff = np.abs(diff)
    ks = float(np.max(absdiff, where=last, initial=0.0))
    # between consecutive merged values both CDFs are flat (zero-width steps inside ties)
    w = float(np.sum(absdiff[:-1] * np.diff(merged)))
    return ks, w


def ks_and_wasserstein(reference_sorted: Reference, current_sorted: npt.ArrayLike) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance from one merge of two sorted arrays.

    >>> ks, w = ks_and_wasserstein([0.0, 1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    >>> round(ks, 4), round(w, 4)
    (0.5, 1.0)
    """
    ref, _, _ = _reference(reference_sorted)
    return _ks_w(ref, _current(current_sorted, True))


def ks_statistic_from_sorted(reference_sorted: Reference, current_sorted: npt.ArrayLike) -> float:
    """Two-sided KS statistic ``sup_x |F_ref(x) - F_cur(x)|`` of two sorted samples.

    >>> round(ks_statistic_from_sorted([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 6)
    0.333333
    """
    return ks_and_wasserstein(reference_sorted, current_sorted)[0]


def ks_method(n_reference: int, n_current: int, *, exact_reference: bool = True, method: KSMethod = "auto") -> str:
    """The p-value mode :func:`ks_test` uses: ``"exact"`` or ``"asymp"``."""
    if method not in ("auto", "exact", "asymp"):
        raise InvalidInput(f"method must be 'auto', 'exact' or 'asymp', not {echo(method)}")
    if method == "asymp":
        return "asymp"
    if method == "exact":
        if not exact_reference:
            raise InvalidInput("an exact KS p-value needs the reference values, not a quantile summary")
        if n_reference * n_current > EXACT_MAX_PRODUCT:
            raise InvalidInput(f"exact KS p-values are limited to n_reference * n_current <= {EXACT_MAX_PRODUCT:g}")
        return "exact"
    return "exact" if exact_reference and max(n_reference, n_current) <= EXACT_MAX_N else "asymp"


def _smirnov_sf(n: float, x: float) -> float:
    """One-sided ``P(D_n^+ >= x)``, the exact Birnbaum-Tingey sum
    ``x sum_j C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1)`` in log space.

    scipy evaluates the same sum term by term in double-double arithmetic,
    0.2-3 s for n between 1e5 and 1e6; vectorised here it takes tens of
    milliseconds and agrees to ~1e-9 relative (all terms are positive).
    """
    j = np.arange(int(np.floor(n * (1.0 - x))) + 1, dtype=np.float64)
    log_binom = -np.log1p(n) - special.betaln(j + 1.0, n - j + 1.0)
    with np.errstate(divide="ignore"):  # the last term may be 0^(n-j)
        # round-off can push (n - j)/n - x a hair below zero when n*x is whole
        log_terms = log_binom + (n - j) * np.log(np.maximum((n - j) / n - x, 0.0)) + (j - 1.0) * np.log(x + j / n)
    top = float(log_terms.max())
    return float(x * np.exp(top) * np.exp(log_terms - top).sum())


def _kstwo_sf(x: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(x, n)``: the same branches, with the slow one vectorised."""
    if SMIRNOV_FAST_MIN_N < n <= SMIRNOV_MAX_N and 0.0 < x < 1.0 and 1.0 < n * x < n - 1.0:
        nx2 = n * x * x
        if nx2 >= 370.0:  # scipy: 0, or 2 * smirnov(n, x >= 0.5), which underflows to 0 at this n
            return 0.0
        if nx2 >= 2.2:  # where scipy's kolmogn returns 2 * smirnov(n, x)
            return min(max(2.0 * _smirnov_sf(n, x), 0.0), 1.0)
    return float(sps.kstwo.sf(x, n))


def ks_pvalue_asymp(statistic: float, n_reference: int, n_current: int) -> float:
    """scipy's asymptotic two-sided p-value, ``kstwo.sf(D, round(nm/(n+m)))``."""
    m, n = sorted([float(n_reference), float(n_current)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(_kstwo_sf(float(statistic), float(np.round(en))), 0.0, 1.0))


def ks_test(
    reference_sorted: Reference,
    current: npt.ArrayLike,
    *,
    current_sorted: bool = False,
    method: KSMethod = "auto",
) -> TestResult:
    """Two-sided two-sample Kolmogorov-Smirnov test; p-value rule in the module docstring.

    >>> r = ks_test(np.arange(100.0), np.arange(100.0) + 50.0)
    >>> round(r.statistic, 3), r.p_value < 1e-6
    (0.5, True)
    """
    ref, n_ref, exact_ref = _reference(reference_sorted)
    cur = _current(current, current_sorted)
    d, _ = _ks_w(ref, cur)
    return TestResult(d, _ks_p(d, ref, n_ref, exact_ref, cur, method))


def ks_pvalue(statistic: float, reference_sorted: Reference, current_sorted: npt.ArrayLike, *,
              method: KSMethod = "auto") -> float:
    """The p-value of a KS statistic already computed by :func:`ks_and_wasserstein`.

    The arrays are only read for an exact p-value; otherwise only their sizes.

    >>> ref, cur = np.arange(100.0), np.arange(100.0) + 50.0
    >>> d, w = ks_and_wasserstein(ref, cur)
    >>> ks_pvalue(d, ref, cur) == ks_test(ref, cur).p_value
    True
    """
    ref, n_ref, exact_ref = _reference(reference_sorted)
    cur = _current(current_sorted, True)
    if not 0.0 <= statistic <= 1.0:
        raise InvalidInput("a KS statistic lies in [0, 1]")
    return _ks_p(float(statistic), ref, n_ref, exact_ref, cur, method)


def _ks_p(d: float, ref: FloatArray, n_ref: int, exact_ref: bool, cur: FloatArray, method: KSMethod) -> float:
    mode = ks_method(n_ref, cur.size, exact_reference=exact_ref, method=method)
    if mode == "asymp":
        return ks_pvalue_asymp(d, n_ref, cur.size)
    with warnings.catch_warnings():
        # scipy warns when its exact computation falls back to asymptotic; the fallback is the rule
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.ks_2samp(ref, cur, method="exact").pvalue)


def wasserstein(reference_sorted: Reference, current: npt.ArrayLike, *, current_sorted: bool = False) -> float:
    """Wasserstein-1 (earth mover's) distance ``integral |F_ref - F_cur| dx``.

    >>> wasserstein([0.0, 1.0, 2.0], [5.0, 6.0, 7.0])
    5.0
    """
    ref, _, _ = _reference(reference_sorted)
    return _ks_w(ref, _current(current, current_sorted))[1]


def reference_scale(reference_sorted: Reference) -> float:
    """The reference's unit: std (population), else iqr/1.349, else 1.0."""
    if isinstance(reference_sorted, NumericSummary):
        return reference_sorted.scale
    ref = sorted_finite_array(reference_sorted, name="reference_sorted")
    if ref[0] == ref[-1]:
        return 1.0
    q1, q3 = np.quantile(ref, [0.25, 0.75])
    return scale_of(float(ref.std()), float(q3 - q1))


def wasserstein_normed(
    reference_sorted: Reference,
    current: npt.ArrayLike,
    *,
    scale: float | None = None,
    current_sorted: bool = False,
) -> float:
    """Wasserstein-1 divided by the reference's scale: a mean shift of d sd gives d.

    ``scale`` defaults to :func:`reference_scale` (a summary's ``scale``).

    >>> round(wasserstein_normed([-1.0, 1.0], [-0.5, 1.5]), 6)
    0.5
    """
    if scale is None:
        scale = reference_scale(reference_sorted)
    elif not (np.isfinite(scale) and scale > 0):
        raise InvalidInput("scale must be a positive finite number")
    return wasserstein(reference_sorted, current, current_sorted=current_sorted) / float(scale)


def chi2_test(reference_counts: Mapping[str, float], current_counts: Mapping[str, float]) -> TestResult:
    """Chi-square test of homogeneity on the 2 x k table over the union of categories.

    Categories unseen in the reference are their own column; columns with a
    zero total are dropped. Equal to ``scipy.stats.chi2_contingency(table,
    correction=False)``; with fewer than two columns left there is nothing to
    compare and the result is statistic 0, p-value 1.

    >>> r = chi2_test({"a": 50, "b": 50}, {"a": 30, "b": 70})
    >>> round(r.statistic, 3), round(r.p_value, 4)
    (8.333, 0.0039)
    """
    _, ref, cur = align_categories(reference_counts, current_counts)
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise InvalidInput("both count tables need a positive total")
    keep = (ref + cur) > 0
    table = np.vstack((ref[keep], cur[keep]))
    if table.shape[1] < 2:
        return TestResult(0.0, 1.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return TestResult(statistic, float(sps.chi2.sf(statistic, table.shape[1] - 1)))

