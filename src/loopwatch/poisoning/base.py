"""What every poisoning screen shares: its result, the feature matrix, and thresholds.

A screen scores each row of a training table for suspicion, sets a threshold
with a stated false-positive rate on clean data, and flags the rows above it
with a reason. Screens are pure functions of numpy arrays (and a table for
the feature encoding); nothing here touches a store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.schema import category_label

if TYPE_CHECKING:  # the drift package imports scikit-learn: only when encoding
    from loopwatch.drift.encoding import FeatureEncoder

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Fewest suspicious rows that can show a table holds poison: a real table's few most surprising
#: rows are where any model's calibration is worst, and a handful of rows is no evidence of an attack.
MIN_EXCESS_ROWS = 8
#: ... and fewest as a share of the table: on 55,000 genuine departures the 8 most surprising
#: labels were 5 times what a logistic model expects, its 32 most surprising 1.5 times, its 256
#: as many. A model's extreme tail is where it is least calibrated, and the larger the table the
#: more extreme its few most surprising rows.
MIN_EXCESS_SHARE = 0.0005
#: Largest share of the most suspicious rows that clean data may explain for a table to hold poison.
MAX_NOISE_SHARE = 0.25
#: Most rows any screen's logistic regression is fitted on: a seeded sample beyond it. A model of a
#: few dozen one-hot columns is as good from 20,000 rows as from 200,000, and a fit costs its rows.
MAX_FIT_ROWS = 20_000


def fit_sample(rows: NDArray[np.int64], *, seed: int) -> NDArray[np.int64]:
    """``rows`` if there are at most :data:`MAX_FIT_ROWS` of them, else a seeded sample of that many (sorted)."""
    if rows.size <= MAX_FIT_ROWS:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, MAX_FIT_ROWS, replace=False))


@dataclass(frozen=True, kw_only=True)
class ScreenResult:
    """One screen's verdict on every row of a table, in row order."""

    #: The screen's name, as listed in ``screened_by``.
    name: str
    #: Suspicion per row; higher is more suspicious (NaN where the screen has no score).
    scores: FloatArray
    #: True for the rows the screen sets aside.
    flagged: BoolArray
    #: The reason of each flagged row (``None`` for the others).
    reasons: tuple[str | None, ...]
    #: Scores above this are flagged (``None`` for screens that flag by a test, not a score).
    threshold: float | None = None
    #: The false-positive rate the threshold is calibrated to on clean data (or the
    #: family-wise error rate of a screen that flags by a test).
    fpr: float | None = None
    #: What the screen found besides the rows (tested sources, patterns, ...), JSON-ready.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_rows": int(self.flagged.size),
            "n_flagged": self.n_flagged,
            "threshold": self.threshold,
            "fpr": self.fpr,
            **self.details,
        }


def check_rate(value: float, name: str) -> float:
    """A share in (0, 1), or InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise InvalidInput(f"{name} must be a share in (0, 1), got {echo(value)}")
    return float(value)


def encode_features(
    frame: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    fit_on: pd.DataFrame | None = None,
) -> tuple[FloatArray, FeatureEncoder]:
    """``frame`` as a float matrix: numeric features standardised, categoricals one-hot.

    The encoder is fitted on ``fit_on`` (the trusted reference, when there is
    one) or else on ``frame`` itself; see :class:`loopwatch.drift.encoding.FeatureEncoder`.
    """
    from loopwatch.drift.encoding import FeatureEncoder

    if not numeric and not categorical:
        raise InvalidInput("the screens need at least one feature")
    encoder = FeatureEncoder.fit(fit_on if fit_on is not None else frame, numeric=numeric, categorical=categorical)
    return encoder.transform(frame), encoder


def with_missing_flags(
    x: FloatArray, frame: pd.DataFrame, numeric: Sequence[str], *, like: pd.DataFrame | None = None
) -> FloatArray:
    """``x`` and a 0/1 column per numeric feature with missing values in ``frame`` (1: missing).

    ``like``: the columns are those of the features with missing values in ``like`` instead
    (a reference encoded as the table it is compared with).

    The encoding fills a missing number with the median, which hides what real tables say with
    a null: a cancelled flight has no air time, and is late. A model that cannot see the null
    is sure such rows are on time, and calls their honest labels flips.
    """
    which = frame if like is None else like
    flags = [frame[name].isna().to_numpy(dtype=np.float64) for name in numeric if which[name].isna().any()]
    return np.column_stack([x, *flags]) if flags else x


def class_codes(labels: Sequence[Any]) -> tuple[NDArray[np.int64], list[str]]:
    """Labels as integer codes and the class names (labels by their text, sorted; ``1.0`` is ``"1"``)."""
    texts = [category_label(v) for v in labels]
    classes = sorted(set(texts))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[t] for t in texts], dtype=np.int64), classes


def out_of_fold_probabilities(
    x: FloatArray, codes: NDArray[np.int64], n_classes: int, *, n_folds: int = 5, seed: int = 0
) -> FloatArray:
    """Each row's class probabilities from a model that never saw the row.

    A logistic regression on the encoded features, fitted ``n_folds`` times
    (stratified, seeded). Rows of a class too small for the folds get the
    class shares of the other rows. Logistic regression is chosen for its
    calibration: the flip screen's threshold assumes the probabilities are
    calibrated (see :func:`null_threshold`). Each fold fits on at most
    :data:`MAX_FIT_ROWS` of its rows (a seeded sample) and scores all its held-out rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(codes, minlength=n_classes)
    folds = int(min(n_folds, counts[counts > 0].min()))
    proba = np.tile(counts / counts.sum(), (len(codes), 1)).astype(np.float64)
    if folds < 2 or (counts > 0).sum() < 2:
        return proba
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (whole_fold, held_out) in enumerate(splitter.split(x, codes)):
        fit_rows = fit_sample(whole_fold, seed=seed + fold)
        if np.unique(codes[fit_rows]).size < 2:  # a sample that lost a rare class: fit on the whole fold
            fit_rows = whole_fold
        model = LogisticRegression(max_iter=1000)
        model.fit(x[fit_rows], codes[fit_rows])
        proba[np.ix_(held_out, model.classes_)] = model.predict_proba(x[held_out])
        missing = np.setdiff1d(np.arange(n_classes), model.classes_)
        proba[np.ix_(held_out, missing)] = 0.0
    return proba


def fitted_without(x: FloatArray, codes: NDArray[np.int64], n_classes: int, rows: NDArray[np.bool_]) -> FloatArray:
    """Class probabilities of the rows of ``rows`` from a logistic regression fitted on all the others."""
    from sklearn.linear_model import LogisticRegression

    rest = fit_sample(np.flatnonzero(~rows), seed=0)
    out = np.zeros((int(rows.sum()), n_classes), dtype=np.float64)
    present = np.unique(codes[rest])
    if present.size < 2:
        out[:, present] = 1.0
        return out
    model = LogisticRegression(max_iter=1000).fit(x[rest], codes[rest])
    out[:, model.classes_] = model.predict_proba(x[rows])
    return out


def reference_probabilities(
    x_reference: FloatArray, reference_labels: Sequence[Any], x: FloatArray, classes: Sequence[str]
) -> FloatArray | None:
    """Class probabilities of ``x`` from a logistic regression fitted on the reference alone.

    Columns follow ``classes`` (label texts); a class the reference lacks gets 0.
    ``None`` when the reference holds fewer than two classes. The model never
    saw the rows it scores, nor any pattern that only they hold.
    """
    from sklearn.linear_model import LogisticRegression

    codes, reference_classes = class_codes(reference_labels)
    if len(reference_classes) < 2:
        return None
    rows = fit_sample(np.arange(len(codes)), seed=0)
    if np.unique(codes[rows]).size < 2:
        rows = np.arange(len(codes))
    model = LogisticRegression(max_iter=1000).fit(x_reference[rows], codes[rows])
    fitted = model.predict_proba(x)
    out = np.zeros((x.shape[0], len(classes)), dtype=np.float64)
    for column, code in enumerate(model.classes_):
        name = reference_classes[int(code)]
        if name in classes:
            out[:, list(classes).index(name)] = fitted[:, column]
    return out


def null_threshold(candidate_scores: FloatArray, null_weights: FloatArray, fpr: float) -> float:
    """The lowest threshold whose expected false-positive rate is at most ``fpr``.

    ``candidate_scores[i, c]`` is the score row ``i`` would get were its label
    ``c``; ``null_weights[i, c]`` the probability of that label on clean data.
    The expected share of clean rows flagged at threshold ``t`` is
    ``sum_ic w_ic [s_ic > t] / n``; it only falls as ``t`` rises.
    """
    scores = np.asarray(candidate_scores, dtype=np.float64).ravel()
    weights = np.asarray(null_weights, dtype=np.float64).ravel()
    n_rows = candidate_scores.shape[0]
    order = np.argsort(-scores, kind="stable")
    sorted_scores, mass = scores[order], np.cumsum(weights[order]) / n_rows
    # flagged mass at t = sorted_scores[j] counts only scores strictly above it
    above = np.concatenate([[0.0], mass[:-1]])
    distinct = np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]])
    # at ties the mass strictly above is the mass before the first of them
    above = np.maximum.accumulate(np.where(distinct, above, 0.0))
    ok = above <= fpr + 1e-12
    last = int(np.flatnonzero(ok)[-1])
    return float(sorted_scores[last])


def quantile_threshold(clean_scores: FloatArray, fpr: float) -> float:
    """The threshold above which a share ``fpr`` of ``clean_scores`` lies (at most)."""
    scores = np.sort(np.asarray(clean_scores, dtype=np.float64))
    n = scores.size
    k = min(math.floor(fpr * n + 1e-9), n - 1)
    return float(scores[n - 1 - k])


@dataclass(frozen=True)
class TailExcess:
    """A table's most suspicious rows against what clean data puts there: does the table hold poison?"""

    #: The ``observed`` rows scoring ``cut`` or more, and clean data's expected count of such rows.
    cut: float
    observed: int
    expected: float
    #: Bonferroni-adjusted p-value of the excess (over the ranks tried).
    p_value: float

    def passes(self, alpha: float) -> bool:
        """A significant excess of at least :data:`MIN_EXCESS_ROWS` rows, of which clean data explains
        at most :data:`MAX_NOISE_SHARE`."""
        return (self.observed >= MIN_EXCESS_ROWS and self.p_value <= alpha
                and self.expected <= MAX_NOISE_SHARE * self.observed)

    def to_dict(self, alpha: float) -> dict[str, Any]:
        return {"rows": self.observed, "expected": round(self.expected, 3), "p_value": self.p_value,
                "holds_poison": self.passes(alpha)}


def tail_excess(
    scores: FloatArray, expected_at_or_above: Callable[[float], float], *, up_to: int, alpha: float
) -> TailExcess:
    """Test the ``r`` highest ``scores``, for ``r = r0, 2 r0, 4 r0, ...`` up to ``up_to``, against clean data.

    ``r0`` is :data:`MIN_EXCESS_ROWS`, or :data:`MIN_EXCESS_SHARE` of the rows if more.

    ``expected_at_or_above(s)`` is clean data's expected count of rows (of as many as ``scores``)
    scoring ``s`` or more. Each rank's count is tested by the upper binomial tail at that mean,
    which bounds the Poisson-binomial tail of independent rows from above; Bonferroni over the
    ranks. Returns the passing rank with the most rows (see :meth:`TailExcess.passes`), else
    the rank with the smallest p-value.
    """
    from scipy import stats

    n = scores.size
    if n == 0:
        return TailExcess(cut=math.inf, observed=0, expected=0.0, p_value=1.0)
    first = max(MIN_EXCESS_ROWS, math.ceil(MIN_EXCESS_SHARE * n))
    ranks = [first * 2**j for j in range(int(np.log2(max(up_to / first, 1))) + 1)]
    top = np.sort(scores)[::-1]
    tried = []
    for r in ranks:
        cut = float(top[min(r, n) - 1])
        observed = int((scores >= cut).sum())
        expected = float(expected_at_or_above(cut))
        p = float(stats.binom.sf(observed - 1, n, min(1.0, expected / n)))
        tried.append(TailExcess(cut=cut, observed=observed, expected=expected, p_value=min(1.0, p * len(ranks))))
    passing = [t for t in tried if t.passes(alpha)]
    return passing[-1] if passing else min(tried, key=lambda t: t.p_value)
