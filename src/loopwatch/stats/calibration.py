"""Bootstrap thresholds for distances: calibrated on the reference, not guessed.

A distance such as PSI has no universal "drift" threshold: its value under
*no* drift depends on the sample sizes, the number of bins and the shape of
the data. :func:`bootstrap_null` measures that null distribution on the
reference itself:

1. Draw, with replacement from the reference values, a reference-sized sample
   *and* a current-sized sample (the two-sample null: both windows carry
   sampling noise), each capped at ``max_size`` rows, and compute every
   distance between them exactly as in production (binned distances re-derive
   their quantile edges from the resampled reference). Repeat ``n_boot`` times.
2. Fit a gamma distribution by moments (mean and variance of the bootstrap
   values) and take its ``1 - alpha`` quantile as the threshold: distances are
   non-negative and right-skewed, and a moment fit is stable with ~100
   replicates where an empirical 95th percentile is not.
3. Rescale from the capped sizes to the real ones. With
   ``n_eff = n_r n_c / (n_r + n_c)``, a distance whose null scales like
   ``n_eff ** -e`` is multiplied by ``(n_eff' / n_eff) ** e``, where ``n_eff'``
   uses the capped sizes. The exponents (:data:`SCALING_EXPONENT`): ``e = 1``
   for PSI and KL, which are chi-square-like (``sum (q-p)^2 / p`` up to a
   factor); ``e = 1/2`` for the square-root and first-order distances --
   Jensen-Shannon distance and Hellinger (square roots of chi-square-like
   divergences), Wasserstein (``integral |B(F(x))| dx / sqrt(n_eff)`` for a
   Brownian bridge ``B``) and the KS statistic.

The gamma is fitted to ``d ** (1/e)``, the chi-square-like power of each
distance (``d`` itself for PSI and KL, ``d**2`` for the others), whose null
scales like ``1/n_eff`` for all of them; the threshold is
``(gamma_quantile * n_eff'/n_eff) ** e``, i.e. exactly the rescaling above.
Why: a scaled chi-square is what a gamma fits well (Satterthwaite), whereas a
gamma fitted to Wasserstein or KS directly has too light a tail -- with the
moments of 20,000 null replicates it is exceeded 5.3-5.9% of the time at
alpha = 0.05, against 4.7-5.3% for the fit on the square. ``moments`` keeps
the mean and variance of the distance itself; ``fit_moments`` those of its
power.

``n_boot`` defaults to 200. A threshold read off estimated moments is exceeded
more often than its level (the tail is convex, so threshold noise does not
average out); with 100 replicates that lifts the false-alarm rate of a 5%
threshold to about 5.5-6.5% for Wasserstein, against 4.9-5.6% with 200
(measured over 2,000 seeded no-drift repetitions; the tests check 200).

Everything is vectorised over the replicates; the resampling happens in
index space of the sorted reference, so a sorted draw costs no sort
(exponential spacings give sorted uniforms directly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from loopwatch.errors import InvalidInput, echo
from loopwatch.stats.binned import ROW_DISTANCES, Counts, count_mapping, bin_counts, quantile_edges
from loopwatch.stats.sketch import FloatArray, IntArray, NumericSummary, sorted_finite_array
from loopwatch.stats.univariate import ks_statistic_from_sorted, wasserstein, wasserstein_normed

StatisticFn = Callable[[FloatArray, FloatArray], float]

SCALING_EXPONENT: dict[str, float] = {
    "psi": 1.0,
    "kl_divergence": 1.0,
    "js_distance": 0.5,
    "hellinger": 0.5,
    "wasserstein": 0.5,
    "wasserstein_normed": 0.5,
    "ks_statistic": 0.5,
}
NUMERIC_STATISTICS: tuple[str, ...] = (
    "ks_statistic", "wasserstein", "wasserstein_normed", "psi", "kl_divergence", "js_distance", "hellinger",
)
CATEGORICAL_STATISTICS: tuple[str, ...] = ("psi", "kl_divergence", "js_distance", "hellinger")


def gamma_quantile(mean: float, var: float, level: float) -> float:
    """The ``level`` quantile of the gamma distribution with this mean and variance.

    >>> round(gamma_quantile(2.0, 4.0, 0.95), 4)  # shape 1: an exponential, -2 ln 0.05
    5.9915
    """
    if not 0 < level < 1:
        raise InvalidInput("level must lie strictly between 0 and 1")
    if mean <= 0 or var <= 0:
        # a distance that never varied under the null: any value above it is unusual
        return max(float(mean), 0.0)
    shape, scale = mean * mean / var, var / mean
    return float(special.gammaincinv(shape, level) * scale)


def _effective_size(n_reference: int, n_current: int) -> float:
    return n_reference * n_current / (n_reference + n_current)


@dataclass(frozen=True)
class NullCalibration:
    """Bootstrap moments of each distance under no drift, and thresholds from them."""

    moments: dict[str, tuple[float, float]]
    fit_moments: dict[str, tuple[float, float]]
    n_reference: int
    n_current: int
    sample_reference: int
    sample_current: int
    n_boot: int
    exponents: dict[str, float] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        """``n_eff' / n_eff``: capped bootstrap effective size over the real one (<= 1)."""
        return _effective_size(self.sample_reference, self.sample_current) / _effective_size(
            self.n_reference, self.n_current)

    def scale_factor(self, name: str) -> float:
        """``(n_eff' / n_eff) ** e``: from the capped bootstrap sizes to the real ones."""
        return float(self.size_ratio ** self.exponents[name])

    def threshold(self, name: str, alpha: float = 0.05) -> float:
        """Value the distance exceeds with probability ``alpha`` when nothing drifted.

        >>> cal = bootstrap_null(np.linspace(0, 1, 500), 500, ["psi"], rng=np.random.default_rng(0))
        >>> 0.005 < cal.threshold("psi", 0.05) < 0.1
        True
        """
        if name not in self.moments:
            raise InvalidInput(f"no calibration for {echo(name)}; have {sorted(self.moments)}")
        if not 0 < alpha < 1:
            raise InvalidInput("alpha must lie strictly between 0 and 1")
        mean, var = self.fit_moments[name]
        e = self.exponents[name]
        return float((gamma_quantile(mean, var, 1.0 - alpha) * self.size_ratio) ** e)

    def thresholds(self, alpha: float = 0.05) -> dict[str, float]:
        return {name: self.threshold(name, alpha) for name in self.moments}

    def to_dict(self) -> dict[str, Any]:
        return {
            "moments": {k: [m, v] for k, (m, v) in self.moments.items()},
            "fit_moments": {k: [m, v] for k, (m, v) in self.fit_moments.items()},
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "sample_reference": self.sample_reference,
            "sample_current": self.sample_current,
            "n_boot": self.n_boot,
            "exponents": dict(self.exponents),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NullCalibration:
        try:
            moments = {str(k): (float(v[0]), float(v[1])) for k, v in data["moments"].items()}
            fit = {str(k): (float(v[0]), float(v[1])) for k, v in data["fit_moments"].items()}
            return cls(moments, fit, int(data["n_reference"]), int(data["n_current"]), int(data["sample_reference"]),
                       int(data["sample_current"]), int(data["n_boot"]),
                       {str(k): float(v) for k, v in data["exponents"].items()})
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidInput(f"not a null calibration: {exc}") from exc


def sorted_uniform_indices(rng: np.random.Generator, n_rows: int, size: int, n_values: int) -> IntArray:
    """``n_rows`` sorted samples of ``size`` indices drawn uniformly from ``range(n_values)``.

    Normalised cumulative sums of exponentials are sorted uniforms, so this is
    a sorted draw with replacement in ``O(size)`` per row, without sorting.
    """
    spacings = np.cumsum(rng.standard_exponential((n_rows, size + 1)), axis=1)
    scaled = spacings[:, :-1]
    scaled *= n_values / spacings[:, -1:]
    idx = scaled.astype(np.int64)
    np.minimum(idx, n_values - 1, out=idx)
    return idx


def numeric_statistic_functions(*, n_bins: int = 10, smoothing: float = 0.5) -> dict[str, StatisticFn]:
    """The built-in numeric distances as ``f(ref_sorted, cur_sorted) -> float``.

    These are the production definitions; the vectorised bootstrap computes
    the same values (tested), and any other mapping of callables can be passed
    to :func:`bootstrap_null` instead.
    """
    def binned(name: str) -> StatisticFn:
        def fn(ref: FloatArray, cur: FloatArray) -> float:
            edges = quantile_edges(ref, n_bins=n_bins)
            return float(ROW_DISTANCES[name](bin_counts(ref, edges).astype(np.float64),
                                             bin_counts(cur, edges).astype(np.float64), smoothing))
        return fn

    return {
        "ks_statistic": ks_statistic_from_sorted,
        "wasserstein": lambda r, c: wasserstein(r, c, current_sorted=True),
        "wasserstein_normed": lambda r, c: wasserstein_normed(r, c, current_sorted=True),
        **{name: binned(name) for name in ROW_DISTANCES},
    }


def _row_counts(keys: IntArray, edge_keys: IntArray, n_values: int) -> FloatArray:
    """Per row, counts of sorted ``keys`` (< ``n_values``) in ``[edge_j, edge_j+1)``."""
    n_rows, size = keys.shape
    # offsetting each row by row * n_values makes the flattened keys globally sorted
    offset = (np.arange(n_rows, dtype=np.int64) * n_values)[:, None]
    below = np.searchsorted((keys + offset).ravel(), (edge_keys + offset).ravel(), side="left")
    below = below.reshape(edge_keys.shape) - np.arange(n_rows)[:, None] * size
    full = np.concatenate((np.zeros((n_rows, 1), np.int64), below, np.full((n_rows, 1), size)), axis=1)
    return np.diff(full, axis=1).astype(np.float64)


def _row_ks(rk: IntArray, ck: IntArray, n_values: int) -> FloatArray:
    n_rows, nr = rk.shape
    nc = ck.shape[1]
    rows = np.arange(n_rows, dtype=np.int64)[:, None]
    flat_r, flat_c = (rk + rows * n_values).ravel(), (ck + rows * n_values).ravel()
    best = np.zeros(n_rows)
    for points in (flat_r, flat_c):
        # both right-continuous ECDFs at every sample point, ties counted in full
        f_r = (np.searchsorted(flat_r, points, side="right").reshape(n_rows, -1) - rows * nr) / nr
        f_c = (np.searchsorted(flat_c, points, side="right").reshape(n_rows, -1) - rows * nc) / nc
        best = np.maximum(best, np.abs(f_r - f_c).max(axis=1))
    return best


def _row_wasserstein(rv: FloatArray, cv: FloatArray) -> FloatArray:
    """``integral_0^1 |Q_r(t) - Q_c(t)| dt`` per row: the quantile form of W1.

    Both quantile functions are steps at ``i / n_r`` and ``j / n_c``; on each
    piece of the merged grid the integrand is constant, and the grid depends on
    the sizes only, so one grid serves every replicate.
    """
    nr, nc = rv.shape[1], cv.shape[1]
    if nr == nc:
        return np.asarray(np.abs(rv - cv).mean(axis=1))
    grid = np.union1d(np.arange(1, nr + 1, dtype=np.int64) * nc, np.arange(1, nc + 1, dtype=np.int64) * nr)
    widths = np.diff(np.concatenate(([0], grid))) / (nr * nc)
    a, b = -(-grid // nc) - 1, -(-grid // nr) - 1
    return np.asarray((np.abs(rv[:, a] - cv[:, b]) * widths).sum(axis=1))


def _row_scale(rv: FloatArray) -> FloatArray:
    # as reference_scale: std, or 1.0 for a constant sample (whose iqr is 0 too)
    constant = rv[:, 0] == rv[:, -1]
    return np.where(constant, 1.0, rv.std(axis=1))


def _numeric_rows(values: FloatArray, r_idx: IntArray, c_idx: IntArray, names: Sequence[str], n_bins: int,
                  smoothing: float) -> dict[str, FloatArray]:
    """Every requested distance for every replicate, from sorted index samples."""
    n_values = values.size
    out: dict[str, FloatArray] = {}
    if any(n in ROW_DISTANCES for n in names):
        edge_idx = r_idx[:, (np.arange(1, n_bins, dtype=np.int64) * r_idx.shape[1]) // n_bins]
        # an index lies below the edge's first tied index exactly when its value lies below the edge
        edge_first = np.searchsorted(values, values[edge_idx], side="left")
        ref_counts = _row_counts(r_idx, edge_first, n_values)
        cur_counts = _row_counts(c_idx, edge_first, n_values)
        # duplicate edges give bins empty on both sides, which every distance drops
        for name in names:
            if name in ROW_DISTANCES:
                out[name] = ROW_DISTANCES[name](ref_counts, cur_counts, smoothing)
    if "wasserstein" in names or "wasserstein_normed" in names:
        rv = values[r_idx]
        w = _row_wasserstein(rv, values[c_idx])
        out["wasserstein"] = w
        out["wasserstein_normed"] = w / _row_scale(rv)
    if "ks_statistic" in names:
        keys = np.searchsorted(values, values, side="left")  # equal values share a key
        out["ks_statistic"] = _row_ks(keys[r_idx], keys[c_idx], n_values)
    return {name: out[name] for name in names}


def _check_sizes(n_reference: int, n_current: int, n_boot: int, max_size: int) -> None:
    for label, value, low in (("n_reference", n_reference, 1), ("n_current", n_current, 1),
                              ("n_boot", n_boot, 2), ("max_size", max_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidInput(f"{label} must be an integer >= {low}")


def _exponents(names: Sequence[str], scaling: Mapping[str, float] | None) -> dict[str, float]:
    table = {**SCALING_EXPONENT, **(scaling or {})}
    missing = [n for n in names if n not in table]
    if missing:
        raise InvalidInput(f"no scaling exponent for {missing}; pass scaling={{name: exponent}}")
    return {n: float(table[n]) for n in names}


def _calibration(samples: Mapping[str, FloatArray], exponents: Mapping[str, float], n_ref: int, n_cur: int,
                 nr: int, nc: int, n_boot: int) -> NullCalibration:
    def moments(x: FloatArray) -> tuple[float, float]:
        return float(np.mean(x)), float(np.var(x, ddof=1))

    raw = {name: moments(x) for name, x in samples.items()}
    fit = {name: moments(x ** (1.0 / exponents[name])) for name, x in samples.items()}
    return NullCalibration(raw, fit, n_ref, n_cur, nr, nc, n_boot, dict(exponents))


def bootstrap_null(
    reference: NumericSummary | npt.ArrayLike,
    n_current: int,
    statistics: Sequence[str] | Mapping[str, StatisticFn] = NUMERIC_STATISTICS,
    *,
    rng: np.random.Generator,
    n_reference: int | None = None,
    n_boot: int = 200,
    max_size: int = 5000,
    n_bins: int = 10,
    smoothing: float = 0.5,
    scaling: Mapping[str, float] | None = None,
) -> NullCalibration:
    """Null moments of numeric distances, resampled from the (sorted) reference.

    ``statistics`` names built-in distances (:data:`NUMERIC_STATISTICS`,
    computed vectorised) or maps names to ``f(ref_sorted, cur_sorted)``
    callables, whose scaling exponents come from :data:`SCALING_EXPONENT` or
    ``scaling``. ``n_reference`` defaults to the summary's row count (or the
    array's length): a summary's points each stand for ``n / len`` rows.

    >>> ref = np.sort(np.random.default_rng(1).normal(size=2000))
    >>> cal = bootstrap_null(ref, 2000, ["wasserstein_normed", "psi"], rng=np.random.default_rng(2))
    >>> sorted(cal.moments), cal.sample_reference, cal.sample_current
    (['psi', 'wasserstein_normed'], 2000, 2000)
    >>> 0.02 < cal.threshold("wasserstein_normed") < 0.1
    True
    """
    if isinstance(reference, NumericSummary):
        values, rows = reference.sorted_values, reference.n
    else:
        values = sorted_finite_array(reference, name="reference")
        rows = int(values.size)
    n_ref = rows if n_reference is None else n_reference
    _check_sizes(n_ref, n_current, n_boot, max_size)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput("rng must be a numpy.random.Generator")
    names = list(statistics)
    if isinstance(statistics, Mapping):
        exponents = _exponents(names, scaling)
    else:
        unknown = [n for n in names if n not in NUMERIC_STATISTICS]
        if unknown:
            raise InvalidInput(f"unknown statistics {unknown}; built-in: {list(NUMERIC_STATISTICS)}")
        exponents = _exponents(names, scaling)
        if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 2) or not smoothing >= 0:
            raise InvalidInput("n_bins must be an integer >= 2 and smoothing >= 0")
    nr, nc = min(n_ref, max_size), min(n_current, max_size)
    r_idx = sorted_uniform_indices(rng, n_boot, nr, values.size)
    c_idx = sorted_uniform_indices(rng, n_boot, nc, values.size)
    if isinstance(statistics, Mapping):
        samples = {name: np.array([float(fn(values[r], values[c])) for r, c in zip(r_idx, c_idx)])
                   for name, fn in statistics.items()}
    else:
        samples = _numeric_rows(values, r_idx, c_idx, names, n_bins, float(smoothing))
    return _calibration(samples, exponents, n_ref, n_current, nr, nc, n_boot)


def bootstrap_null_categorical(
    reference_counts: Counts,
    n_current: int,
    statistics: Sequence[str] = CATEGORICAL_STATISTICS,
    *,
    rng: np.random.Generator,
    n_boot: int = 200,
    max_size: int = 5000,
    smoothing: float = 0.5,
) -> NullCalibration:
    """Null moments of categorical distances: multinomial draws at the reference frequencies.

    Valid when every category expects a handful of rows (>= 5, the classical
    chi-square rule) in both windows. A category the reference never saw
    cannot be resampled, so with rare categories the threshold is exceeded
    more often than ``alpha`` (measured: 6-7% at alpha = 0.05 with a
    category expecting 2 rows, mostly from references that missed it).

    >>> cal = bootstrap_null_categorical({"a": 600, "b": 300, "c": 100}, 1000, rng=np.random.default_rng(0))
    >>> 0.001 < cal.threshold("psi") < 0.05
    True
    """
    counts = count_mapping(reference_counts, "reference_counts")
    freq = np.array([float(v) for v in counts.values() if v > 0], dtype=np.float64)
    if freq.size == 0:
        raise InvalidInput("reference_counts has no positive count")
    n_ref = max(int(round(freq.sum())), 1)
    _check_sizes(n_ref, n_current, n_boot, max_size)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput("rng must be a numpy.random.Generator")
    names = list(statistics)
    unknown = [n for n in names if n not in ROW_DISTANCES]
    if unknown:
        raise InvalidInput(f"unknown statistics {unknown}; built-in: {list(ROW_DISTANCES)}")
    nr, nc = min(n_ref, max_size), min(n_current, max_size)
    p = freq / freq.sum()
    ref = rng.multinomial(nr, p, size=n_boot).astype(np.float64)
    cur = rng.multinomial(nc, p, size=n_boot).astype(np.float64)
    samples = {name: ROW_DISTANCES[name](ref, cur, float(smoothing)) for name in names}
    return _calibration(samples, _exponents(names, None), n_ref, n_current, nr, nc, n_boot)
