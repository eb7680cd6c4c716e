"""What a window's outputs add up to for performance estimation, and exact sums of floats.

Two parts here and one beside them, each exact: sums of floats are kept exactly, as
:class:`~loopwatch.summaries.exact_sum.ExactSum` (:func:`exact_sums`), so merging in any order and grouping gives the same part, and
rebuilding a window gives the same part.

:class:`ConfidenceSums` (classifiers, for CBPE)
    Per served class, the sum of each class's calibrated probability over the rows served it:
    the window's expected confusion matrix, from which accuracy, precision, recall and F1 are
    exactly the CBPE's point estimates on the rows. For ROC AUC, per ranked class, the rows'
    count and calibrated-probability mass on fixed bins of the model's own score (the
    *calibration bins*): the AUC from bins counts two rows of one bin as a tie, so it is within
    ``roc_auc_bound`` of the rows' (half the within-bin pairs' share of all pairs). The sum of
    the served class's squared calibrated probability gives the accuracy's Poisson-binomial
    standard deviation. The calibrated probabilities come from the version's fitted
    estimator when the part is built: a rebaseline that refits it rebuilds these parts, as it
    rebuilds the histograms' bins.
:class:`LossSums` (regressors, for DLE)
    The sums of each row's expected absolute and squared error by each half's loss model and
    of their squares: exactly the moments :meth:`DirectLossEstimator.estimate_from_moments
    <loopwatch.performance.loss_estimation.DirectLossEstimator.estimate_from_moments>` reads,
    so the estimate of merged windows is the estimate of their rows.
:class:`~loopwatch.summaries.labels.LabelSums` (the label join)
    In :mod:`loopwatch.summaries.labels`: the realized side, from (prediction, label) pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.summaries.part import freeze_fields
from loopwatch.performance import kernels
from loopwatch.summaries.exact_sum import ExactSum, add_sums

if TYPE_CHECKING:
    from loopwatch.performance.loss_estimation import DirectLossEstimator
    from loopwatch.performance.realized import MetricValue

#: The calibration bins: equal-width bins of the model's score in [0, 1].
DEFAULT_SCORE_BINS = 100


def exact_sums(values: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 1) -> list[ExactSum]:
    """The exact sum of finite floats per group (``groups``: each value's group in ``[0, n_groups)``),
    as :class:`~loopwatch.summaries.exact_sum.ExactSum`: the same in any order and grouping.

    >>> [s.value for s in exact_sums(np.array([1e16, 1.0, -1e16]))]
    [1.0]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise InvalidInput("only finite values can be summed exactly")
    if groups is None:
        return [ExactSum.of(values)]
    return ExactSum.of_groups(values, groups, n_groups)


def sums_dict(values: Mapping[Any, ExactSum]) -> dict[str, str]:
    """Exact sums as JSON: keys and sums as text (:meth:`ExactSum.to_text`), in key order."""
    return {str(k): v.to_text() for k, v in sorted(values.items())}


def sums_of(data: Mapping[str, str]) -> dict[int, ExactSum]:
    """The inverse of :func:`sums_dict` for integer keys."""
    return {int(k): ExactSum.from_text(v) for k, v in data.items()}


def add_counts(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    """Two parts' counts per key, added, in key order."""
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return {key: out[key] for key in sorted(out)}


@dataclass(frozen=True)
class ConfidenceEstimate:
    """CBPE's point estimates from a window's sums; ``roc_auc`` within ``roc_auc_bound`` of the
    rows' value, and ``accuracy_sd`` the realized accuracy's standard deviation around ``accuracy``
    if the model is as calibrated as on its holdout."""

    n: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    roc_auc_bound: float
    accuracy_sd: float


@dataclass(frozen=True, kw_only=True)
class ConfidenceSums:
    """A classifier's calibrated-probability sums (see the module's notes). Size: ``k * k`` sums,
    plus at most ``2 * score_bins`` per ranked class (one class for two classes, ``k`` otherwise)."""

    n_classes: int
    #: The ranked class of two (CBPE's positive class); ``None``: every class is ranked (macro AUC).
    positive: int | None
    score_bins: int = DEFAULT_SCORE_BINS
    n: int = 0
    #: ``expected[(true, served)]``: the sum of calibrated P(true) over rows served ``served``.
    expected: Mapping[tuple[int, int], ExactSum] = field(default_factory=dict)
    #: The sum over rows of the served class's calibrated probability, squared.
    served_square: ExactSum = ExactSum()
    #: Per ranked class: rows per score bin, and their calibrated probability of that class.
    bin_counts: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    bin_mass: Mapping[int, Mapping[int, ExactSum]] = field(default_factory=dict)
    #: Per ranked class: the sum of ``q (1 - q)`` (a row is never paired with itself).
    self_pairs: Mapping[int, ExactSum] = field(default_factory=dict)

    def __post_init__(self) -> None:
        freeze_fields(self, "expected", "bin_counts", "bin_mass", "self_pairs")

    def ranked(self) -> list[int]:
        return [self.positive] if self.positive is not None else list(range(self.n_classes))

    @classmethod
    def empty(cls, *, n_classes: int, positive: int | None, score_bins: int = DEFAULT_SCORE_BINS) -> ConfidenceSums:
        return cls(n_classes=n_classes, positive=positive, score_bins=score_bins)

    @classmethod
    def from_rows(
        cls, proba: Any, calibrated: Any, served: Any, *, positive: int | None, score_bins: int = DEFAULT_SCORE_BINS
    ) -> ConfidenceSums:
        """The sums of a batch: the model's probabilities (ranked on), the estimator's calibrated
        probabilities, and each row's served class as an index (``ConfidenceBasedEstimator``'s
        ``calibrate`` and ``predict_indices``). ``positive``: the estimator's ``positive_index_``."""
        raw = np.asarray(proba, dtype=np.float64)
        q = np.asarray(calibrated, dtype=np.float64)
        served_index = np.asarray(served, dtype=np.int64)
        n, k = q.shape if q.ndim == 2 else (len(q), 0)
        if raw.shape != q.shape or served_index.shape != (n,) or k < 2:
            raise InvalidInput("proba and calibrated must be (rows, classes) of two or more classes, served one per row")
        if n and (served_index.min() < 0 or served_index.max() >= k):
            raise InvalidInput("a served class index is out of range")
        if score_bins < 1:
            raise InvalidInput("score_bins must be positive")
        if positive is not None and not 0 <= positive < k:
            raise InvalidInput(f"the positive class index {positive} is not one of {k} classes")
        cells = exact_sums(q, np.arange(k)[None, :] * k + served_index[:, None], k * k)
        expected = {(t, s): cells[t * k + s] for t in range(k) for s in range(k) if cells[t * k + s] != ExactSum()}
        served_square = exact_sums(q[np.arange(n), served_index] ** 2)[0]
        ranked = [positive] if positive is not None else list(range(k))
        counts: dict[int, dict[int, int]] = {}
        mass: dict[int, dict[int, ExactSum]] = {}
        pairs: dict[int, ExactSum] = {}
        for c in ranked:
            bins = np.clip((raw[:, c] * score_bins).astype(np.int64), 0, score_bins - 1)
            occupied, count = np.unique(bins, return_counts=True)
            per_bin = exact_sums(q[:, c], bins, score_bins)
            counts[c] = {int(b): int(m) for b, m in zip(occupied, count)}
            mass[c] = {int(b): per_bin[int(b)] for b in occupied}
            pairs[c] = exact_sums(q[:, c] * (1 - q[:, c]))[0]
        return ConfidenceSums(n_classes=k, positive=positive, score_bins=score_bins, n=n, expected=expected,
                              served_square=served_square, bin_counts=counts, bin_mass=mass, self_pairs=pairs)

    def merge(self, other: ConfidenceSums, /) -> ConfidenceSums:
        if (self.n_classes, self.positive, self.score_bins) != (other.n_classes, other.positive, other.score_bins):
            raise InvalidInput("confidence sums of different classes or score bins cannot merge")
        ranked = self.ranked()
        return ConfidenceSums(
            n_classes=self.n_classes, positive=self.positive, score_bins=self.score_bins, n=self.n + other.n,
            expected={key: v for key, v in add_sums(self.expected, other.expected).items() if v != ExactSum()},
            served_square=self.served_square.merge(other.served_square),
            bin_counts={c: add_counts(self.bin_counts.get(c, {}), other.bin_counts.get(c, {})) for c in ranked
                        if c in self.bin_counts or c in other.bin_counts},
            bin_mass={c: add_sums(self.bin_mass.get(c, {}), other.bin_mass.get(c, {})) for c in ranked
                      if c in self.bin_mass or c in other.bin_mass},
            self_pairs={c: self.self_pairs.get(c, ExactSum()).merge(other.self_pairs.get(c, ExactSum())) for c in ranked
                        if c in self.self_pairs or c in other.self_pairs},
        )

    def confusion(self) -> np.ndarray:
        """The expected confusion matrix ``[true, served]``."""
        k = self.n_classes
        out = np.zeros((k, k))
        for (t, s), value in self.expected.items():
            out[t, s] = value.value
        return out

    def estimate(self) -> ConfidenceEstimate:
        """CBPE's point estimates of the rows summarised (NaN where undefined)."""
        nan = math.nan
        if self.n == 0:
            return ConfidenceEstimate(0, nan, nan, nan, nan, nan, nan, nan)
        point = kernels.confusion_metrics(self.confusion()[None], self.positive)
        aucs, bounds = [], []
        for c in self.ranked():
            auc, bound = self._binned_auc(c)
            aucs.append(auc)
            bounds.append(bound)
        trace = sum((v.as_fraction() for (t, s), v in self.expected.items() if t == s), Fraction(0))
        variance = float(trace - self.served_square.as_fraction())
        return ConfidenceEstimate(
            n=self.n, accuracy=float(point["accuracy"][0]), precision=float(point["precision"][0]),
            recall=float(point["recall"][0]), f1=float(point["f1"][0]),
            roc_auc=float(np.mean(aucs)), roc_auc_bound=float(np.mean(bounds)),
            accuracy_sd=math.sqrt(max(variance, 0.0)) / self.n,
        )

    def _binned_auc(self, c: int) -> tuple[float, float]:
        """The soft AUC of class ``c`` with rows of one bin as ties, and how far the rows' can be."""
        bins = sorted(self.bin_counts.get(c, {}))
        positive = np.array([self.bin_mass[c][b].value for b in bins])
        negative = np.array([self.bin_counts[c][b] for b in bins], dtype=np.float64) - positive
        total_positive, total_negative = positive.sum(), negative.sum()
        self_pairs = self.self_pairs.get(c, ExactSum()).value
        pairs = total_positive * total_negative - self_pairs
        if not len(bins) or pairs <= 0:
            return math.nan, math.nan
        below = np.cumsum(negative) - negative
        wins = float((positive * (below + 0.5 * negative)).sum())
        # the rows' own order within a bin moves each of its distinct pairs by at most a half
        bound = 0.5 * max(float((positive * negative).sum()) - self_pairs, 0.0) / pairs
        return (wins - 0.5 * self_pairs) / pairs, bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes, "positive": self.positive, "score_bins": self.score_bins, "n": self.n,
            "expected": {f"{t},{s}": v.to_text() for (t, s), v in sorted(self.expected.items())},
            "served_square": self.served_square.to_text(),
            "bin_counts": {str(c): {str(b): m for b, m in sorted(v.items())} for c, v in self.bin_counts.items()},
            "bin_mass": {str(c): sums_dict(v) for c, v in self.bin_mass.items()},
            "self_pairs": sums_dict(self.self_pairs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceSums:
        def pair(key: str) -> tuple[int, int]:
            t, s = key.split(",")
            return int(t), int(s)

        return cls(
            n_classes=int(data["n_classes"]), positive=None if data["positive"] is None else int(data["positive"]),
            score_bins=int(data["score_bins"]), n=int(data["n"]),
            expected={pair(key): ExactSum.from_text(v) for key, v in data["expected"].items()},
            served_square=ExactSum.from_text(data["served_square"]),
            bin_counts={int(c): {int(b): int(m) for b, m in v.items()} for c, v in data["bin_counts"].items()},
            bin_mass={int(c): sums_of(v) for c, v in data["bin_mass"].items()},
            self_pairs=sums_of(data["self_pairs"]),
        )


#: The sums a :class:`LossSums` keeps, in order.
LOSS_SUMS = ("abs_first", "abs_second", "sq_first", "sq_second", "abs_square", "sq_square")


@dataclass(frozen=True, kw_only=True)
class LossSums:
    """A regressor's expected-loss sums for DLE (see the module's notes). Size: six sums.

    ``abs_first``/``abs_second``: each half's model's expected absolute errors; ``sq_*`` the
    same of the squared error; ``abs_square``/``sq_square``: the sums of the squares of the
    rows' averaged expected losses (for the intervals).
    """

    n: int = 0
    sums: Mapping[str, ExactSum] = field(default_factory=lambda: {name: ExactSum() for name in LOSS_SUMS})

    def __post_init__(self) -> None:
        freeze_fields(self, "sums")

    @classmethod
    def from_losses(
        cls, abs_first: Any, abs_second: Any, sq_first: Any, sq_second: Any
    ) -> LossSums:
        """The sums of a batch, from :meth:`DirectLossEstimator.row_losses
        <loopwatch.performance.loss_estimation.DirectLossEstimator.row_losses>`."""
        arrays = [np.asarray(a, dtype=np.float64) for a in (abs_first, abs_second, sq_first, sq_second)]
        n = len(arrays[0])
        if any(a.shape != (n,) for a in arrays):
            raise InvalidInput("the four loss arrays must be one value per row")
        absolute, squared = (arrays[0] + arrays[1]) / 2, (arrays[2] + arrays[3]) / 2
        values = [*arrays, absolute**2, squared**2]
        return cls(n=n, sums={name: exact_sums(v)[0] for name, v in zip(LOSS_SUMS, values)})

    def merge(self, other: LossSums, /) -> LossSums:
        return LossSums(n=self.n + other.n, sums={name: self.sums[name].merge(other.sums[name]) for name in LOSS_SUMS})

    def estimate(self, estimator: DirectLossEstimator, *, confidence: float = 0.95) -> dict[str, MetricValue]:
        """The DLE estimate of the rows summarised, by the estimator whose losses they are."""
        n = self.n
        total = {name: self.sums[name].as_fraction() for name in LOSS_SUMS}
        mean = {name: float(total[name] / n) if n else math.nan for name in LOSS_SUMS}
        half = Fraction(1, 2)
        return estimator.estimate_from_moments(
            n=n,
            mean_abs=float((total["abs_first"] + total["abs_second"]) * half / n) if n else math.nan,
            mean_abs_sq=mean["abs_square"],
            mean_sq=float((total["sq_first"] + total["sq_second"]) * half / n) if n else math.nan,
            mean_sq_sq=mean["sq_square"],
            apart_abs=mean["abs_first"] - mean["abs_second"],
            apart_sq=mean["sq_first"] - mean["sq_second"],
            confidence=confidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sums": {name: self.sums[name].to_text() for name in LOSS_SUMS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossSums:
        return cls(n=int(data["n"]), sums={name: ExactSum.from_text(data["sums"][name]) for name in LOSS_SUMS})
