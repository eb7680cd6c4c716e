"""Model extraction: which client's queries look like someone mapping the model?

An attacker who wants a copy of a model (or its decision boundary) sends queries
that ordinary clients never send: many points near the boundary, points on a
regular lattice that differ from one another in a single feature, packed far
more tightly than real cases ever are. Volume alone proves nothing: a CRM job
scoring the whole customer base is the largest client of all, and rate limits
and query budgets are the defence against volume. So volume is reported but not
scored, and each client's *set* of queries in a window is scored on three signals,
each in [0, 1]:

``boundary``
    The share of the client's rows whose two most probable classes are within
    ``boundary_margin`` of each other, beyond the share of the reference rows
    (the model's own outputs on its training sample) that are.
``grid``
    The share of the client's distinct rows that differ from another of its rows
    in exactly one feature, weighted by how regular the steps along that feature
    are (``(1 + regularity) / 2``): a row's one-feature neighbours are rare by
    chance in real data with several continuous features, and their steps are
    irregular when they occur.
``spread``
    How far the typical distance from a query to its nearest other query is from
    the same distance in an equally large sample of the reference:
    ``|log(ratio)| / log(spread_scale)``, capped at 1. Queries packed around a
    few anchors, or spread far wider than real cases, both score high.

The score is the mean of the signals that can be computed (no ``boundary``
without probabilities, no ``grid`` or ``spread`` without logged inputs). The
threshold is calibrated on the reference: clients drawn at random from the
reference rows, of sizes between ``min_rows`` and the reference's, are scored,
and ``threshold_`` is the ``1 - fpr`` quantile of their scores, never below
``min_threshold``. With all three signals computed, the floor means one alone
(a client resending the same few customers, a client whose traffic sits near
the boundary after a drift) is not extraction.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 2000).round(2), "b": rng.normal(50, 9, 2000).round(2)})
>>> detector = ExtractionDetector(seed=0).fit(reference)
>>> benign = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 500).round(2), "b": rng.normal(50, 9, 500).round(2)})
>>> detector.score(benign).flagged
False
>>> grid = pd.DataFrame([(5.0 + 0.05 * i, 50.0 + 0.05 * j) for i in range(20) for j in range(20)], columns=["a", "b"])
>>> detector.score(grid).flagged
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Self, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from loopwatch.errors import InvalidInput

#: Decimals numeric values are compared at: a lattice step of 0.05 stays 0.05,
#: float noise from JSON round trips disappears.
_DECIMALS = 9


@dataclass(frozen=True, kw_only=True)
class QueryFeatures:
    """What one client's queries in a window look like (``None``: not computable)."""

    n_rows: int
    n_distinct: int
    near_boundary_share: float | None
    expected_near_boundary_share: float | None
    neighbour_share: float | None
    step_regularity: float | None
    step_entropy: float | None
    spread_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ExtractionScore:
    """One client's score, the signals it is made of, and the decision."""

    client_id: str | None
    features: QueryFeatures
    signals: dict[str, float]
    score: float
    threshold: float
    flagged: bool

    @property
    def reasons(self) -> tuple[str, ...]:
        """The signals that are strong on their own (at least 0.5), strongest first."""
        strong = sorted(((v, k) for k, v in self.signals.items() if v >= 0.5), reverse=True)
        return tuple(k for _, k in strong)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "features": self.features.to_dict(),
            "signals": dict(self.signals),
            "score": self.score,
            "threshold": self.threshold,
            "flagged": self.flagged,
            "reasons": list(self.reasons),
        }


# --- the signals as functions -----------------------------------------------------------


def near_boundary_share(probabilities: ArrayLike, *, margin: float = 0.2) -> float:
    """Share of rows whose two most probable classes are less than ``margin`` apart."""
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0:
        raise InvalidInput("probabilities must be a non-empty matrix with one column per class")
    if proba.shape[1] == 1:
        gap = np.abs(2.0 * proba[:, 0] - 1.0)
    else:
        top = np.sort(proba, axis=1)
        gap = top[:, -1] - top[:, -2]
    return float(np.mean(gap < margin))


def _codes(frame: pd.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """Each value as an integer code per column (equal values, equal codes; missing is -1)."""
    columns = []
    for name in frame.columns:
        values = frame[name]
        if name in numeric:
            values = pd.to_numeric(values, errors="coerce").round(_DECIMALS)
        columns.append(pd.factorize(values, use_na_sentinel=True)[0])
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0), dtype=np.int64)


def _numeric_values(frame: pd.DataFrame, numeric: Sequence[str]) -> np.ndarray:
    """The numeric columns as floats (NaN elsewhere), rounded as they are compared."""
    out = np.full(frame.shape, np.nan)
    for j, name in enumerate(frame.columns):
        if name in numeric:
            out[:, j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64).round(_DECIMALS)
    return out


def _distinct_positions(codes: np.ndarray) -> np.ndarray:
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(codes, axis=0, return_index=True)
    return np.sort(first)


def one_feature_neighbours(
    frame: pd.DataFrame, *, numeric: Sequence[str] = ()
) -> tuple[float, float | None, float | None]:
    """Of the distinct rows, the share with a twin that differs in exactly one feature; and
    the regularity and normalised entropy of the steps between such twins along numeric features.

    Regularity is, over groups of at least three twins, the share of steps equal to their
    group's most common step (1 on a lattice); the entropy is that of all steps pooled
    (0 when every step is the same). Both are ``None`` when there are too few steps.
    """
    codes = _codes(frame, numeric)
    keep = _distinct_positions(codes)
    return _neighbours(codes[keep], _numeric_values(frame, numeric)[keep])


def _neighbours(codes: np.ndarray, values: np.ndarray) -> tuple[float, float | None, float | None]:
    """:func:`one_feature_neighbours` on distinct rows' codes and numeric values."""
    n, d = codes.shape
    if n < 2 or d < 2:
        return 0.0, None, None
    has_twin = np.zeros(n, dtype=bool)
    regular, steps_in_groups = 0, 0
    pooled: list[np.ndarray] = []
    for j in range(d):
        _, key = np.unique(np.delete(codes, j, axis=1), axis=0, return_inverse=True)
        key = key.ravel()
        in_group = np.bincount(key)[key] >= 2  # distinct rows sharing every other feature differ in this one
        has_twin |= in_group
        column = values[:, j]
        if not in_group.any() or np.isnan(column).all():
            continue
        order = np.lexsort((column, key))
        sorted_key = key[order]
        gaps = np.round(np.diff(column[order]), _DECIMALS)
        valid = (sorted_key[1:] == sorted_key[:-1]) & np.isfinite(gaps)
        if not valid.any():
            continue
        group, gap = sorted_key[1:][valid], gaps[valid]
        pooled.append(gap)
        steps = np.bincount(group)
        pairs, pair_counts = np.unique(np.column_stack([group, gap.view(np.int64)]), axis=0, return_counts=True)
        modal = np.zeros(len(steps), dtype=np.int64)
        np.maximum.at(modal, pairs[:, 0], pair_counts)
        wide = steps >= 2  # a lone step is regular by definition: no evidence either way
        regular += int(modal[wide].sum())
        steps_in_groups += int(steps[wide].sum())
    regularity = regular / steps_in_groups if steps_in_groups else None
    entropy = None
    if pooled:
        all_gaps = np.concatenate(pooled)
        if all_gaps.size >= 2:
            _, counts = np.unique(all_gaps, return_counts=True)
            p = counts / counts.sum()
            entropy = float(max(0.0, -(p * np.log(p)).sum() / math.log(all_gaps.size)))
    return float(has_twin.mean()), regularity, entropy


# --- the detector -----------------------------------------------------------------------


class ExtractionDetector(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no stubs
    """Score each client's queries for extraction-like patterns; fitted on the reference.

    Parameters
    ----------
    fpr:
        Share of reference-drawn clients allowed above the threshold (the calibrated
        false-alarm rate; the ``min_threshold`` floor makes the real rate lower).
    min_rows:
        Fewest rows a client needs in a window before it can be flagged.
    boundary_margin:
        Rows whose two most probable classes are closer than this count as near the boundary.
    min_threshold:
        The threshold never goes below this.
    spread_scale:
        A nearest-neighbour distance this many times smaller (or larger) than the
        reference's gives the full ``spread`` signal.
    max_spread_rows:
        Rows (drawn at random) the spread signal compares at most, to bound its cost.
    calibration_clients:
        Reference-drawn clients scored to calibrate the threshold.
    seed:
        Seed of every random draw.
    """

    def __init__(
        self,
        *,
        fpr: float = 0.01,
        min_rows: int = 50,
        boundary_margin: float = 0.2,
        min_threshold: float = 0.5,
        spread_scale: float = 4.0,
        max_spread_rows: int = 500,
        calibration_clients: int = 100,
        seed: int = 0,
    ) -> None:
        self.fpr = fpr
        self.min_rows = min_rows
        self.boundary_margin = boundary_margin
        self.min_threshold = min_threshold
        self.spread_scale = spread_scale
        self.max_spread_rows = max_spread_rows
        self.calibration_clients = calibration_clients
        self.seed = seed

    def fit(
        self,
        reference: pd.DataFrame,
        *,
        probabilities: ArrayLike | None = None,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
    ) -> Self:
        """Learn the reference's scales, nearest-neighbour distances and boundary share, then
        calibrate ``threshold_`` on clients drawn from the reference."""
        self._check_params()
        if not isinstance(reference, pd.DataFrame) or len(reference) < 10:
            raise InvalidInput("the reference must be a table of at least 10 rows")
        if numeric is None:
            numeric = [c for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])]
        if categorical is None:
            categorical = [c for c in reference.columns if c not in numeric]
        self.numeric_ = list(numeric)
        self.categorical_ = list(categorical)
        self.features_ = self.numeric_ + self.categorical_
        frame = self._align(reference)
        values = frame[self.numeric_].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"):  # an all-missing column has no median: 0 stands in
            self.medians_ = np.nan_to_num(np.nanmedian(values, axis=0)) if values.size else np.zeros(0)
            scales = np.nanstd(values, axis=0) if values.size else np.zeros(0)
        self.scales_ = np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)
        self.categories_ = {c: sorted(map(str, frame[c].dropna().unique())) for c in self.categorical_}
        self.reference_boundary_share_: float | None = None
        reference_proba = None
        if probabilities is not None:
            reference_proba = np.asarray(probabilities, dtype=np.float64)
            if reference_proba.ndim != 2 or len(reference_proba) != len(frame):
                raise InvalidInput("reference probabilities need one row per reference row")
            self.reference_boundary_share_ = near_boundary_share(reference_proba, margin=self.boundary_margin)
        rng = np.random.default_rng(self.seed)
        prepared = self._prepare(frame)
        with _one_blas_thread():
            distinct = prepared[2][_distinct_positions(prepared[0])]
            self.spread_sizes_, self.spread_distances_ = self._spread_baseline(distinct, rng)
            self._calibrate(prepared, reference_proba, rng)
        return self

    def score(
        self, frame: pd.DataFrame | None, probabilities: ArrayLike | None = None, *, client_id: str | None = None
    ) -> ExtractionScore:
        """One client's queries (its input rows, its probabilities, or both) scored and decided."""
        if not hasattr(self, "threshold_"):
            raise InvalidInput("ExtractionDetector is not fitted: call fit first")
        features = self.features(frame, probabilities)
        signals = self._signals(features)
        score = float(np.mean(list(signals.values()))) if signals else 0.0
        flagged = features.n_rows >= self.min_rows and score >= self.threshold_
        return ExtractionScore(
            client_id=client_id, features=features, signals=signals, score=score,
            threshold=float(self.threshold_), flagged=bool(flagged),
        )

    def features(self, frame: pd.DataFrame | None, probabilities: ArrayLike | None = None) -> QueryFeatures:
        """The raw query features of one client (see :class:`QueryFeatures`)."""
        if not hasattr(self, "features_"):
            raise InvalidInput("ExtractionDetector is not fitted: call fit first")
        prepared = self._prepare(self._align(frame)) if frame is not None and len(frame) else None
        proba = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
        with _one_blas_thread():
            return self._features(prepared, proba, np.random.default_rng(self.seed))

    # -- internals -----------------------------------------------------------------------

    def _check_params(self) -> None:
        if not 0.0 < self.fpr < 1.0:
            raise InvalidInput("fpr must lie in (0, 1)")
        if self.min_rows < 2 or self.max_spread_rows < 10 or self.calibration_clients < 1:
            raise InvalidInput("min_rows must be >= 2, max_spread_rows >= 10, calibration_clients >= 1")
        if not 0.0 < self.boundary_margin < 1.0 or not 0.0 <= self.min_threshold <= 1.0:
            raise InvalidInput("boundary_margin must lie in (0, 1) and min_threshold in [0, 1]")
        if not self.spread_scale > 1.0:
            raise InvalidInput("spread_scale must be above 1")

    def _features(
        self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray] | None, proba: np.ndarray | None,
        rng: np.random.Generator,
    ) -> QueryFeatures:
        n_rows = 0
        boundary = None
        if proba is not None and proba.size:
            boundary = near_boundary_share(proba, margin=self.boundary_margin)
            n_rows = len(proba)
        neighbours = regularity = entropy = spread = None
        n_distinct = 0
        if prepared is not None:
            codes, values, encoded = prepared
            n_rows = max(n_rows, len(codes))
            keep = _distinct_positions(codes)
            n_distinct = len(keep)
            neighbours, regularity, entropy = _neighbours(codes[keep], values[keep])
            spread = self._spread_ratio(encoded[keep], rng)
        return QueryFeatures(
            n_rows=n_rows, n_distinct=n_distinct, near_boundary_share=boundary,
            expected_near_boundary_share=self.reference_boundary_share_ if boundary is not None else None,
            neighbour_share=neighbours, step_regularity=regularity, step_entropy=entropy, spread_ratio=spread,
        )

    def _signals(self, features: QueryFeatures) -> dict[str, float]:
        signals: dict[str, float] = {}
        if features.near_boundary_share is not None and features.expected_near_boundary_share is not None:
            expected = features.expected_near_boundary_share
            excess = (features.near_boundary_share - expected) / max(1e-9, 1.0 - expected)
            signals["boundary"] = float(np.clip(excess, 0.0, 1.0))
        if features.neighbour_share is not None:
            regularity = features.step_regularity or 0.0
            signals["grid"] = float(features.neighbour_share * (1.0 + regularity) / 2.0)
        if features.spread_ratio is not None:
            distance = abs(math.log(max(features.spread_ratio, 1e-12))) / math.log(self.spread_scale)
            signals["spread"] = float(min(1.0, distance))
        return signals

    def _align(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput("queries must be a table (a pandas DataFrame)")
        return pd.DataFrame(
            {name: frame[name].to_numpy() if name in frame.columns else np.full(len(frame), np.nan)
             for name in self.features_},
            index=range(len(frame)),
        )

    def _prepare(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes (for equality), numeric values (for steps) and the encoding (for distances)."""
        return _codes(frame, self.numeric_), _numeric_values(frame, self.numeric_), self._encode(frame)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric features in reference standard deviations (missing: the median), and one-hot
        categoricals scaled so that two different categories are 1 apart."""
        parts = []
        if self.numeric_:
            x = frame[self.numeric_].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            x = np.where(np.isnan(x), self.medians_, x)
            parts.append((x - self.medians_) / self.scales_)
        for name in self.categorical_:
            known = self.categories_[name]
            index = {c: i for i, c in enumerate(known)}
            labels = frame[name].astype(object).where(frame[name].notna(), None)
            positions = np.fromiter((index.get(str(v), len(known)) if v is not None else len(known) for v in labels),
                                    dtype=np.int64, count=len(frame))
            parts.append(np.eye(len(known) + 1)[positions] / math.sqrt(2.0))
        return np.column_stack(parts) if parts else np.zeros((len(frame), 0))

    def _spread_baseline(self, encoded: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        top = min(len(encoded), self.max_spread_rows)
        if top < 2:  # a reference of one distinct row has no spacing to compare with
            return np.array([2]), np.array([1.0])
        sizes = np.unique(np.geomspace(2, max(2, top), num=10).round().astype(int))
        distances = np.array([
            np.mean([_median_nn(encoded[rng.choice(len(encoded), size=s, replace=False)]) for _ in range(3)])
            for s in sizes
        ])
        return sizes, np.maximum(distances, 1e-12)

    def _spread_ratio(self, encoded: np.ndarray, rng: np.random.Generator) -> float | None:
        """Median nearest-neighbour distance of distinct queries over the reference's at that size."""
        if len(encoded) < 2:
            return None
        top = int(self.spread_sizes_[-1])
        rows = encoded if len(encoded) <= top else encoded[rng.choice(len(encoded), size=top, replace=False)]
        observed = _median_nn(rows)
        expected = math.exp(np.interp(math.log(len(rows)), np.log(self.spread_sizes_), np.log(self.spread_distances_)))
        return float(max(observed, 1e-12) / expected)

    def _calibrate(
        self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray], proba: np.ndarray | None, rng: np.random.Generator
    ) -> None:
        n = len(prepared[0])
        low = min(self.min_rows, n)
        sizes = np.exp(rng.uniform(math.log(low), math.log(n), size=self.calibration_clients)).round().astype(int)
        scores = []
        for size in sizes:
            picked = np.sort(rng.choice(n, size=int(size), replace=False))
            client = tuple(part[picked] for part in prepared)
            features = self._features(client, None if proba is None else proba[picked], rng)  # type: ignore[arg-type]
            signals = self._signals(features)
            scores.append(float(np.mean(list(signals.values()))) if signals else 0.0)
        self.calibration_scores_ = np.asarray(scores)
        quantile = float(np.quantile(self.calibration_scores_, 1.0 - self.fpr, method="higher"))
        self.threshold_ = max(self.min_threshold, quantile)


def _one_blas_thread() -> Any:
    """Nearest-neighbour products here are small: waking BLAS threads costs more than they
    save (measured: 23 ms against 7 ms for 500 rows on a busy 2-core machine)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    # inspecting the loaded libraries takes ~5 ms: done once per process, not per call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _median_nn(x: np.ndarray) -> float:
    """Median distance from each row to its nearest other row (brute force: at most
    ``max_spread_rows`` rows reach here, and a matrix product beats a tree in 20 dimensions)."""
    if len(x) < 2:
        return float("nan")
    squares = np.einsum("ij,ij->i", x, x)
    nearest = np.empty(len(x))
    for lo in range(0, len(x), 512):
        block = x[lo : lo + 512]
        d2 = squares[lo : lo + 512, None] + squares[None, :] - 2.0 * block @ x.T
        d2[np.arange(len(block)), np.arange(lo, lo + len(block))] = np.inf
        nearest[lo : lo + 512] = d2.min(axis=1)
    return float(np.median(np.sqrt(np.maximum(nearest, 0.0))))
