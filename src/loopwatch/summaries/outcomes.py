"""What a window's outputs and labels add up to: estimation sums and label-join sums.

Three parts, each exact (sums of floats are kept exactly, as dyadic fractions, so merging
in any order and grouping gives the same part, and rebuilding a window gives the same part):

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
:class:`LabelSums` (the label join)
    From (prediction, label) pairs: the labelled count, the confusion counts of a classifier
    (so its realized accuracy, precision, recall and F1; with its probabilities, also log loss,
    Brier score and ECE exactly, and ROC AUC on the calibration bins within a stated bound:
    :class:`ScoredLabels`) or the sums of a regressor's errors,
    absolute errors, squared errors and relative errors (MAE, RMSE, MAPE), and the label
    delays on log-spaced bins (:mod:`~loopwatch.summaries.log_bins`).

**Late labels.** A label part is never added to: the summariser rebuilds a window's label
part from the join of that window's events with the labels known now (:meth:`LabelSums.from_pairs`
over all of them), and replaces the stored one. So a label that arrives twice, or corrects
an earlier one, counts once, with its latest value: rebuilding is idempotent. It is cheap:
the join reads one window's labelled events (the label store is indexed by the event's
request), and the part is a few counts and sums whatever the window's size. Day and week
parts are merged from the rebuilt base windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.performance import kernels
from loopwatch.summaries.log_bins import LogHistogram

if TYPE_CHECKING:
    from loopwatch.performance.loss_estimation import DirectLossEstimator
    from loopwatch.performance.realized import MetricValue

#: The calibration bins: equal-width bins of the model's score in [0, 1].
DEFAULT_SCORE_BINS = 100
_UNITS = 1074  # every finite float is a whole number of 2**-1074


def exact_sums(values: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 1) -> list[Fraction]:
    """The exact sum of finite floats per group (``groups``: each value's group in ``[0, n_groups)``).

    Every float is ``m * 2**e`` with an integer ``m`` below ``2**53``: the mantissas are added
    as integers per exponent (split into halves, so that int64 cannot overflow), and the
    totals are exact fractions, whatever the order of the values.

    >>> exact_sums(np.array([1e16, 1.0, -1e16]))
    [Fraction(1, 1)]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise InvalidInput("only finite values can be summed exactly")
    group = np.zeros(len(values), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64).ravel()
    out = [Fraction(0)] * n_groups
    if len(values) == 0:
        return out
    fraction, exponent = np.frexp(values)
    mantissa = np.ldexp(fraction, 53).astype(np.int64)  # exact: |fraction| < 1 has 53 bits
    shift = exponent.astype(np.int64) - 53 + _UNITS  # value = mantissa * 2**shift units of 2**-1074
    # subnormals: a negative shift drops only zero bits
    low_exponent = shift < 0
    mantissa[low_exponent] >>= -shift[low_exponent]
    shift[low_exponent] = 0
    high, low = mantissa >> 26, mantissa & ((1 << 26) - 1)
    key = group * 4096 + shift
    order = np.argsort(key, kind="stable")
    key, high, low = key[order], high[order], low[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    totals = [0] * n_groups
    # each half below 2**27: 2**36 values per block before int64 could overflow
    for k, h, lo in zip(key[starts], np.add.reduceat(high, starts), np.add.reduceat(low, starts)):
        g, s = divmod(int(k), 4096)
        totals[g] += ((int(h) << 26) + int(lo)) << s
    return [Fraction(t, 1 << _UNITS) for t in totals]


def _frac_dict(values: Mapping[Any, Fraction]) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(values.items())}


def _add(a: Mapping[int, Fraction], b: Mapping[int, Fraction]) -> dict[int, Fraction]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, Fraction(0)) + value
    return {key: out[key] for key in sorted(out)}


def _add_counts(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
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
    expected: Mapping[tuple[int, int], Fraction] = field(default_factory=dict)
    #: The sum over rows of the served class's calibrated probability, squared.
    served_square: Fraction = Fraction(0)
    #: Per ranked class: rows per score bin, and their calibrated probability of that class.
    bin_counts: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    bin_mass: Mapping[int, Mapping[int, Fraction]] = field(default_factory=dict)
    #: Per ranked class: the sum of ``q (1 - q)`` (a row is never paired with itself).
    self_pairs: Mapping[int, Fraction] = field(default_factory=dict)

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
        expected = {(t, s): cells[t * k + s] for t in range(k) for s in range(k) if cells[t * k + s] != 0}
        served_square = exact_sums(q[np.arange(n), served_index] ** 2)[0]
        ranked = [positive] if positive is not None else list(range(k))
        counts: dict[int, dict[int, int]] = {}
        mass: dict[int, dict[int, Fraction]] = {}
        pairs: dict[int, Fraction] = {}
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
            expected={key: v for key, v in _add_pairs(self.expected, other.expected).items() if v != 0},
            served_square=self.served_square + other.served_square,
            bin_counts={c: _add_counts(self.bin_counts.get(c, {}), other.bin_counts.get(c, {})) for c in ranked
                        if c in self.bin_counts or c in other.bin_counts},
            bin_mass={c: _add(self.bin_mass.get(c, {}), other.bin_mass.get(c, {})) for c in ranked
                      if c in self.bin_mass or c in other.bin_mass},
            self_pairs={c: self.self_pairs.get(c, Fraction(0)) + other.self_pairs.get(c, Fraction(0)) for c in ranked
                        if c in self.self_pairs or c in other.self_pairs},
        )

    def confusion(self) -> np.ndarray:
        """The expected confusion matrix ``[true, served]``."""
        k = self.n_classes
        out = np.zeros((k, k))
        for (t, s), value in self.expected.items():
            out[t, s] = float(value)
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
        trace = sum((v for (t, s), v in self.expected.items() if t == s), Fraction(0))
        variance = float(trace - self.served_square)
        return ConfidenceEstimate(
            n=self.n, accuracy=float(point["accuracy"][0]), precision=float(point["precision"][0]),
            recall=float(point["recall"][0]), f1=float(point["f1"][0]),
            roc_auc=float(np.mean(aucs)), roc_auc_bound=float(np.mean(bounds)),
            accuracy_sd=math.sqrt(max(variance, 0.0)) / self.n,
        )

    def _binned_auc(self, c: int) -> tuple[float, float]:
        """The soft AUC of class ``c`` with rows of one bin as ties, and how far the rows' can be."""
        bins = sorted(self.bin_counts.get(c, {}))
        positive = np.array([float(self.bin_mass[c][b]) for b in bins])
        negative = np.array([self.bin_counts[c][b] for b in bins], dtype=np.float64) - positive
        total_positive, total_negative = positive.sum(), negative.sum()
        self_pairs = float(self.self_pairs.get(c, Fraction(0)))
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
            "expected": {f"{t},{s}": str(v) for (t, s), v in sorted(self.expected.items())},
            "served_square": str(self.served_square),
            "bin_counts": {str(c): {str(b): m for b, m in sorted(v.items())} for c, v in self.bin_counts.items()},
            "bin_mass": {str(c): _frac_dict(v) for c, v in self.bin_mass.items()},
            "self_pairs": _frac_dict(self.self_pairs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceSums:
        def pair(key: str) -> tuple[int, int]:
            t, s = key.split(",")
            return int(t), int(s)

        return cls(
            n_classes=int(data["n_classes"]), positive=None if data["positive"] is None else int(data["positive"]),
            score_bins=int(data["score_bins"]), n=int(data["n"]),
            expected={pair(key): Fraction(v) for key, v in data["expected"].items()},
            served_square=Fraction(data["served_square"]),
            bin_counts={int(c): {int(b): int(m) for b, m in v.items()} for c, v in data["bin_counts"].items()},
            bin_mass={int(c): {int(b): Fraction(m) for b, m in v.items()} for c, v in data["bin_mass"].items()},
            self_pairs={int(c): Fraction(v) for c, v in data["self_pairs"].items()},
        )


def _add_pairs(
    a: Mapping[tuple[int, int], Fraction], b: Mapping[tuple[int, int], Fraction]
) -> dict[tuple[int, int], Fraction]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, Fraction(0)) + value
    return {key: out[key] for key in sorted(out)}


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
    sums: Mapping[str, Fraction] = field(default_factory=lambda: {name: Fraction(0) for name in LOSS_SUMS})

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
        return LossSums(n=self.n + other.n, sums={name: self.sums[name] + other.sums[name] for name in LOSS_SUMS})

    def estimate(self, estimator: DirectLossEstimator, *, confidence: float = 0.95) -> dict[str, MetricValue]:
        """The DLE estimate of the rows summarised, by the estimator whose losses they are."""
        n = self.n
        mean = {name: float(self.sums[name] / n) if n else math.nan for name in LOSS_SUMS}
        half = Fraction(1, 2)
        return estimator.estimate_from_moments(
            n=n,
            mean_abs=float((self.sums["abs_first"] + self.sums["abs_second"]) * half / n) if n else math.nan,
            mean_abs_sq=mean["abs_square"],
            mean_sq=float((self.sums["sq_first"] + self.sums["sq_second"]) * half / n) if n else math.nan,
            mean_sq_sq=mean["sq_square"],
            apart_abs=mean["abs_first"] - mean["abs_second"],
            apart_sq=mean["sq_first"] - mean["sq_second"],
            confidence=confidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sums": {name: str(self.sums[name]) for name in LOSS_SUMS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossSums:
        return cls(n=int(data["n"]), sums={name: Fraction(data["sums"][name]) for name in LOSS_SUMS})


@dataclass(frozen=True, kw_only=True)
class ScoredLabels:
    """A classifier's labelled rows with its probabilities: what realized AUC, log loss, Brier
    score and ECE add up from. Log loss and Brier are exact sums; the ECE's per-bin sums use
    the realized metrics' own bins, so it is exact too; the AUC counts two rows of one score
    bin as a tie, within ``roc_auc_bound`` of the rows' (half the within-bin pairs' share).
    Size: ``2 * ECE_BINS`` sums and at most ``2 * score_bins`` counts per ranked class.
    """

    n_classes: int
    positive: int | None
    score_bins: int = DEFAULT_SCORE_BINS
    n: int = 0
    log_loss: Fraction = Fraction(0)
    brier: Fraction = Fraction(0)
    #: Per ECE bin: the sum of outcomes and of confidences.
    ece_outcome: Mapping[int, Fraction] = field(default_factory=dict)
    ece_confidence: Mapping[int, Fraction] = field(default_factory=dict)
    #: Per ranked class, per score bin: rows of that class, and rows of another.
    positives: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    negatives: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    def ranked(self) -> list[int]:
        return [self.positive] if self.positive is not None else list(range(self.n_classes))

    @classmethod
    def from_rows(cls, proba: Any, truth: Sequence[int], *, positive: int | None,
                  score_bins: int = DEFAULT_SCORE_BINS) -> ScoredLabels:
        from loopwatch.performance.realized import ECE_BINS

        p = np.asarray(proba, dtype=np.float64)
        y = np.asarray(truth, dtype=np.int64)
        n = len(y)
        if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 2 or not np.isfinite(p).all():
            raise InvalidInput("proba must be finite, one row per label and one column per class")
        k = p.shape[1]
        if k == 2 and positive is None:
            positive = 1  # as the realized metrics read two classes by default
        if positive is not None and not (k == 2 and 0 <= positive < 2):
            raise InvalidInput("positive applies to two classes, as an index 0 or 1")
        if n and (y.min() < 0 or y.max() >= k):
            raise InvalidInput("a label is not one of the probability columns")
        rows, eps = np.arange(n), np.finfo(np.float64).eps
        onehot = np.eye(k)[y]
        if positive is not None:
            brier = (p[:, positive] - onehot[:, positive]) ** 2
            confidence, outcome = p[:, positive], onehot[:, positive]
        else:
            brier = ((p - onehot) ** 2).sum(axis=1)
            confidence, outcome = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
        # the realized metrics' ECE bins (right-closed, as scikit-learn's calibration curve)
        ece_bin = np.searchsorted(np.linspace(0, 1, ECE_BINS + 1)[1:-1], confidence)
        outcome_sums = exact_sums(outcome, ece_bin, ECE_BINS)
        confidence_sums = exact_sums(confidence, ece_bin, ECE_BINS)
        occupied = sorted({int(b) for b in ece_bin})
        positives: dict[int, dict[int, int]] = {}
        negatives: dict[int, dict[int, int]] = {}
        for c in [positive] if positive is not None else range(k):
            bins = np.clip((p[:, c] * score_bins).astype(np.int64), 0, score_bins - 1)
            is_c = y == c
            positives[c] = {int(b): int(m) for b, m in zip(*np.unique(bins[is_c], return_counts=True))}
            negatives[c] = {int(b): int(m) for b, m in zip(*np.unique(bins[~is_c], return_counts=True))}
        return cls(
            n_classes=k, positive=positive, score_bins=score_bins, n=n,
            log_loss=exact_sums(-np.log(np.clip(p[rows, y], eps, 1 - eps)))[0], brier=exact_sums(brier)[0],
            ece_outcome={b: outcome_sums[b] for b in occupied}, ece_confidence={b: confidence_sums[b] for b in occupied},
            positives=positives, negatives=negatives,
        )

    def merge(self, other: ScoredLabels, /) -> ScoredLabels:
        if (self.n_classes, self.positive, self.score_bins) != (other.n_classes, other.positive, other.score_bins):
            raise InvalidInput("scored labels of different classes or score bins cannot merge")
        ranked = self.ranked()
        return ScoredLabels(
            n_classes=self.n_classes, positive=self.positive, score_bins=self.score_bins, n=self.n + other.n,
            log_loss=self.log_loss + other.log_loss, brier=self.brier + other.brier,
            ece_outcome=_add(self.ece_outcome, other.ece_outcome),
            ece_confidence=_add(self.ece_confidence, other.ece_confidence),
            positives={c: _add_counts(self.positives.get(c, {}), other.positives.get(c, {})) for c in ranked},
            negatives={c: _add_counts(self.negatives.get(c, {}), other.negatives.get(c, {})) for c in ranked},
        )

    def metrics(self) -> dict[str, float]:
        """Realized ROC AUC (with ``roc_auc_bound``), log loss, Brier score and ECE."""
        if self.n == 0:
            return {name: math.nan for name in ("roc_auc", "roc_auc_bound", "log_loss", "brier", "ece")}
        aucs, bounds = [], []
        for c in self.ranked():
            bins = sorted(set(self.positives.get(c, {})) | set(self.negatives.get(c, {})))
            pos = np.array([self.positives[c].get(b, 0) for b in bins], dtype=np.float64)
            neg = np.array([self.negatives[c].get(b, 0) for b in bins], dtype=np.float64)
            pairs = pos.sum() * neg.sum()
            if pairs == 0:
                aucs.append(math.nan)
                bounds.append(math.nan)
                continue
            below = np.cumsum(neg) - neg
            aucs.append(float((pos * (below + 0.5 * neg)).sum() / pairs))
            bounds.append(float(0.5 * (pos * neg).sum() / pairs))
        gap = sum((abs(self.ece_outcome[b] - self.ece_confidence[b]) for b in self.ece_outcome), Fraction(0))
        return {
            "roc_auc": float(np.mean(aucs)), "roc_auc_bound": float(np.mean(bounds)),
            "log_loss": float(self.log_loss / self.n), "brier": float(self.brier / self.n),
            "ece": float(gap / self.n),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes, "positive": self.positive, "score_bins": self.score_bins, "n": self.n,
            "log_loss": str(self.log_loss), "brier": str(self.brier),
            "ece_outcome": _frac_dict(self.ece_outcome), "ece_confidence": _frac_dict(self.ece_confidence),
            "positives": {str(c): {str(b): m for b, m in v.items()} for c, v in self.positives.items()},
            "negatives": {str(c): {str(b): m for b, m in v.items()} for c, v in self.negatives.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredLabels:
        def counts(value: Mapping[str, Mapping[str, int]]) -> dict[int, dict[int, int]]:
            return {int(c): {int(b): int(m) for b, m in v.items()} for c, v in value.items()}

        return cls(
            n_classes=int(data["n_classes"]), positive=None if data["positive"] is None else int(data["positive"]),
            score_bins=int(data["score_bins"]), n=int(data["n"]), log_loss=Fraction(data["log_loss"]),
            brier=Fraction(data["brier"]),
            ece_outcome={int(b): Fraction(v) for b, v in data["ece_outcome"].items()},
            ece_confidence={int(b): Fraction(v) for b, v in data["ece_confidence"].items()},
            positives=counts(data["positives"]), negatives=counts(data["negatives"]),
        )


#: The sums a regressor's :class:`LabelSums` keeps.
ERROR_SUMS = ("error", "absolute", "squared", "relative")


@dataclass(frozen=True, kw_only=True)
class LabelSums:
    """A window's label join as counts and sums (see the module's notes on late labels).

    Classifiers: ``confusion[(true, served)]`` counts, by class index. Regressors: the exact sums
    of errors (prediction minus truth), absolute, squared and relative errors (over rows whose
    truth is not zero, counted in ``n_relative``). ``delay``: label delays in whole seconds.
    Size: ``k * k`` counts or four sums, and at most a few hundred delay bins.
    """

    task: str
    n: int = 0
    confusion: Mapping[tuple[int, int], int] = field(default_factory=dict)
    errors: Mapping[str, Fraction] = field(default_factory=dict)
    n_relative: int = 0
    delay: LogHistogram = field(default_factory=LogHistogram)
    #: A classifier's probabilities, when the join carried them (see :class:`ScoredLabels`).
    scored: ScoredLabels | None = None

    def __post_init__(self) -> None:
        if self.scored is not None and self.scored.n != self.n:
            raise InvalidInput("every labelled row of a scored label part needs its probabilities")
        if self.task not in ("classification", "regression"):
            raise InvalidInput(f"task must be classification or regression, got {self.task!r}")

    @classmethod
    def from_pairs(
        cls, *, task: str, predicted: Sequence[Any], truth: Sequence[Any], delay_seconds: Sequence[float],
        classes: Sequence[Any] = (), proba: Any = None, positive: int | None = None,
        score_bins: int = DEFAULT_SCORE_BINS,
    ) -> LabelSums:
        """The part of a window's whole label join: each labelled event's served prediction, its
        label (the latest, for a corrected one), and how long the label took; for a classifier,
        optionally its probabilities (one column per class; ``positive``: the class index whose
        probability the AUC, Brier score and ECE read, as in
        :func:`~loopwatch.performance.realized.classification_metrics`)."""
        n = len(truth)
        if len(predicted) != n or len(delay_seconds) != n:
            raise InvalidInput("predicted, truth and delay_seconds must have one entry per labelled event")
        delays = np.asarray(delay_seconds, dtype=np.float64)
        if n and (not np.isfinite(delays).all() or delays.min() < 0):
            raise InvalidInput("a label delay must be a finite, non-negative number of seconds")
        delay = LogHistogram.from_values(np.floor(delays).astype(np.int64))
        if task == "classification":
            index = {label: i for i, label in enumerate(classes)}
            try:
                cells = [(index[t], index[p]) for t, p in zip(truth, predicted)]
            except KeyError as exc:
                raise InvalidInput(f"a label or prediction is not one of the classes: {exc.args[0]!r}") from exc
            confusion: dict[tuple[int, int], int] = {}
            for cell in cells:
                confusion[cell] = confusion.get(cell, 0) + 1
            scored = None
            if proba is not None:
                scored = ScoredLabels.from_rows(proba, [t for t, _ in cells], positive=positive, score_bins=score_bins)
            return cls(task=task, n=n, confusion=dict(sorted(confusion.items())), delay=delay, scored=scored)
        y = np.asarray(truth, dtype=np.float64)
        error = np.asarray(predicted, dtype=np.float64) - y
        counted = y != 0
        relative = np.zeros(n)
        np.divide(np.abs(error), np.abs(y), out=relative, where=counted)
        sums = {name: exact_sums(v)[0] for name, v in zip(ERROR_SUMS, (error, np.abs(error), error**2, relative))}
        return cls(task=task, n=n, errors=sums, n_relative=int(counted.sum()), delay=delay)

    def merge(self, other: LabelSums, /) -> LabelSums:
        if self.task != other.task:
            raise InvalidInput("label sums of a classifier and a regressor cannot merge")
        confusion = dict(self.confusion)
        for cell, count in other.confusion.items():
            confusion[cell] = confusion.get(cell, 0) + count
        errors = {name: self.errors.get(name, Fraction(0)) + other.errors.get(name, Fraction(0))
                  for name in ERROR_SUMS if name in self.errors or name in other.errors}
        if (self.scored is None) != (other.scored is None) and self.n and other.n:
            raise InvalidInput("a label part with probabilities and one without cannot merge")
        scored = self.scored if other.scored is None else other.scored if self.scored is None else \
            self.scored.merge(other.scored)
        return LabelSums(task=self.task, n=self.n + other.n, confusion=dict(sorted(confusion.items())),
                         errors=errors, n_relative=self.n_relative + other.n_relative,
                         delay=self.delay.merge(other.delay), scored=scored)

    def metrics(self, *, n_classes: int = 0, positive: int | None = None) -> dict[str, float]:
        """The realized metrics of the labelled rows: accuracy, precision, recall and F1 of a
        classifier (``positive`` as in CBPE; ``None``: macro), MAE, RMSE and MAPE of a regressor."""
        nan = math.nan
        if self.task == "classification":
            k = max([n_classes, *(max(cell) + 1 for cell in self.confusion)])
            cm = np.zeros((1, k, k))
            for (t, p), count in self.confusion.items():
                cm[0, t, p] = count
            if self.n == 0:
                return {name: nan for name in ("accuracy", "precision", "recall", "f1")}
            out = {name: float(v[0]) for name, v in kernels.confusion_metrics(cm, positive).items()}
            return out | (self.scored.metrics() if self.scored is not None else {})
        if self.n == 0:
            return {"mae": nan, "rmse": nan, "mape": nan}
        return {
            "mae": float(self.errors["absolute"] / self.n),
            "rmse": math.sqrt(self.errors["squared"] / self.n),
            "mape": float(self.errors["relative"] / self.n_relative) if self.n_relative else nan,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "n": self.n,
            "confusion": {f"{t},{p}": c for (t, p), c in sorted(self.confusion.items())},
            "errors": {name: str(v) for name, v in self.errors.items()},
            "n_relative": self.n_relative, "delay": self.delay.to_dict(),
            "scored": None if self.scored is None else self.scored.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSums:
        def cell(key: str) -> tuple[int, int]:
            t, p = key.split(",")
            return int(t), int(p)

        return cls(
            task=str(data["task"]), n=int(data["n"]),
            confusion={cell(key): int(c) for key, c in data["confusion"].items()},
            errors={name: Fraction(v) for name, v in data["errors"].items()},
            n_relative=int(data["n_relative"]), delay=LogHistogram.from_dict(data["delay"]),
            scored=None if data.get("scored") is None else ScoredLabels.from_dict(data["scored"]),
        )
