"""Model extraction: which client's queries look like someone mapping the model?

An attacker who wants a copy of a model (or its decision boundary) sends queries
that ordinary clients never send: points drawn over the whole feature box, points
chosen near the decision boundary (active learning), points on a lattice that
differ from one another in a single feature. Volume alone proves nothing: a CRM
job scoring the whole customer base is the largest client of all, and rate limits
and query budgets are the defence against volume. So volume is reported but not
scored, and each client's *set* of queries in a window is scored on four signals,
each in [0, 1]:

``support``
    The share of the client's queries farther from every reference row than all but
    ``support_quantile`` (5%) of the reference's own held-out rows are, beyond that
    5%. Real customers, even those of one unusual segment, lie among real customers;
    queries drawn over the feature box, or chosen on a surrogate's boundary among
    such draws, break the relations between features and lie off the data. The share
    is the lowest over all features and every choice of all features but one, so a
    single broken column (a client sending minutes instead of hours, a new
    category) does not put a client off the support.
``boundary``
    The share of the client's rows whose two most probable classes are within
    ``boundary_margin`` of each other, beyond the share of the baseline's rows
    that are (the reference: the model's own outputs on its training sample).
``grid``
    The share of the client's distinct rows that differ from another of its rows
    in exactly one feature, weighted by how regular the steps along that feature
    are (``(1 + regularity) / 2``), beyond the reference's share at the same number
    of rows (a larger sample of any table holds more such twins: the same flight on
    another day), counted on at most ``max_grid_rows`` rows.
``spread``
    How far the typical distance from a query to its nearest other query is from
    the same distance in an equally large sample of the reference:
    ``|log(ratio)| / log(spread_scale)``, capped at 1. Queries packed around a few
    anchors lie far closer than real cases; queries spread over the box, far wider.
    The ratio is the one closest to 1 among all features and every choice of all
    features but one, for the same reason as ``support``'s.

**Any one strong signal names a client.** Each signal has its own threshold, the
``1 - fpr / k`` quantile of its values on clients drawn at random from the
reference (``k`` signals calibrated, Bonferroni), never below ``min_threshold``; a
client is flagged when one signal reaches its threshold. (An average would let a
signal that a strategy does not produce, such as ``grid`` for queries drawn at
random, dilute the ones it does.) ``support`` is not calibrated on reference-drawn
clients, which are on the support by construction: its null is the held-out rows'
share (``support_quantile``), and its threshold the floor. ``score`` is the
strongest signal over its threshold, so ``score >= 1`` is a flag.

**Judged against the population and the client's own past.** Besides the
reference, a signal can be measured against the other clients of the same window
(the median of their statistics) and against the client's own earlier windows in
which it was not flagged; a signal counts at its weakest over the baselines it has.
Traffic that moved for everyone (a drift) is then no client's signal, and a
client whose customers always sit near the boundary is measured against its own
normal; yet nothing is skipped because the window drifted.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 2000).round(2), "b": rng.normal(50, 9, 2000).round(2)})
>>> detector = ExtractionDetector(seed=0).fit(reference)
>>> benign = pd.DataFrame({"a": rng.gamma(2.0, 3.0, 500).round(2), "b": rng.normal(50, 9, 500).round(2)})
>>> detector.score(benign).flagged
False
>>> grid = pd.DataFrame([(5.0 + 0.05 * i, 50.0 + 0.05 * j) for i in range(20) for j in range(20)], columns=["a", "b"])
>>> detector.score(grid).reasons
('grid', 'spread')
>>> box = pd.DataFrame({"a": rng.uniform(0, 40, 500).round(2), "b": rng.uniform(10, 90, 500).round(2)})
>>> detector.score(box).reasons
('spread',)
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Self, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from loopwatch.errors import InvalidInput

#: Decimals numeric values are compared at: a lattice step of 0.05 stays 0.05,
#: float noise from JSON round trips disappears.
_DECIMALS = 9
#: The signals, in the order they are reported.
SIGNALS = ("boundary", "grid", "spread", "support")


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
    #: Median nearest-neighbour distance over the reference's at the same size, with the
    #: features (all, or all but one) that bring it closest to 1.
    spread_ratio: float | None
    #: The same with every feature.
    spread_ratio_all_features: float | None = None
    #: The feature left out for ``spread_ratio`` (``None``: none was).
    spread_left_out: str | None = None
    #: Distinct rows the one-feature neighbours were counted on (a random draw of at most
    #: ``max_grid_rows``), and the reference's ``grid`` statistic at that many rows.
    grid_rows: int | None = None
    expected_grid: float | None = None
    #: Share of the (at most ``max_spread_rows``) distinct rows farther from every reference
    #: row than the reference's own held-out rows ever are (all but ``support_quantile`` of
    #: them), with the features (all, or all but one) that bring it lowest.
    off_support_share: float | None = None
    expected_off_support_share: float | None = None
    #: The feature left out for ``off_support_share`` (``None``: none was).
    support_left_out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def statistics(self) -> dict[str, float]:
        """The statistic behind each computable signal (what baselines are medians of).

        ``grid`` is the share of one-feature neighbours (weighted by step regularity) beyond
        the reference's at the same number of rows, since a larger sample of any table holds
        more of them, over ``max(1 - reference's, 0.5)``; ``spread`` is the log of the spread ratio.
        """
        out: dict[str, float] = {}
        if self.near_boundary_share is not None and self.expected_near_boundary_share is not None:
            out["boundary"] = self.near_boundary_share
        if self.neighbour_share is not None:
            grid = self.neighbour_share * (1.0 + (self.step_regularity or 0.0)) / 2.0
            expected = self.expected_grid or 0.0
            # beyond the reference's share, as a part of what it leaves; where the reference
            # itself is mostly twins (a table of a few discrete features) the twin share says
            # little, so the excess is never more than twice the plain difference
            out["grid"] = (grid - expected) / max(1.0 - expected, 0.5)
        if self.spread_ratio is not None:
            out["spread"] = math.log(max(self.spread_ratio, 1e-12))
        if self.off_support_share is not None:
            out["support"] = self.off_support_share
        return out


@dataclass(frozen=True, kw_only=True)
class ExtractionScore:
    """One client's signals, each signal's threshold, and the decision.

    ``signals`` holds each signal at its weakest over the baselines in ``against``
    (``reference``, and ``others`` and ``history`` when the client had them);
    ``score`` is the strongest signal over its threshold, and ``flagged`` needs
    ``score >= threshold`` (1) and at least ``min_rows`` rows.
    """

    client_id: str | None
    features: QueryFeatures
    signals: dict[str, float]
    thresholds: dict[str, float]
    score: float
    threshold: float
    flagged: bool
    against: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The signals at or above their thresholds, strongest (over its threshold) first."""
        strong = sorted(((v / self.thresholds[k], k) for k, v in self.signals.items()
                         if v >= self.thresholds[k]), key=lambda item: (-item[0], item[1]))
        return tuple(k for _, k in strong)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "features": self.features.to_dict(),
            "signals": dict(self.signals),
            "thresholds": dict(self.thresholds),
            "against": {k: dict(v) for k, v in self.against.items()},
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
        Share of reference-drawn clients allowed above the thresholds, all signals together
        (the calibrated false-alarm rate; the ``min_threshold`` floor makes the real rate lower).
    min_rows:
        Fewest rows a client needs in a window before it can be flagged.
    boundary_margin:
        Rows whose two most probable classes are closer than this count as near the boundary.
    min_threshold:
        No signal's threshold goes below this.
    spread_scale:
        A nearest-neighbour distance this many times smaller (or larger) than the
        reference's gives the full ``spread`` signal.
    max_spread_rows:
        Rows (drawn at random) the spread and support signals compare at most, to bound their cost.
    max_grid_rows:
        Distinct rows (drawn at random) the grid signal counts neighbours among at most.
    support_quantile:
        Share of the reference's held-out rows allowed off its support: a query farther from
        every reference row than all but this share of held-out rows is off the support
        (5%: queries drawn over the feature box of the tables measured lie off it 86% to
        100% of the time, real rows of any segment 2% to 4%).
    max_support_rows:
        Reference rows the support signal measures distances to at most.
    calibration_clients:
        Reference-drawn clients scored to calibrate the thresholds.
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
        max_grid_rows: int = 2000,
        support_quantile: float = 0.05,
        max_support_rows: int = 2000,
        calibration_clients: int = 100,
        seed: int = 0,
    ) -> None:
        self.fpr = fpr
        self.min_rows = min_rows
        self.boundary_margin = boundary_margin
        self.min_threshold = min_threshold
        self.spread_scale = spread_scale
        self.max_spread_rows = max_spread_rows
        self.max_grid_rows = max_grid_rows
        self.support_quantile = support_quantile
        self.max_support_rows = max_support_rows
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
        """Learn the reference's scales, nearest-neighbour distances, one-feature neighbours,
        support and boundary share, then calibrate ``thresholds_`` on clients drawn from it."""
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
            keep = _distinct_positions(prepared[0])
            self.spread_sizes_, self.spread_distances_ = self._spread_baseline(prepared[2][keep], rng)
            self.grid_sizes_, self.grid_expected_ = self._grid_baseline(prepared[0][keep], prepared[1][keep], rng)
            self._fit_support(prepared[2][keep], rng)
            self._calibrate(prepared, reference_proba, rng)
        return self

    def score(
        self, frame: pd.DataFrame | None, probabilities: ArrayLike | None = None, *, client_id: str | None = None
    ) -> ExtractionScore:
        """One client's queries (its input rows, its probabilities, or both) scored against the
        reference and decided."""
        return self.decide(self.features(frame, probabilities), client_id=client_id)

    def decide(
        self,
        features: QueryFeatures,
        *,
        others: Sequence[QueryFeatures] = (),
        history: Sequence[QueryFeatures] = (),
        client_id: str | None = None,
    ) -> ExtractionScore:
        """One client's features decided against the reference and, when given, the other
        clients of its window (``others``) and its own earlier unflagged windows (``history``).

        Features of fewer than ``min_rows`` rows say too little to be a baseline and are left out.
        Each signal counts at its weakest over the baselines that have its statistic.
        """
        if not hasattr(self, "thresholds_"):
            raise InvalidInput("ExtractionDetector is not fitted: call fit first")
        statistics = features.statistics()
        against: dict[str, dict[str, float]] = {
            name: {"reference": self._signal(name, value, self._reference_baseline(name))}
            for name, value in statistics.items()
        }
        for label, group in (("others", others), ("history", history)):
            baseline = _median_statistics([f for f in group if f.n_rows >= self.min_rows])
            for name, value in statistics.items():
                if name in baseline:
                    against[name][label] = self._signal(name, value, baseline[name])
        signals = {name: min(values.values()) for name, values in against.items()}
        thresholds = {name: float(self.thresholds_[name]) for name in signals}
        score = max((signals[k] / thresholds[k] for k in signals), default=0.0)
        flagged = features.n_rows >= self.min_rows and score >= 1.0
        return ExtractionScore(
            client_id=client_id, features=features, signals=signals, thresholds=thresholds, score=float(score),
            threshold=1.0, flagged=bool(flagged), against=against,
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
        if (self.min_rows < 2 or self.max_spread_rows < 10 or self.max_grid_rows < 10 or self.max_support_rows < 10
                or self.calibration_clients < 1):
            raise InvalidInput("min_rows must be >= 2, max_spread_rows, max_grid_rows and max_support_rows >= 10, "
                               "calibration_clients >= 1")
        if not 0.0 < self.support_quantile < 0.5:
            raise InvalidInput("support_quantile must lie in (0, 0.5)")
        if not 0.0 < self.boundary_margin < 1.0 or not 0.0 < self.min_threshold <= 1.0:
            raise InvalidInput("boundary_margin must lie in (0, 1) and min_threshold in (0, 1]")
        if not self.spread_scale > 1.0:
            raise InvalidInput("spread_scale must be above 1")

    def _reference_baseline(self, name: str) -> float:
        if name == "boundary":
            return float(self.reference_boundary_share_ or 0.0)
        if name == "support":
            return float(self.support_quantile)
        return 0.0  # grid: the reference's own share at that size; spread: a ratio of 1 (log 0)

    def _signal(self, name: str, value: float, baseline: float) -> float:
        """A statistic against a baseline, in [0, 1]: the spread's distance in log ratio over
        ``log(spread_scale)``; for the shares, the excess over the baseline's share as a part of
        what it leaves (a baseline below 0, a grid sparser than the reference's, counts as 0)."""
        if name == "spread":
            return float(min(1.0, abs(value - baseline) / math.log(self.spread_scale)))
        baseline = max(baseline, 0.0)
        if value <= baseline:  # also a baseline of 1 matched: nothing beyond it
            return 0.0
        return float(min(1.0, (value - baseline) / max(1.0 - baseline, 1e-9)))

    def _features(
        self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray] | None, proba: np.ndarray | None,
        rng: np.random.Generator, *, support: bool = True,
    ) -> QueryFeatures:
        n_rows = 0
        boundary = None
        if proba is not None and proba.size:
            boundary = near_boundary_share(proba, margin=self.boundary_margin)
            n_rows = len(proba)
        neighbours = regularity = entropy = expected_grid = None
        spread: tuple[float, float, str | None] | None = None
        off_support: tuple[float, str | None] | None = None
        n_distinct = grid_rows = 0
        if prepared is not None:
            codes, values, encoded = prepared
            n_rows = max(n_rows, len(codes))
            keep = _distinct_positions(codes)
            n_distinct = len(keep)
            counted = keep if len(keep) <= self.max_grid_rows else np.sort(
                rng.choice(keep, size=self.max_grid_rows, replace=False))
            grid_rows = len(counted)
            neighbours, regularity, entropy = _neighbours(codes[counted], values[counted])
            expected_grid = float(np.interp(math.log(max(grid_rows, 1)), np.log(self.grid_sizes_), self.grid_expected_))
            spread = self._spread_ratio(encoded[keep], rng)
            if support:
                off_support = self._off_support(encoded[keep], rng)
        return QueryFeatures(
            n_rows=n_rows, n_distinct=n_distinct, near_boundary_share=boundary,
            expected_near_boundary_share=self.reference_boundary_share_ if boundary is not None else None,
            neighbour_share=neighbours, step_regularity=regularity, step_entropy=entropy,
            spread_ratio=None if spread is None else spread[0],
            spread_ratio_all_features=None if spread is None else spread[1],
            spread_left_out=None if spread is None else spread[2],
            grid_rows=grid_rows if prepared is not None else None,
            expected_grid=expected_grid,
            off_support_share=None if off_support is None else off_support[0],
            expected_off_support_share=None if off_support is None else float(self.support_quantile),
            support_left_out=None if off_support is None else off_support[1],
        )

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

    def _groups(self) -> list[np.ndarray]:
        """The encoded columns of each feature, in ``features_`` order."""
        groups = [np.array([j]) for j in range(len(self.numeric_))]
        at = len(self.numeric_)
        for name in self.categorical_:
            width = len(self.categories_[name]) + 1
            groups.append(np.arange(at, at + width))
            at += width
        return groups

    def _spread_baseline(self, encoded: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The reference's median nearest-neighbour distance at several sizes (rows), with all
        features (column 0) and with each feature left out (column 1 + its position)."""
        top = min(len(encoded), self.max_spread_rows)
        columns = 1 + len(self.features_)
        if top < 2:  # a reference of one distinct row has no spacing to compare with
            return np.array([2]), np.ones((1, columns))
        sizes = np.unique(np.geomspace(2, max(2, top), num=10).round().astype(int))
        groups = self._groups()
        distances = np.array([
            np.mean([_median_nn_dropping(encoded[rng.choice(len(encoded), size=s, replace=False)], groups)
                     for _ in range(3)], axis=0)
            for s in sizes
        ])
        return sizes, np.maximum(distances, 1e-12)

    def _grid_baseline(
        self, codes: np.ndarray, values: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reference's ``grid`` statistic at several sizes (distinct rows): a larger sample
        of any table holds more rows that differ in one feature only (the same flight on
        another day, say), so a client is compared with the reference at its own size."""
        top = min(len(codes), self.max_grid_rows)
        if top < 2:
            return np.array([1, 2]), np.zeros(2)
        sizes = np.unique(np.geomspace(2, top, num=10).round().astype(int))
        expected = []
        for size in sizes:
            draws = []
            for _ in range(3):
                picked = rng.choice(len(codes), size=int(size), replace=False)
                share, regularity, _ = _neighbours(codes[picked], values[picked])
                draws.append(share * (1.0 + (regularity or 0.0)) / 2.0)
            expected.append(float(np.mean(draws)))
        return sizes, np.asarray(expected)

    def _fit_support(self, encoded: np.ndarray, rng: np.random.Generator) -> None:
        """Split the distinct reference rows into the rows queries are measured against (at most
        ``max_support_rows``) and held-out rows (at most 1,000), and keep, for all features and
        for each left out, the distance to the nearest measured row that all but
        ``support_quantile`` of the held-out rows stay within."""
        order = rng.permutation(len(encoded))
        n_index = min(self.max_support_rows, max(1, (2 * len(encoded)) // 3))
        held = encoded[order[n_index:n_index + 1000]]
        self.support_rows_ = encoded[order[:n_index]]
        if len(held) < 10:  # too few rows to say how far real rows lie: no support signal
            self.support_radius_ = None
            return
        nearest = _nearest_dropping(held, self.support_rows_, self._groups())
        self.support_radius_ = np.quantile(nearest, 1.0 - self.support_quantile, axis=0, method="higher")
        self.support_null_share_ = float(np.mean(nearest[:, 0] > self.support_radius_[0]))

    def _off_support(self, encoded: np.ndarray, rng: np.random.Generator) -> tuple[float, str | None] | None:
        """The share of distinct queries off the reference's support: the lowest over all features
        and every choice of all but one (so that one broken column is not a client off the
        support), and the feature left out for it (``None``: none was)."""
        if self.support_radius_ is None or len(encoded) == 0:
            return None
        top = self.max_spread_rows
        rows = encoded if len(encoded) <= top else encoded[rng.choice(len(encoded), size=top, replace=False)]
        shares = np.mean(_nearest_dropping(rows, self.support_rows_, self._groups()) > self.support_radius_, axis=0)
        lowest = int(np.argmin(shares))
        return float(shares[lowest]), None if lowest == 0 else self.features_[lowest - 1]

    def _spread_ratio(self, encoded: np.ndarray, rng: np.random.Generator) -> tuple[float, float, str | None] | None:
        """The median nearest-neighbour distance of distinct queries over the reference's at that
        size: the ratio closest to 1 over all features and every choice of all but one, that
        ratio with all features, and the feature left out for the first (``None``: none)."""
        if len(encoded) < 2:
            return None
        top = int(self.spread_sizes_[-1])
        rows = encoded if len(encoded) <= top else encoded[rng.choice(len(encoded), size=top, replace=False)]
        observed = np.maximum(_median_nn_dropping(rows, self._groups()), 1e-12)
        at = math.log(len(rows))
        expected = np.exp([np.interp(at, np.log(self.spread_sizes_), np.log(self.spread_distances_[:, j]))
                           for j in range(self.spread_distances_.shape[1])])
        ratios = observed / expected
        # a choice of features on which the reference's own rows coincide (a single discrete
        # feature left) measures nothing: 0 over 0 is not a ratio of 1
        informative = self.spread_distances_.min(axis=0) > 1e-9
        informative[0] = True
        distance = np.where(informative, np.abs(np.log(ratios)), np.inf)
        closest = int(np.argmin(distance))
        left_out = None if closest == 0 else self.features_[closest - 1]
        return float(ratios[closest]), float(ratios[0]), left_out

    def _calibrate(
        self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray], proba: np.ndarray | None, rng: np.random.Generator
    ) -> None:
        """Each signal's threshold: the ``1 - fpr / k`` quantile of its values on clients drawn
        from the reference (sizes from ``min_rows`` to the reference's), at least ``min_threshold``."""
        n = len(prepared[0])
        low = min(self.min_rows, n)
        sizes = np.exp(rng.uniform(math.log(low), math.log(n), size=self.calibration_clients)).round().astype(int)
        values: dict[str, list[float]] = {name: [] for name in SIGNALS}
        for size in sizes:
            picked = np.sort(rng.choice(n, size=int(size), replace=False))
            client = tuple(part[picked] for part in prepared)
            # the reference's own rows are on its support by construction: that signal's null is
            # its held-out rows' (``support_quantile``), and its threshold the floor
            features = self._features(client, None if proba is None else proba[picked], rng,  # type: ignore[arg-type]
                                      support=False)
            for name, value in features.statistics().items():
                values[name].append(self._signal(name, value, self._reference_baseline(name)))
        self.calibration_signals_ = {name: np.asarray(v) for name, v in values.items() if v}
        level = 1.0 - self.fpr / max(1, len(self.calibration_signals_))
        self.thresholds_ = {
            name: max(self.min_threshold, float(np.quantile(v, level, method="higher")))
            for name, v in self.calibration_signals_.items()
        }
        # every signal is given a threshold, so that a client with probabilities the reference
        # lacked (or the reverse) is still judged: the floor stands in for a missing calibration
        for name in SIGNALS:
            self.thresholds_.setdefault(name, self.min_threshold)
        self.calibration_scores_ = np.max(
            [v / self.thresholds_[name] for name, v in self.calibration_signals_.items()], axis=0
        ) if self.calibration_signals_ else np.zeros(0)


def _median_statistics(group: Sequence[QueryFeatures]) -> dict[str, float]:
    """Each statistic's median over the features of ``group`` that have it."""
    pooled: dict[str, list[float]] = {}
    for features in group:
        for name, value in features.statistics().items():
            pooled.setdefault(name, []).append(value)
    return {name: float(np.median(values)) for name, values in pooled.items()}


def _one_blas_thread() -> Any:
    """Nearest-neighbour products here are small: waking BLAS threads costs more than they
    save (measured: 23 ms against 7 ms for 500 rows on a busy 2-core machine)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    # inspecting the loaded libraries takes ~5 ms: done once per process, not per call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _parts(a: np.ndarray, b: np.ndarray, groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each group of columns' part of the squared distances between the rows of ``a`` and ``b``."""
    parts = []
    for columns in groups:
        if len(columns) == 1:  # a numeric feature: an outer difference, no product needed
            j = int(columns[0])
            parts.append(np.square(a[:, j][:, None] - b[:, j][None, :]))
            continue
        x, y = a[:, columns], b[:, columns]
        one_hot = _one_hot(x, y)
        if one_hot is not None:  # a category: 2 v^2 apart when the categories differ, else 0
            (px, py), value = one_hot
            parts.append((px[:, None] != py[None, :]) * (2.0 * value * value))
            continue
        parts.append(np.einsum("ij,ij->i", x, x)[:, None] + np.einsum("ij,ij->i", y, y)[None, :] - 2.0 * x @ y.T)
    return parts


def _one_hot(x: np.ndarray, y: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], float] | None:
    """The position of each row's one non-zero value, when every row of ``x`` and ``y`` holds
    exactly one and all hold the same value (a one-hot encoded category), else ``None``."""
    both = np.vstack([x, y])
    if both.size == 0 or np.any(np.count_nonzero(both, axis=1) != 1):
        return None
    values = both.max(axis=1)
    if not np.all(values == values[0]) or values[0] <= 0:
        return None
    positions = both.argmax(axis=1)
    return (positions[: len(x)], positions[len(x):]), float(values[0])


def _summed(parts: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    total = np.zeros(shape)
    for part in parts:
        total += part
    return total


def _nearest_dropping(queries: np.ndarray, rows: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Distance from each query to its nearest row of ``rows``: one column with all columns of
    the encoding, then one per group of columns left out (see :func:`_median_nn_dropping`)."""
    out = np.empty((len(queries), 1 + len(groups)))
    for lo in range(0, len(queries), 512):
        parts = _parts(queries[lo : lo + 512], rows, groups)
        total = _summed(parts, (len(queries[lo : lo + 512]), len(rows)))
        buffer = np.empty_like(total)
        out[lo : lo + 512, 0] = total.min(axis=1)
        for k, part in enumerate(parts):
            out[lo : lo + 512, 1 + k] = np.subtract(total, part, out=buffer).min(axis=1)
    return np.sqrt(np.maximum(out, 0.0))


def _median_nn_dropping(x: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Median distance from each row to its nearest other row, with all columns (first) and
    with each group of columns left out (then one per group), brute force: at most
    ``max_spread_rows`` rows reach here, and matrix products beat a tree in 20 dimensions.

    Leaving a group out subtracts its part of every squared distance, so the ``1 + groups``
    answers cost one product per group rather than one search each.
    """
    out = np.full(1 + len(groups), np.nan)
    if len(x) < 2:
        return out
    parts = _parts(x, x, groups)
    total = _summed(parts, (len(x), len(x)))
    # a row is not its own neighbour; every group's part of a row's distance to itself is 0
    total[np.arange(len(x)), np.arange(len(x))] = np.inf
    buffer = np.empty_like(total)
    nearest = [total.min(axis=1)] + [np.subtract(total, part, out=buffer).min(axis=1) for part in parts]
    return np.median(np.sqrt(np.maximum(np.asarray(nearest), 0.0)), axis=1)
