"""Which predictions to send for labelling, within a budget.

Labels cost money, so a labelling budget is spent where it teaches the most,
except for a share spent uniformly at random. The random share keeps realized
metrics honest: a metric computed on the ``random=True`` items alone estimates
the model's performance on the whole window without bias, whereas the
informative items over-represent hard rows and would make the model look worse
than it is.

The informative rest is ranked by a weighted score of three signals, each in
[0, 1]:

- ``uncertainty``: how unsure the model was (see :func:`uncertainty_from_probabilities`);
- ``novelty``: the row's outlier score as a percentile of the reference's scores;
- ``drifted_segment``: the row sits in a bin or category that a drift test found
  over-represented in the window.

>>> import pandas as pd
>>> frame = pd.DataFrame({"request_id": ["a", "b", "c", "d"], "row_index": [0, 0, 0, 0],
...                       "uncertainty": [0.1, 0.9, 0.5, 0.2]})
>>> [(i.request_id, i.random) for i in select_for_labelling(frame, budget=2, random_share=0.0)]
[('b', False), ('c', False)]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo

#: Weights of the informativeness score when none are given.
DEFAULT_WEIGHTS: dict[str, float] = {"uncertainty": 1.0, "novelty": 1.0, "drifted_segment": 0.5}
#: A pick is called "uncertain" at or above this uncertainty (a binary p in [0.25, 0.75]).
UNCERTAIN_AT = 0.5
#: A pick is called "novel" at or above this percentile of the reference's outlier scores.
NOVEL_AT = 0.95
#: A bin or category is over-represented when its share of the window is this many
#: times its share of the reference.
OVER_REPRESENTED = 1.5
#: Columns a candidates table must have.
REQUIRED_COLUMNS = ("request_id", "row_index", "uncertainty")


@dataclass(frozen=True, kw_only=True)
class QueueItem:
    """One prediction to label, and why it was chosen."""

    request_id: str
    row_index: int
    entity_id: str | None
    #: The weighted informativeness score (computed for random picks too).
    score: float
    #: ``["random"]`` for the random share; else the signals that cleared their thresholds.
    reasons: list[str] = field(default_factory=list)
    #: Chosen uniformly at random: realized metrics on these items are unbiased.
    random: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uncertainty_from_probabilities(probabilities: Any) -> np.ndarray:
    """``(1 - max p) * k / (k - 1)`` per row: 0 when sure, 1 when every class is equally likely.

    For two classes this is ``1 - |2p - 1|``.

    >>> uncertainty_from_probabilities([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]]).tolist()
    [1.0, 0.19999999999999996, 0.0]
    """
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise InvalidInput(f"probabilities must be a matrix of two or more classes, got shape {proba.shape}")
    if not np.isfinite(proba).all():
        raise InvalidInput("probabilities hold NaN or infinite values")
    k = proba.shape[1]
    uncertainty: np.ndarray = np.clip((1.0 - proba.max(axis=1)) * k / (k - 1), 0.0, 1.0)
    return uncertainty


def novelty_percentiles(scores: Any, reference_scores: Any) -> np.ndarray:
    """Per score, the share of reference scores strictly below it (outlier scores:
    higher is more outlying), so 0.99 means "more outlying than 99% of the reference".

    >>> novelty_percentiles([0.5, 10.0, -1.0], [0.0, 1.0, 2.0, 3.0]).tolist()
    [0.25, 1.0, 0.0]
    """
    reference = np.sort(np.asarray(reference_scores, dtype=np.float64))
    if reference.size == 0:
        raise InvalidInput("novelty needs at least one reference score")
    return np.searchsorted(reference, np.asarray(scores, dtype=np.float64), side="left") / reference.size


def over_represented_bins(
    values: Any, edges: Any, reference_counts: Any, *, factor: float = OVER_REPRESENTED
) -> np.ndarray:
    """Flag values whose bin holds ``factor`` times more of ``values`` than of the reference.

    Bins are ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` (as the drift profile's);
    a missing value is never flagged.

    >>> over_represented_bins([0.5, 0.6, 2.5, None], [1.0, 2.0], [10, 10, 10]).tolist()
    [True, True, False, False]
    """
    x = np.asarray(pd.to_numeric(pd.Series(values, dtype=object)), dtype=np.float64)
    counts = np.asarray(reference_counts, dtype=np.float64)
    present = ~np.isnan(x)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), x[present], side="right")
    current = np.bincount(bins, minlength=counts.size) / max(1, int(present.sum()))
    over = current > factor * counts / max(1.0, counts.sum())
    flags = np.zeros(x.size, dtype=bool)
    flags[present] = over[bins]
    return flags


def over_represented_categories(
    labels: Sequence[str | None], reference_counts: Mapping[str, int], *, factor: float = OVER_REPRESENTED
) -> np.ndarray:
    """Flag labels whose category holds ``factor`` times more of ``labels`` than of the
    reference; a category the reference never saw always counts as over-represented.

    >>> over_represented_categories(["a", "a", "b", None, "z"], {"a": 1, "b": 3}).tolist()
    [True, True, False, False, True]
    """
    total = max(1, sum(reference_counts.values()))
    seen = pd.Series([lab for lab in labels if lab is not None], dtype=object).value_counts(normalize=True)
    over = {lab for lab, share in seen.items() if share > factor * reference_counts.get(str(lab), 0) / total}
    return np.array([lab is not None and lab in over for lab in labels], dtype=bool)


def select_for_labelling(
    candidates: pd.DataFrame,
    *,
    budget: int,
    random_share: float = 0.2,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> list[QueueItem]:
    """Choose up to ``budget`` rows of ``candidates`` to label.

    ``round(budget * random_share)`` (halves round up; with fewer rows than the
    budget, the share of the rows there are) are drawn uniformly at random and
    marked ``random=True``; the rest are the highest-scoring remaining rows, ties
    broken by a seeded shuffle. A row (``request_id``, ``row_index``) is chosen at
    most once. Missing ``novelty`` counts as 0 and missing ``drifted_segment`` as
    False. Rows that already have a label must be left out by the caller.

    The random picks come first in the result, then the informative ones by
    decreasing score.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise InvalidInput(f"budget must be a non-negative integer, got {echo(budget)}")
    if not isinstance(random_share, (int, float)) or not 0.0 <= random_share <= 1.0:
        raise InvalidInput(f"random_share must be between 0 and 1, got {echo(random_share)}")
    chosen_weights = _weights(weights)
    frame = _clean(candidates)
    score = (
        chosen_weights["uncertainty"] * frame["uncertainty"].to_numpy()
        + chosen_weights["novelty"] * frame["novelty"].to_numpy()
        + chosen_weights["drifted_segment"] * frame["drifted_segment"].to_numpy(dtype=np.float64)
    )
    n = len(frame)
    budget = min(int(budget), n)
    n_random = min(budget, math.floor(budget * random_share + 0.5))
    rng = np.random.default_rng(seed)
    random_picks = rng.choice(n, size=n_random, replace=False) if n_random else np.array([], dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    taken[random_picks] = True
    # a seeded shuffle, then a stable sort by score: equal scores are ordered at random,
    # not by their place in the table (which would favour, say, the oldest rows)
    shuffled = rng.permutation(n)
    order = shuffled[np.argsort(-score[shuffled], kind="stable")]
    informative = order[~taken[order]][: budget - n_random]

    def item(i: int, random: bool) -> QueueItem:
        row = frame.iloc[i]
        return QueueItem(
            request_id=str(row["request_id"]),
            row_index=int(row["row_index"]),
            entity_id=None if pd.isna(row["entity_id"]) else str(row["entity_id"]),
            score=float(score[i]),
            reasons=["random"] if random else _reasons(row),
            random=random,
        )

    return [item(int(i), True) for i in random_picks] + [item(int(i), False) for i in informative]


def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise InvalidInput(
            f"unknown weights {sorted(unknown)}; choose among {sorted(DEFAULT_WEIGHTS)}"
        )
    out = dict(DEFAULT_WEIGHTS) | dict(weights)
    for name, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"weight {echo(name)} must be a finite non-negative number, got {echo(value)}")
    return {k: float(v) for k, v in out.items()}


def _clean(candidates: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(candidates, pd.DataFrame):
        raise InvalidInput("candidates must be a table")
    missing = [c for c in REQUIRED_COLUMNS if c not in candidates.columns]
    if missing:
        raise InvalidInput(f"candidates lack the columns {missing}")
    frame = candidates.drop_duplicates(subset=["request_id", "row_index"], keep="first")
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "request_id": frame["request_id"],
            "row_index": frame["row_index"],
            "entity_id": frame["entity_id"] if "entity_id" in frame else None,
            "uncertainty": _share(frame["uncertainty"], "uncertainty", missing_as=None),
            "novelty": _share(frame["novelty"], "novelty", missing_as=0.0) if "novelty" in frame else 0.0,
            "drifted_segment": (
                frame["drifted_segment"].fillna(False).astype(bool) if "drifted_segment" in frame else False
            ),
        }
    )
    return out


def _share(column: pd.Series, name: str, *, missing_as: float | None) -> np.ndarray:
    try:
        values: np.ndarray = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numbers in [0, 1]") from exc
    if missing_as is not None:
        values = np.where(np.isnan(values), missing_as, values)
    if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 1)):
        raise InvalidInput(f"{name} must be finite numbers in [0, 1]")
    return values


def _reasons(row: pd.Series) -> list[str]:
    reasons = []
    if row["uncertainty"] >= UNCERTAIN_AT:
        reasons.append("uncertain")
    if row["novelty"] >= NOVEL_AT:
        reasons.append("novel")
    if bool(row["drifted_segment"]):
        reasons.append("drifted_segment")
    # nothing stands out: the row was still the most informative one left
    return reasons or ["highest_score"]
