"""Multivariate drift tests: changes that no single column shows.

A change of *joint* distribution (a correlation that flips, a cluster that
moves between two features) can leave every marginal untouched, so the
univariate tests cannot see it. Four complementary tests look at all
features together; every one takes already-encoded float matrices (the caller
standardises numeric features and one-hot encodes categoricals) and returns a
:class:`MultivariateResult`:

* :func:`pca_reconstruction_test` -- NannyML's data reconstruction drift: a
  :class:`PcaBasis` fitted on reference rows reconstructs new rows worse when
  the correlation structure changes.
* :func:`pca_ks_test` -- per-component two-sample KS tests on the PCA
  projections, Bonferroni-adjusted.
* :func:`mmd_test` -- kernel two-sample test (maximum mean discrepancy) with a
  permutation null; consistent against *any* change of distribution.
* :func:`domain_classifier_test` -- a classifier learns to tell reference rows
  from current rows; its held-out AUC is a Mann-Whitney statistic.

Randomness comes only from the explicit ``rng`` argument (a
:class:`numpy.random.Generator` or an integer seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.spatial.distance import pdist, squareform
from scipy.stats.distributions import rv_frozen

from loopwatch.errors import InvalidInput

FloatArray = NDArray[np.float64]
#: Default share of variance the PCA basis keeps (NannyML's default).
DEFAULT_VARIANCE = 0.65
# Below this spread the reference errors are taken as constant (data lying
# exactly in the kept subspace): round-off must not read as drift. Inputs are
# standardised, so an absolute floor is meaningful.
_SPREAD_FLOOR = 1e-12


@dataclass(frozen=True)
class MultivariateResult:
    """The outcome of one multivariate drift test."""

    name: str
    statistic: float
    p_value: float
    #: The value of ``statistic`` above which drift is declared, when the test has one.
    threshold: float | None
    drift: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": float(self.statistic),
            "p_value": float(self.p_value),
            "threshold": None if self.threshold is None else float(self.threshold),
            "drift": bool(self.drift),
            "extra": dict(self.extra),
        }


# --------------------------------------------------------------------------- validation


def _array(x: ArrayLike, name: str, *, ndim: int = 2, min_rows: int = 1) -> FloatArray:
    """``x`` as a finite float vector (ndim 1) or matrix (ndim 2) of at least ``min_rows`` rows."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must hold floats: {exc}") from exc
    if arr.ndim != ndim or arr.shape[0] < min_rows or (ndim == 2 and arr.shape[1] < 1):
        raise InvalidInput(f"{name} must be {ndim}-D with at least {min_rows} rows (and a column), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} holds NaN or infinite values")
    return arr


def _same_columns(a: FloatArray, b: FloatArray) -> None:
    if a.shape[1] != b.shape[1]:
        raise InvalidInput(f"reference has {a.shape[1]} columns but current has {b.shape[1]}")


def _alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise InvalidInput(f"alpha must lie in (0, 1), got {alpha}")
    return float(alpha)


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InvalidInput("rng must be a numpy Generator or an integer seed")


def _subsample(x: FloatArray, max_samples: int, gen: np.random.Generator) -> FloatArray:
    if x.shape[0] <= max_samples:
        return x
    return x[np.sort(gen.choice(x.shape[0], size=max_samples, replace=False))]


# --------------------------------------------------------------------------- PCA basis


@dataclass(frozen=True, eq=False)
class PcaBasis:
    """The principal subspace of standardised reference rows.

    Keeps the fewest components explaining at least ``variance`` of the total
    variance (at least one). Fitted by an SVD of the centred rows; each
    component's sign is fixed so that its largest-magnitude loading is
    positive, so the same rows always give the same basis.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(500, 1))
    >>> x = np.hstack([z, z + 0.1 * rng.normal(size=(500, 1)), rng.normal(size=(500, 1))])
    >>> basis = PcaBasis.fit(x, variance=0.6)
    >>> basis.n_components
    1
    >>> PcaBasis.from_dict(basis.to_dict()).reconstruction_error(x[:2]).round(3).tolist() == \\
    ...     basis.reconstruction_error(x[:2]).round(3).tolist()
    True
    """

    #: Column means of the fitted rows, shape (n_features,).
    mean: FloatArray
    #: Orthonormal components as rows, shape (n_components, n_features).
    components: FloatArray
    #: Share of total variance explained by each kept component.
    explained_variance_ratio: FloatArray
    #: The share of variance asked for.
    variance: float = DEFAULT_VARIANCE

    @classmethod
    def fit(cls, x: ArrayLike, *, variance: float = DEFAULT_VARIANCE) -> PcaBasis:
        rows = _array(x, "x", min_rows=2)
        if not 0.0 < variance <= 1.0:
            raise InvalidInput(f"variance must lie in (0, 1], got {variance}")
        mean = rows.mean(axis=0)
        _, sing, vt = np.linalg.svd(rows - mean, full_matrices=False)
        power = sing**2
        if power.sum() <= 0.0:
            raise InvalidInput("reference rows have no variance: every row is the same")
        ratio = power / power.sum()
        # The tolerance keeps an exact 0.65 from needing one more component through round-off.
        k = int(np.searchsorted(np.cumsum(ratio), variance - 1e-12)) + 1
        k = min(max(k, 1), vt.shape[0])
        comps = vt[:k] * np.sign(vt[np.arange(k), np.argmax(np.abs(vt[:k]), axis=1)])[:, None]
        return cls(mean=mean, components=comps, explained_variance_ratio=ratio[:k], variance=float(variance))

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.components.shape[1])

    def _rows(self, x: ArrayLike) -> FloatArray:
        rows = _array(x, "x")
        if rows.shape[1] != self.n_features:
            raise InvalidInput(f"the basis was fitted on {self.n_features} columns, got {rows.shape[1]}")
        return rows

    def transform(self, x: ArrayLike) -> FloatArray:
        """Coordinates of rows in the principal subspace, shape (n, n_components)."""
        return (self._rows(x) - self.mean) @ self.components.T

    def reconstruct(self, x: ArrayLike) -> FloatArray:
        """Rows projected onto the subspace, back in the original coordinates."""
        return self.transform(x) @ self.components + self.mean

    def reconstruction_error(self, x: ArrayLike) -> FloatArray:
        """Per-row Euclidean distance between a row and its reconstruction."""
        centred = self._rows(x) - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        return np.asarray(np.linalg.norm(residual, axis=1), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(),
                "explained_variance_ratio": self.explained_variance_ratio.tolist(), "variance": self.variance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PcaBasis:
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            comps = np.asarray(data["components"], dtype=np.float64)
            ratio = np.asarray(data["explained_variance_ratio"], dtype=np.float64)
            variance = float(data.get("variance", DEFAULT_VARIANCE))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a stored PCA basis: {exc}") from exc
        if comps.ndim != 2 or mean.shape != (comps.shape[1],) or ratio.shape != (comps.shape[0],):
            raise InvalidInput("a stored PCA basis has inconsistent shapes")
        return cls(mean=mean, components=comps, explained_variance_ratio=ratio, variance=variance)


# --------------------------------------------------------------------------- PCA tests


#: Least current rows each test runs on (the monitor checks them before calling it): a mean
#: error and a projection exist for one row; the permutation test needs two to permute.
PCA_RECONSTRUCTION_MIN_ROWS = 1
PCA_KS_MIN_ROWS = 1
MMD_MIN_ROWS = 2


def pca_reconstruction_test(
    reference_errors: ArrayLike,
    current_errors: ArrayLike,
    *,
    alpha: float = 0.05,
    min_chunks: int = 10,
) -> MultivariateResult:
    """Is the current mean reconstruction error higher than the reference's?

    ``reference_errors`` must come from HELD-OUT reference rows: rows the basis
    was fitted on are reconstructed too well, which would make every later
    window look drifted. The test is one-sided (only an increase is drift) and
    accounts for the finite size of both samples:

    * ``reference_chunks`` (when the reference holds at least ``min_chunks``
      disjoint chunks of the current window's size): the reference errors, in
      the order given, are cut into contiguous chunks; the current mean is
      judged as one more chunk mean with a Student-t *prediction* interval,
      ``centre + t(m-1) * s_chunk * sqrt(1 + 1/m)``. The chunk-to-chunk spread
      is measured, not assumed, so autocorrelation or seasonality in a
      time-ordered reference widens the threshold (as NannyML's chunked
      thresholds do), and the ``1/m`` term is the uncertainty of the
      reference mean itself.
    * ``welch_clt`` (otherwise): a Welch-type z on the two means, with the
      variance of both (``s_r^2/n_r + s_c^2/n_c``).

    ``threshold`` is the mean current error above which drift is declared.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref, same, worse = rng.gamma(4, size=5000), rng.gamma(4, size=200), rng.gamma(4.5, size=200)
    >>> pca_reconstruction_test(ref, same).drift, pca_reconstruction_test(ref, worse).drift
    (False, True)
    """
    ref = _array(reference_errors, "reference_errors", ndim=1, min_rows=2)
    cur = _array(current_errors, "current_errors", ndim=1, min_rows=PCA_RECONSTRUCTION_MIN_ROWS)
    level = _alpha(alpha)
    if min_chunks < 2:
        raise InvalidInput("min_chunks must be at least 2")
    n_r, n_c = ref.size, cur.size
    statistic = float(cur.mean())
    n_chunks = n_r // n_c
    null: rv_frozen[Any, Any]  # Student's t over the chunks, else the normal of the CLT
    if n_chunks >= min_chunks:
        means = ref[: n_chunks * n_c].reshape(n_chunks, n_c).mean(axis=1)
        centre = float(means.mean())
        spread = max(float(means.std(ddof=1)) * math.sqrt(1.0 + 1.0 / n_chunks), _SPREAD_FLOOR)
        null = stats.t(df=n_chunks - 1)
        method = "reference_chunks"
    else:
        centre = float(ref.mean())
        var_c = float(cur.var(ddof=1)) if n_c > 1 else float(ref.var(ddof=1))
        spread = max(math.sqrt(float(ref.var(ddof=1)) / n_r + var_c / n_c), _SPREAD_FLOOR)
        null = stats.norm()
        method = "welch_clt"
    threshold = centre + float(null.isf(level)) * spread
    p_value = float(null.sf((statistic - centre) / spread))
    return MultivariateResult(
        "pca_reconstruction", statistic, p_value, threshold, p_value <= level,
        extra={"method": method, "reference_mean": centre, "n_reference": n_r, "n_current": n_c,
               "n_chunks": n_chunks},
    )


def pca_ks_test(
    reference_projections_sorted: FloatArray | Sequence[ArrayLike],
    current_projections: ArrayLike,
    *,
    alpha: float = 0.05,
) -> MultivariateResult:
    """Two-sample KS per principal component, Bonferroni-adjusted.

    ``reference_projections_sorted`` holds held-out reference rows projected
    with :meth:`PcaBasis.transform`, each column sorted ascending (sorted
    once when the reference profile is built), as a 2-D array or a list of
    1-D arrays. ``statistic`` is the largest KS distance over components and
    ``p_value`` the smallest per-component p-value times the number of
    components (capped at 1). scipy picks the exact distribution for samples
    up to 10,000 and the asymptotic one above.

    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> ref = np.sort(rng.normal(size=(1000, 2)), axis=0)
    >>> pca_ks_test(ref, rng.normal(size=(500, 2))).drift
    False
    >>> pca_ks_test(ref, rng.normal(size=(500, 2)) * [1.0, 1.5]).drift
    True
    """
    ref = reference_projections_sorted
    if isinstance(ref, np.ndarray):
        ref = list(_array(ref, "reference_projections_sorted").T)
    ref_cols = [_array(c, "reference projection", ndim=1) for c in ref]
    cur = _array(current_projections, "current_projections", min_rows=PCA_KS_MIN_ROWS)
    level = _alpha(alpha)
    if len(ref_cols) != cur.shape[1]:
        raise InvalidInput(f"reference has {len(ref_cols)} components but current has {cur.shape[1]}")
    if not all(bool(np.all(np.diff(c) >= 0)) for c in ref_cols):
        raise InvalidInput("reference projections must be sorted ascending per component")
    per = [stats.ks_2samp(r, c, alternative="two-sided", method="auto") for r, c in zip(ref_cols, cur.T)]
    distances, p_values = [float(r.statistic) for r in per], [float(r.pvalue) for r in per]
    p_value = min(1.0, len(p_values) * min(p_values))
    return MultivariateResult(
        "pca_ks", max(distances), p_value, None, p_value <= level,
        extra={"n_components": len(p_values), "statistics": distances, "p_values": p_values},
    )


# --------------------------------------------------------------------------- kernel MMD


def mmd_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_permutations: int = 999,
    max_samples: int = 500,
    alpha: float = 0.05,
    rng: np.random.Generator | int,
) -> MultivariateResult:
    """Kernel two-sample test: unbiased MMD^2 with a permutation null.

    Each side is subsampled (without replacement) to at most ``max_samples``
    rows, which bounds the cost. The kernel is the Gaussian RBF
    ``exp(-|x-y|^2 / (2 s^2))`` with ``s`` the median pairwise distance of the
    pooled subsample (the median heuristic). The statistic is the *unbiased*
    (U-statistic) estimate of MMD^2 of Gretton et al. (2012), whose null
    expectation is 0, so it can be slightly negative. ``p_value`` is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)``, valid at any
    sample size; ``threshold`` is the permuted value the statistic must exceed
    for ``p_value <= alpha`` (None when too few permutations allow that).

    Cost: the pooled kernel is computed once; every permutation is a column of
    a 0/1 membership matrix ``S`` and the within-reference sums are
    ``diag(S^T K S)``, one matrix product for all permutations.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> ref = rng.normal(size=(300, 3))
    >>> mmd_test(ref, rng.normal(size=(300, 3)), n_permutations=199, rng=0).drift
    False
    >>> mmd_test(ref, rng.normal(size=(300, 3)) + [0.5, 0, 0], n_permutations=199, rng=0).drift
    True
    """
    x = _array(reference, "reference", min_rows=2)
    y = _array(current, "current", min_rows=MMD_MIN_ROWS)
    _same_columns(x, y)
    level = _alpha(alpha)
    if n_permutations < 1 or max_samples < 2:
        raise InvalidInput("n_permutations must be >= 1 and max_samples >= 2")
    gen = _generator(rng)
    x, y = _subsample(x, max_samples, gen), _subsample(y, max_samples, gen)
    n, m = x.shape[0], y.shape[0]
    # Condensed pairwise distances: exact (no |a|^2 + |b|^2 - 2ab cancellation) and the
    # pairs the median heuristic needs, each once.
    sq_dist = pdist(np.vstack([x, y]), "sqeuclidean")
    dist = np.sqrt(sq_dist)
    bandwidth = float(np.median(dist))
    if bandwidth <= 0.0:
        # More than half the pairs coincide (e.g. mostly one-hot rows): use the
        # typical non-zero distance so the kernel still separates distinct rows.
        positive = dist[dist > 0]
        bandwidth = float(positive.mean()) if positive.size else 1.0
    kernel = squareform(np.exp(-sq_dist / (2.0 * bandwidth**2)))
    np.fill_diagonal(kernel, 1.0)

    # Column 0 is the observed split, so it goes through exactly the same arithmetic as the permutations.
    base = np.zeros(n + m)
    base[:n] = 1.0
    members = np.empty((n + m, n_permutations + 1))
    members[:, 0] = base
    members[:, 1:] = gen.permuted(np.tile(base, (n_permutations, 1)), axis=1).T
    within = np.einsum("ij,ij->j", members, kernel @ members)  # s^T K s per column
    row_sums = kernel.sum(axis=1)
    total = float(row_sums.sum())
    with_all = members.T @ row_sums  # s^T K 1
    cross = with_all - within
    within_y = total - 2.0 * with_all + within
    # The diagonal of an RBF kernel is 1: the U-statistic leaves it out.
    mmd2 = (within - n) / (n * (n - 1)) + (within_y - m) / (m * (m - 1)) - 2.0 * cross / (n * m)
    observed, permuted = float(mmd2[0]), mmd2[1:]
    tol = 1e-12 * max(1.0, abs(observed))  # round-off must not break a tie in the test's favour
    exceed = int(np.sum(permuted >= observed - tol))
    p_value = (1.0 + exceed) / (1.0 + n_permutations)
    method = "permutation"
    if exceed < MIN_TAIL_COUNT:
        # Too few permutations beyond the observed value to resolve a small p-value
        # (a monitor tests at alpha/16 or less): read the tail off a Pearson type III
        # curve matched to the permutation null's mean, spread and skew.
        tail = _pearson3_tail(permuted, observed)
        if tail is not None:
            p_value, method = min(p_value, tail), "pearson3"
    allowed = math.floor(level * (1 + n_permutations) + 1e-9) - 1
    threshold = float(np.sort(permuted)[::-1][allowed]) if allowed >= 0 else None
    return MultivariateResult(
        "mmd", observed, p_value, threshold, p_value <= level,
        extra={"bandwidth": bandwidth, "n_permutations": n_permutations, "n_reference": n, "n_current": m,
               "estimator": "unbiased", "p_value_method": method},
    )


#: Fewer permutations than this beyond the observed MMD switch to the fitted tail.
MIN_TAIL_COUNT = 10


def _pearson3_tail(permuted: FloatArray, observed: float) -> float | None:
    from scipy import stats as sps

    sd = float(permuted.std())
    if sd <= 0 or permuted.size < 50:
        return None
    skew = float(sps.skew(permuted))
    return float(sps.pearson3.sf(observed, skew, loc=float(permuted.mean()), scale=sd))


