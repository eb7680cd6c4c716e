"""Drift statistics of one feature from window summaries, against its reference profile.

The reference keeps what :class:`loopwatch.drift.profile.UnivariateProfile` keeps today: for
a numeric feature a :class:`~loopwatch.stats.sketch.NumericSummary` (its sorted values, or
an even-rank summary with a stated ``rank_error``), quantile ``edges`` and row counts
``bins`` on them; for a categorical feature a
:class:`~loopwatch.stats.sketch.CategoricalSummary`.

* From the bins (:func:`binned_tests`): PSI, KL, Jensen-Shannon, Hellinger and the
  chi-square test of homogeneity. The window's bins are exact counts on the reference's own
  edges, so these equal :mod:`loopwatch.stats.binned` and
  :func:`loopwatch.stats.univariate.chi2_test` computed on the raw rows binned the same way.
* From the quantile sketch (:func:`ks_from_summaries`, :func:`wasserstein_from_summaries`):
  KS and Wasserstein, each with its error bound. The window's KLL sketch reports a CDF within
  ``eps_c`` of the exact one at every point (99% confidence), the reference summary within
  its ``rank_error`` ``eps_r``, so the KS statistic of the summaries is within ``eps = eps_c
  + eps_r`` of the exact one, and Wasserstein, an integral of the CDF difference over the
  values' range, within ``eps_c * (max - min)`` of the window plus ``eps_r * (max - min)``
  of the reference.

The KS decision takes the bound into account: it rejects only when the p-value at ``D -
eps``, the largest p-value the exact statistic could have, is below ``alpha``. Whenever the
bound holds the exact test would reject too, so the false-alarm rate is at most ``alpha``,
plus the (at most 1%) chance that the sketch is outside its bound *and* that error happens
to push a no-drift window over the line; measured on no-drift data it stays under
``alpha`` (docs/quality.md). The price is power on borderline windows: ``eps`` (0.0046 with
the default sketch) is added to the statistic the exact test needs.
While a window is small enough for its sketch to hold every value, ``eps`` is 0 and the
test is the exact one, with scipy's p-value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from loopwatch.errors import InvalidInput
from loopwatch.stats import binned
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary
from loopwatch.stats.univariate import chi2_test, ks_pvalue, ks_pvalue_asymp
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.numeric import NumericPart

FloatArray = npt.NDArray[np.float64]

#: Significance level of the KS decision when none is given.
DEFAULT_ALPHA = 0.05
#: Label of the categories a frequent-items sketch does not track, in the categorical tests.
OTHER = "\x00other"
#: A sketched window's chi-square keeps a category's own column when the reference expects
#: at least this many times the sketch's count error of it in the window.
SKETCH_MIN_EXPECTED = 10.0


@dataclass(frozen=True)
class BinnedTests:
    """Histogram distances and the chi-square test on the reference's bins (or categories)."""

    psi: float
    kl_divergence: float
    js_distance: float
    hellinger: float
    chi2_statistic: float
    chi2_p_value: float
    n_reference: int
    n_current: int
    #: True when the window's counts are exact (always, for numeric bins).
    exact: bool
    #: Most rows any current count can be off by (0 when exact).
    count_error: float
    #: The smallest chi-square statistic any counts within the bounds could give, and its
    #: p-value: the largest the exact test's could be. Equal to the estimates when exact.
    #: Decide drift with ``chi2_p_value_high < alpha``.
    chi2_statistic_low: float
    chi2_p_value_high: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SketchKSTest:
    """A two-sample KS test from summaries, with the statistic's error bound.

    ``statistic`` is the KS distance between the two summaries; the exact one lies in
    ``[statistic_low, statistic_high]`` (with 99% confidence when ``exact`` is false), and
    its p-value in ``[p_value_low, p_value_high]``. ``drifted`` is ``p_value_high < alpha``.
    """

    statistic: float
    error_bound: float
    statistic_low: float
    statistic_high: float
    p_value: float
    p_value_low: float
    p_value_high: float
    alpha: float
    drifted: bool
    n_reference: int
    n_current: int
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WassersteinEstimate:
    """Wasserstein-1 from summaries, raw and divided by the reference's scale, with bounds."""

    distance: float
    error_bound: float
    scale: float
    normed: float
    normed_error_bound: float
    exact: bool

    @property
    def low(self) -> float:
        return max(self.distance - self.error_bound, 0.0)

    @property
    def high(self) -> float:
        return self.distance + self.error_bound

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check_reference(reference: NumericSummary) -> NumericSummary:
    if not isinstance(reference, NumericSummary):
        raise InvalidInput("the reference must be a NumericSummary (the profile's summary of the feature)")
    return reference


def _check_current(current: NumericPart) -> NumericPart:
    if not isinstance(current, NumericPart):
        raise InvalidInput("the current window must be a NumericPart")
    if current.count == 0:
        raise InvalidInput("the current window has no values of this feature")
    return current


def _cdf_difference(reference: NumericSummary, current: NumericPart) -> tuple[FloatArray, FloatArray]:
    """The union of both step functions' points and ``F_ref - F_cur`` at each (right-continuous)."""
    ref = reference.sorted_values
    xs, fs = current.cdf_steps()
    points = np.union1d(ref, xs)
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    at = np.searchsorted(xs, points, side="right")
    f_cur = np.where(at > 0, fs[np.maximum(at - 1, 0)], 0.0)
    return points, f_ref - f_cur


def _ks_p(d: float, reference: NumericSummary, current: NumericPart, exact_values: FloatArray | None) -> float:
    d = min(max(d, 0.0), 1.0)
    if exact_values is not None:
        # every value is there: the p-value rule of stats/univariate.py (scipy's ks_2samp)
        return ks_pvalue(d, reference, exact_values)
    return ks_pvalue_asymp(d, reference.n, current.count)


def ks_from_summaries(reference: NumericSummary, current: NumericPart, *,
                      alpha: float = DEFAULT_ALPHA) -> SketchKSTest:
    """The KS test of a window's numeric part against the reference summary, with its bound.

    >>> ref = NumericSummary.from_values(np.arange(100.0))
    >>> r = ks_from_summaries(ref, NumericPart.from_values(np.arange(100.0) + 50.0, edges=[]))
    >>> round(r.statistic, 3), r.error_bound, r.drifted, r.exact
    (0.5, 0.0, True, True)
    """
    reference, current = _check_reference(reference), _check_current(current)
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise InvalidInput("alpha must lie in (0, 1)")
    _, diff = _cdf_difference(reference, current)
    d = float(np.max(np.abs(diff)))
    eps = current.rank_error + reference.rank_error
    low, high = max(d - eps, 0.0), min(d + eps, 1.0)
    exact_values = current.values_if_exact() if reference.exact else None
    p = _ks_p(d, reference, current, exact_values)
    p_high = p if eps == 0 else _ks_p(low, reference, current, exact_values)
    p_low = p if eps == 0 else _ks_p(high, reference, current, exact_values)
    return SketchKSTest(d, eps, low, high, p, p_low, p_high, float(alpha), bool(p_high < alpha),
                        reference.n, current.count, eps == 0)


def wasserstein_from_summaries(reference: NumericSummary, current: NumericPart) -> WassersteinEstimate:
    """Wasserstein-1 between the reference summary and a window's sketch, with its bound.

    >>> ref = NumericSummary.from_values([0.0, 1.0, 2.0])
    >>> w = wasserstein_from_summaries(ref, NumericPart.from_values([5.0, 6.0, 7.0], edges=[]))
    >>> w.distance, w.error_bound, w.normed == 5.0 / ref.scale
    (5.0, 0.0, True)
    """
    reference, current = _check_reference(reference), _check_current(current)
    points, diff = _cdf_difference(reference, current)
    w = float(np.sum(np.abs(diff[:-1]) * np.diff(points)))
    span = (current.maximum or 0.0) - (current.minimum or 0.0)  # both set: the window has values
    bound = current.rank_error * span + reference.rank_error * (reference.maximum - reference.minimum)
    scale = reference.scale
    return WassersteinEstimate(w, bound, scale, w / scale, bound / scale, bound == 0)


def _labelled(counts: Sequence[float]) -> dict[str, float]:
    return {f"{i:06d}": float(c) for i, c in enumerate(counts)}


def _chi2_lower(ref: dict[str, float], bounds: dict[str, tuple[float, float]], n_current: float) -> tuple[float, int]:
    """A lower bound on the chi-square statistic over every current table within ``bounds``.

    For a 2 x k table with row totals R (reference) and C (current, known exactly) the
    statistic is ``sum_j (r_j C - c_j R)^2 / (R C (r_j + c_j))``, each term convex in
    ``c_j``. Minimising each term alone over its interval (at ``c_j = r_j C / R``, clipped)
    drops only the constraint that the counts add up to C, so the sum of those minima is at
    most the smallest statistic a consistent table can give. Also returns the most degrees of
    freedom any such table can have (more degrees of freedom only raise the p-value)."""
    big_r = sum(ref.values())
    total = 0.0
    columns = 0
    for label in set(ref) | set(bounds):
        r = ref.get(label, 0.0)
        low, high = bounds.get(label, (0.0, 0.0))
        if r > 0 or high > 0:
            columns += 1
        c = min(max(r * n_current / big_r, low), high)
        if r + c > 0:
            total += (r * n_current - c * big_r) ** 2 / (big_r * n_current * (r + c))
    return total, columns - 1


def _tests(ref: dict[str, float], cur: dict[str, float], *, smoothing: float, exact: bool,
           count_error: float, chi2_tables: tuple[dict[str, float], dict[str, float],
                                                 dict[str, tuple[float, float]]] | None = None) -> BinnedTests:
    distances = binned.categorical_distances(ref, cur, smoothing=smoothing)
    if chi2_tables is None:
        chi2 = chi2_test(ref, cur)
        low, p_high = chi2.statistic, chi2.p_value
    else:
        chi_ref, chi_cur, bounds = chi2_tables
        chi2 = chi2_test(chi_ref, chi_cur)
        low, dof = _chi2_lower(chi_ref, bounds, sum(chi_cur.values()))
        low = min(low, chi2.statistic)
        p_high = max(float(sps.chi2.sf(low, dof)) if dof >= 1 else 1.0, chi2.p_value)
    return BinnedTests(distances["psi"], distances["kl_divergence"], distances["js_distance"],
                       distances["hellinger"], chi2.statistic, chi2.p_value, int(round(sum(ref.values()))),
                       int(round(sum(cur.values()))), exact, count_error, low, p_high)


def binned_tests(*, reference_edges: npt.ArrayLike, reference_bins: npt.ArrayLike, current: NumericPart,
                 smoothing: float = 0.5) -> BinnedTests:
    """PSI, KL, JS, Hellinger and chi-square of a window's bins against the reference's.

    ``reference_edges`` and ``reference_bins`` are the profile's ``edges[name]`` and
    ``bins[name]``; the window's part must have been built on the same edges.

    >>> part = NumericPart.from_values([0.5, 1.5, 1.6, 2.5], edges=[1.0, 2.0])
    >>> t = binned_tests(reference_edges=[1.0, 2.0], reference_bins=[10, 10, 10], current=part)
    >>> round(t.psi, 4), round(t.chi2_statistic, 4), t.exact
    (0.0619, 0.4293, True)
    """
    current = _check_current(current)
    edges = tuple(float(e) for e in np.asarray(reference_edges, dtype=np.float64).tolist())
    if edges != current.edges:
        raise InvalidInput("the window's bins were built on other edges than the reference's: rebuild them")
    ref = np.asarray(reference_bins, dtype=np.float64)
    if ref.shape != (len(edges) + 1,):
        raise InvalidInput("the reference needs one count per bin: one more than its edges")
    return _tests(_labelled(ref.tolist()), _labelled(current.bins), smoothing=smoothing, exact=True,
                  count_error=0.0)


def categorical_tests(reference: CategoricalSummary, current: CategoricalPart, *,
                      smoothing: float = 0.5) -> BinnedTests:
    """PSI, KL, JS, Hellinger and chi-square of a window's categories against the reference's.

    Exact while the window's part keeps exact counts. Past its cap the part's frequent-items
    estimates are used, each at most ``count_error`` rows too high, with the rows they leave
    unexplained in one extra category, and the result says ``exact=False``. The chi-square
    test then runs on a coarser table (the categories the reference expects often enough to
    be counted well, and one column for the rest: :func:`_coarse_chi2_tables`) and also
    reports the smallest statistic (and so the largest p-value) that counts within the
    sketch's bounds could give (``chi2_statistic_low``, ``chi2_p_value_high``): deciding on
    those keeps the false-alarm rate at or under alpha.

    >>> ref = CategoricalSummary({"a": 50, "b": 50})
    >>> t = categorical_tests(ref, CategoricalPart.from_values(["a"] * 30 + ["b"] * 70))
    >>> round(t.psi, 4), round(t.chi2_statistic, 3), t.exact
    (0.1659, 8.333, True)
    """
    if not isinstance(reference, CategoricalSummary) or not isinstance(current, CategoricalPart):
        raise InvalidInput("need the reference's CategoricalSummary and the window's CategoricalPart")
    if current.count == 0:
        raise InvalidInput("the current window has no values of this feature")
    ref = {k: float(v) for k, v in reference.counts.items()}
    if current.counts is not None:
        return _tests(ref, {k: float(v) for k, v in current.counts.items()}, smoothing=smoothing, exact=True,
                      count_error=0.0)
    estimates = current.estimated_counts()
    cur = {k: float(v) for k, v in estimates.items()}
    other_ref = sum(v for k, v in ref.items() if k not in cur)
    ref = {k: v for k, v in ref.items() if k in cur}
    ref[OTHER] = other_ref
    n = float(current.count)
    cur[OTHER] = float(max(n - sum(estimates.values()), 0))
    result = _tests(ref, cur, smoothing=smoothing, exact=False, count_error=current.count_error,
                    chi2_tables=_coarse_chi2_tables(reference, current))
    # the estimates overcount: the window's own count is the exact one
    return dataclasses.replace(result, n_current=current.count)


def _coarse_chi2_tables(reference: CategoricalSummary, current: CategoricalPart) -> tuple[
        dict[str, float], dict[str, float], dict[str, tuple[float, float]]]:
    """The table the chi-square test of a sketched window runs on, and its count bounds.

    Categories the reference expects at least :data:`SKETCH_MIN_EXPECTED` times the sketch's
    error in the window keep their own column; all others share one. The choice reads only
    the reference and the window's row count, never the window's counts, so the coarser
    table is a valid test of the same hypothesis (a sketch's uncertain small counts would
    only blur it)."""
    n = float(current.count)
    error = current.count_error
    big_r = float(reference.n)
    kept = [k for k, v in reference.counts.items() if v / big_r * n >= SKETCH_MIN_EXPECTED * error]
    estimates = current.estimated_counts()
    known = current.count_bounds()
    ref = {k: float(reference.counts[k]) for k in kept}
    ref[OTHER] = big_r - sum(ref.values())
    cur = {k: float(estimates.get(k, 0)) for k in kept}
    cur[OTHER] = float(max(n - sum(cur.values()), 0.0))
    # a category the sketch does not list has at most `error` rows
    bounds = {k: tuple(float(b) for b in known.get(k, (0, int(error)))) for k in kept}
    low = sum(b[0] for b in bounds.values())
    high = sum(b[1] for b in bounds.values())
    bounds[OTHER] = (max(n - high, 0.0), min(max(n - low, 0.0), n))
    return ref, cur, {k: (b[0], b[1]) for k, b in bounds.items()}
