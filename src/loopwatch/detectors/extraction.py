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

import math
from typing import ClassVar, Self, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from loopwatch.detectors.extraction_scores import SIGNALS, ExtractionScore, QueryFeatures, median_statistics
from loopwatch.detectors.query_geometry import (
    distinct_positions,
    lattice_neighbours,
    median_nn_dropping,
    near_boundary_share,
    nearest_dropping,
    numeric_values,
    one_blas_thread,
    value_codes,
)
from loopwatch.errors import InvalidInput

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

    The family's contract (:mod:`loopwatch.detectors.contract`), one client's queries a unit.
    """
    name: ClassVar[str] = "extraction"
    seed_parameter: ClassVar[str] = "seed"

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
        with one_blas_thread():
            keep = distinct_positions(prepared[0])
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

    def predict(self, frame: pd.DataFrame | None, probabilities: ArrayLike | None = None) -> bool:
        return self.score(frame, probabilities).flagged  # one client's queries flagged or not

    @property
    def stated_rate(self) -> float:
        """Share of reference-drawn clients the thresholds are calibrated to flag: ``fpr``."""
        return float(self.fpr)

    def calibration_counts(self) -> tuple[int, int]:
        """How many reference-drawn calibration clients were flagged, and how many were drawn."""
        if not hasattr(self, "thresholds_"):
            raise InvalidInput("ExtractionDetector is not fitted: call fit first")
        return self.calibration_k_, self.calibration_n_

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
            baseline = median_statistics([f for f in group if f.n_rows >= self.min_rows])
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
        with one_blas_thread():
            return self._features(prepared, proba, np.random.default_rng(self.seed))

    def _check_params(self) -> None:
        if not 0.0 < self.fpr < 1.0:
            raise InvalidInput("fpr must lie in (0, 1)")
        if (self.min_rows < 2 or self.max_spread_rows < 10 or self.max_grid_rows < 10 or self.max_support_rows < 10
                or self.calibration_clients < 1):
            raise InvalidInput("min_rows must be >= 2, max_spread_rows, max_grid_rows and max_support_rows >= 10, "
                               "calibration_clients >= 1")
        if not (0.0 < self.support_quantile < 0.5 and 0.0 < self.boundary_margin < 1.0
                and 0.0 < self.min_threshold <= 1.0):
            raise InvalidInput("support_quantile must lie in (0, 0.5), boundary_margin in (0, 1), "
                               "min_threshold in (0, 1]")
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
            keep = distinct_positions(codes)
            n_distinct = len(keep)
            counted = keep if len(keep) <= self.max_grid_rows else np.sort(
                rng.choice(keep, size=self.max_grid_rows, replace=False))
            grid_rows = len(counted)
            neighbours, regularity, entropy = lattice_neighbours(codes[counted], values[counted])
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
        return value_codes(frame, self.numeric_), numeric_values(frame, self.numeric_), self._encode(frame)

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
            np.mean([median_nn_dropping(encoded[rng.choice(len(encoded), size=s, replace=False)], groups)
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
                share, regularity, _ = lattice_neighbours(codes[picked], values[picked])
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
        nearest = nearest_dropping(held, self.support_rows_, self._groups())
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
        shares = np.mean(nearest_dropping(rows, self.support_rows_, self._groups()) > self.support_radius_, axis=0)
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
        observed = np.maximum(median_nn_dropping(rows, self._groups()), 1e-12)
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
        codes, numbers, encoded = prepared
        for size in sizes:
            picked = np.sort(rng.choice(n, size=int(size), replace=False))
            client = (codes[picked], numbers[picked], encoded[picked])
            # the reference's own rows are on its support by construction: that signal's null is
            # its held-out rows' (``support_quantile``), and its threshold the floor
            features = self._features(client, None if proba is None else proba[picked], rng,
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
        self.calibration_n_ = int(self.calibration_scores_.size)
        self.calibration_k_ = int(np.count_nonzero(self.calibration_scores_ >= 1.0))
