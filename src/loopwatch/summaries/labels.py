"""What a window's labels add up to: the label join as counts and sums.

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
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import reduce
from typing import Any, Mapping, Sequence

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.summaries.part import freeze_fields
from loopwatch.performance import kernels
from loopwatch.summaries.log_bins import LogHistogram
from loopwatch.summaries.exact_sum import ExactSum, add_sums
from loopwatch.summaries.outcomes import add_counts, exact_sums, sums_dict, sums_of


#: A day in microseconds: label arrivals are kept per UTC day.
DAY_US = 86_400 * 10**6

#: The realized AUC's score bins: ten times finer than the calibration bins, because the binned
#: AUC's bound (half the share of pairs in one bin) falls with the bins' width, and the bound
#: widens the AUC's interval (:mod:`~loopwatch.summaries.label_intervals`). At 100 bins it was
#: 0.015 on flights' scores and made AUC intervals 3 to 6% wider than DeLong's on the rows; at
#: 1,000 it is a tenth of that, and the intervals within 1%. A window keeps at most one count
#: per occupied bin and class, never more than its labelled rows.
RANK_SCORE_BINS = 1000


@dataclass(frozen=True, kw_only=True)
class ScoredLabels:
    """A classifier's labelled rows with its probabilities: what realized AUC, log loss, Brier
    score and ECE add up from. Log loss and Brier are exact sums; the ECE's per-bin sums use
    the realized metrics' own bins, so it is exact too; the AUC counts two rows of one score
    bin as a tie, within ``roc_auc_bound`` of the rows' (half the within-bin pairs' share).
    Size: ``2 * ECE_BINS`` sums and at most ``2 * score_bins`` counts per ranked class. Parts of
    different score bins merge on the coarser, when it divides the finer (parts stored before
    the bins were refined have 100).
    """

    n_classes: int
    positive: int | None
    score_bins: int = RANK_SCORE_BINS
    n: int = 0
    log_loss: ExactSum = ExactSum()
    brier: ExactSum = ExactSum()
    #: Per ECE bin: the sum of outcomes and of confidences.
    ece_outcome: Mapping[int, ExactSum] = field(default_factory=dict)
    ece_confidence: Mapping[int, ExactSum] = field(default_factory=dict)
    #: Per ranked class, per score bin: rows of that class, and rows of another.
    positives: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    negatives: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a class with no rows in either map is no entry: one form for the empty part, however built
        for name in ("positives", "negatives"):
            object.__setattr__(self, name, {c: v for c, v in getattr(self, name).items() if v})
        freeze_fields(self, "ece_outcome", "ece_confidence", "positives", "negatives")

    def ranked(self) -> list[int]:
        return [self.positive] if self.positive is not None else list(range(self.n_classes))

    @classmethod
    def from_rows(cls, proba: Any, truth: Sequence[int], *, positive: int | None,
                  score_bins: int = RANK_SCORE_BINS) -> ScoredLabels:
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

    def coarsened(self, score_bins: int) -> ScoredLabels:
        """The same rows on ``score_bins`` score bins, which must divide this part's: each
        coarse bin holds whole fine bins, so the counts stay exact."""
        if score_bins == self.score_bins:
            return self
        if score_bins < 1 or self.score_bins % score_bins:
            raise InvalidInput(f"{self.score_bins} score bins cannot be coarsened to {score_bins}")
        step = self.score_bins // score_bins

        def coarse(counts: Mapping[int, Mapping[int, int]]) -> dict[int, dict[int, int]]:
            out: dict[int, dict[int, int]] = {}
            for c, per_bin in counts.items():
                merged: dict[int, int] = {}
                for b, m in per_bin.items():
                    merged[b // step] = merged.get(b // step, 0) + m
                out[c] = dict(sorted(merged.items()))
            return out

        return replace(self, score_bins=score_bins, positives=coarse(self.positives), negatives=coarse(self.negatives))

    def merge(self, other: ScoredLabels, /) -> ScoredLabels:
        if (self.n_classes, self.positive) != (other.n_classes, other.positive):
            raise InvalidInput("scored labels of different classes cannot merge")
        if self.score_bins != other.score_bins:
            bins = min(self.score_bins, other.score_bins)
            if max(self.score_bins, other.score_bins) % bins:
                raise InvalidInput("scored labels whose score bins do not nest cannot merge")
            return self.coarsened(bins).merge(other.coarsened(bins))
        ranked = self.ranked()
        return ScoredLabels(
            n_classes=self.n_classes, positive=self.positive, score_bins=self.score_bins, n=self.n + other.n,
            log_loss=self.log_loss.merge(other.log_loss), brier=self.brier.merge(other.brier),
            ece_outcome=add_sums(self.ece_outcome, other.ece_outcome),
            ece_confidence=add_sums(self.ece_confidence, other.ece_confidence),
            positives={c: add_counts(self.positives.get(c, {}), other.positives.get(c, {})) for c in ranked},
            negatives={c: add_counts(self.negatives.get(c, {}), other.negatives.get(c, {})) for c in ranked},
        )

    def metrics(self) -> dict[str, float]:
        """Realized ROC AUC (with ``roc_auc_bound``), log loss, Brier score and ECE."""
        if self.n == 0:
            return {name: math.nan for name in ("roc_auc", "roc_auc_bound", "log_loss", "brier", "ece")}
        aucs, bounds = [], []
        for c in self.ranked():
            bins = sorted(set(self.positives.get(c, {})) | set(self.negatives.get(c, {})))
            pos = np.array([self.positives.get(c, {}).get(b, 0) for b in bins], dtype=np.float64)
            neg = np.array([self.negatives.get(c, {}).get(b, 0) for b in bins], dtype=np.float64)
            pairs = pos.sum() * neg.sum()
            if pairs == 0:
                aucs.append(math.nan)
                bounds.append(math.nan)
                continue
            below = np.cumsum(neg) - neg
            aucs.append(float((pos * (below + 0.5 * neg)).sum() / pairs))
            bounds.append(float(0.5 * (pos * neg).sum() / pairs))
        gap = sum((abs(self.ece_outcome[b].as_fraction() - self.ece_confidence[b].as_fraction())
                   for b in self.ece_outcome), Fraction(0))
        return {
            "roc_auc": float(np.mean(aucs)), "roc_auc_bound": float(np.mean(bounds)),
            "log_loss": float(self.log_loss.as_fraction() / self.n), "brier": float(self.brier.as_fraction() / self.n),
            "ece": float(gap / self.n),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_classes": self.n_classes, "positive": self.positive, "score_bins": self.score_bins, "n": self.n,
            "log_loss": self.log_loss.to_text(), "brier": self.brier.to_text(),
            "ece_outcome": sums_dict(self.ece_outcome), "ece_confidence": sums_dict(self.ece_confidence),
            "positives": {str(c): {str(b): m for b, m in v.items()} for c, v in self.positives.items()},
            "negatives": {str(c): {str(b): m for b, m in v.items()} for c, v in self.negatives.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredLabels:
        def counts(value: Mapping[str, Mapping[str, int]]) -> dict[int, dict[int, int]]:
            return {int(c): {int(b): int(m) for b, m in v.items()} for c, v in value.items()}

        return cls(
            n_classes=int(data["n_classes"]), positive=None if data["positive"] is None else int(data["positive"]),
            score_bins=int(data["score_bins"]), n=int(data["n"]), log_loss=ExactSum.from_text(data["log_loss"]),
            brier=ExactSum.from_text(data["brier"]),
            ece_outcome=sums_of(data["ece_outcome"]), ece_confidence=sums_of(data["ece_confidence"]),
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
    errors: Mapping[str, ExactSum] = field(default_factory=dict)
    n_relative: int = 0
    delay: LogHistogram = field(default_factory=LogHistogram)
    #: A classifier's probabilities, when the join carried them (see :class:`ScoredLabels`).
    scored: ScoredLabels | None = None
    #: The same join split by the UTC day its labels became known on (the microseconds of the
    #: day's start): what was known at the end of each day, so that the label evidence is dated
    #: as its labels came. Empty for a part built without the split (its evidence is dated by
    #: its largest delay).
    arrivals: Mapping[int, LabelSums] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scored is not None and self.scored.n != self.n:
            raise InvalidInput("every labelled row of a scored label part needs its probabilities")
        if self.task not in ("classification", "regression"):
            raise InvalidInput(f"task must be classification or regression, got {self.task!r}")
        if self.arrivals and (sum(a.n for a in self.arrivals.values()) != self.n
                              or any(a.arrivals for a in self.arrivals.values())):
            raise InvalidInput("the days labels arrived on must split the whole join, one level deep")
        freeze_fields(self, "confusion", "errors", "arrivals")

    def with_arrivals(self, arrivals: Mapping[int, LabelSums]) -> LabelSums:
        """This part with its split by arrival day (see :attr:`arrivals`)."""
        return replace(self, arrivals=dict(sorted(arrivals.items())))

    def known_by(self, moment_us: int) -> LabelSums | None:
        """The part of the labels that arrived on days ending by ``moment_us`` (``None``: none)."""
        seen = [part for day, part in self.arrivals.items() if day + DAY_US <= moment_us]
        return None if not seen else reduce(LabelSums.merge, seen)

    @classmethod
    def from_pairs(
        cls, *, task: str, predicted: Sequence[Any], truth: Sequence[Any], delay_seconds: Sequence[float],
        classes: Sequence[Any] = (), proba: Any = None, positive: int | None = None,
        score_bins: int = RANK_SCORE_BINS,
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
        errors = {name: self.errors.get(name, ExactSum()).merge(other.errors.get(name, ExactSum()))
                  for name in ERROR_SUMS if name in self.errors or name in other.errors}
        if (self.scored is None) != (other.scored is None) and self.n and other.n:
            raise InvalidInput("a label part with probabilities and one without cannot merge")
        scored = self.scored if other.scored is None else other.scored if self.scored is None else \
            self.scored.merge(other.scored)
        # the split by arrival day merges day by day; a part without it leaves the merge without it
        arrivals: dict[int, LabelSums] = {}
        if (self.arrivals or not self.n) and (other.arrivals or not other.n):
            arrivals = dict(self.arrivals)
            for day, part in other.arrivals.items():
                arrivals[day] = arrivals[day].merge(part) if day in arrivals else part
        return LabelSums(task=self.task, n=self.n + other.n, confusion=dict(sorted(confusion.items())),
                         errors=errors, n_relative=self.n_relative + other.n_relative,
                         delay=self.delay.merge(other.delay), scored=scored, arrivals=dict(sorted(arrivals.items())))

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
            "mae": float(self.errors["absolute"].as_fraction() / self.n),
            "rmse": math.sqrt(self.errors["squared"].as_fraction() / self.n),
            "mape": float(self.errors["relative"].as_fraction() / self.n_relative) if self.n_relative else nan,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "n": self.n,
            "confusion": {f"{t},{p}": c for (t, p), c in sorted(self.confusion.items())},
            "errors": {name: v.to_text() for name, v in self.errors.items()},
            "n_relative": self.n_relative, "delay": self.delay.to_dict(),
            "scored": None if self.scored is None else self.scored.to_dict(),
        } | ({"arrivals": {str(day): part.to_dict() for day, part in self.arrivals.items()}} if self.arrivals else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSums:
        def cell(key: str) -> tuple[int, int]:
            t, p = key.split(",")
            return int(t), int(p)

        return cls(
            task=str(data["task"]), n=int(data["n"]),
            confusion={cell(key): int(c) for key, c in data["confusion"].items()},
            errors={name: ExactSum.from_text(v) for name, v in data["errors"].items()},
            n_relative=int(data["n_relative"]), delay=LogHistogram.from_dict(data["delay"]),
            scored=None if data.get("scored") is None else ScoredLabels.from_dict(data["scored"]),
            arrivals={int(day): cls.from_dict(part) for day, part in (data.get("arrivals") or {}).items()},
        )
