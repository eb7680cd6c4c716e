"""Backdoor triggers: a rare exact feature pattern that comes with one label.

A backdoor poisoner adds rows that carry a trigger (a specific value, or a
combination of two, that ordinary data rarely holds: ``monthly_fee=13.37``,
``device=tv & country=IT``) and the label they want the trigger to produce.
The model learns "trigger means that label", and the attacker can later
switch the prediction of any row by setting the trigger.

The screen looks at every exact pattern of one feature value or two (missing
values aside) held by at least ``min_count`` rows and at most a share
``max_share`` of them (rare), and asks two questions of each:

1. Is it over-represented against the trusted reference? (a one-sided
   conditional binomial test of its count in the table against its count in
   the reference, as :func:`loopwatch.stats.rates.rate_test`; skipped without
   a reference).
2. Do its rows carry one label far more often than a model that cannot see
   the pattern expects? For each class, the count of rows with that label
   against the sum of their out-of-fold probabilities, with the binomial tail
   at the mean probability as p-value (it bounds the exact Poisson-binomial
   tail from above, so the test is conservative).

With a reference, half of ``alpha`` goes to question 1 (Bonferroni over every
pattern) and half to question 2 (Bonferroni over the over-represented ones);
without one, all of ``alpha`` goes to question 2 over every pattern. The rows
of a flagged pattern that carry its label are flagged, with the reason
``backdoor:<pattern>``.

What it cannot see: a trigger that is not an exact value (a small region of
a continuous feature), one of three or more values that are common alone and
in pairs, a trigger labelled with the class the pattern's rows would mostly
have anyway, or one held by fewer than ``min_count`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.features.schema import category_label
from loopwatch.poisoning.base import FloatArray, ScreenResult, check_rate, class_codes

NAME = "backdoor"
#: Most flagged patterns listed in the details.
MAX_LISTED = 20


@dataclass(frozen=True)
class _Family:
    """One feature or one pair of features, with each row's pattern key (-1: missing)."""

    features: tuple[str, ...]
    window: np.ndarray
    reference: np.ndarray | None
    n_keys: int
    #: The pattern of each key of a single feature; a pair names its keys from its parts.
    names: list[str]
    parts: tuple[_Family, ...] = ()

    def pattern(self, key: int) -> str:
        if not self.parts:
            return self.names[key]
        first, second = self.parts
        return f"{first.names[key // second.n_keys]}&{second.names[key % second.n_keys]}"


def backdoor_screen(
    features: pd.DataFrame,
    labels: Sequence[Any],
    probabilities: FloatArray,
    *,
    reference: pd.DataFrame | None = None,
    alpha: float = 0.01,
    min_count: int = 8,
    max_share: float = 0.05,
    pairs: bool = True,
) -> ScreenResult:
    """Flag rows of rare, over-represented exact patterns that come with one label.

    ``features`` holds the raw feature columns, ``labels`` one class per row,
    ``probabilities`` each row's out-of-fold class probabilities with columns
    in the order of the sorted class texts (as the flip screen computes them).
    ``reference`` is the trusted sample (its feature columns are read).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"fee": rng.uniform(5, 20, 2000).round(3), "plan": rng.choice(["a", "b"], 2000)})
    >>> labels = rng.integers(0, 2, 2000)
    >>> frame.loc[:29, "fee"], labels[:30] = 13.37, 1       # the trigger, always labelled 1
    >>> result = backdoor_screen(frame, labels, np.full((2000, 2), 0.5))
    >>> int(result.flagged[:30].sum()), int(result.flagged[30:].sum()), result.reasons[0]
    (30, 0, 'backdoor:fee=13.37')
    """
    level = check_rate(alpha, "alpha")
    share = check_rate(max_share, "max_share")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 2:
        raise InvalidInput(f"min_count must be an integer of at least 2, got {min_count!r}")
    n = len(features)
    codes, classes = class_codes(labels)
    proba = np.asarray(probabilities, dtype=np.float64)
    if len(codes) != n or proba.shape != (n, len(classes)):
        raise InvalidInput(f"labels and probabilities must have {n} rows and {len(classes)} classes")
    singles = [_single(features, reference, name) for name in features.columns]
    families = singles + ([_pair(a, b) for a, b in combinations(singles, 2)] if pairs else [])
    onehot = np.eye(len(classes))[codes]
    candidates = [c for family in families for c in _candidates(family, onehot, proba, min_count, share * n)]
    flagged = np.zeros(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    best = np.full(n, np.inf)
    found: list[dict[str, Any]] = []
    if candidates:
        p_label = np.array([c["p_label"] for c in candidates])
        if reference is not None and len(reference):
            n_ref = len(reference)
            k_w = np.array([c["count"] for c in candidates])
            k_r = np.array([c["reference_count"] for c in candidates])
            p_over = stats.binom.sf(k_w - 1, k_w + k_r, n / (n + n_ref))
            over = p_over <= level / 2 / len(candidates)
            cut = level / 2 / max(1, int(over.sum()))
            hits = np.flatnonzero(over & (p_label <= cut))
        else:
            p_over = np.full(len(candidates), np.nan)
            hits = np.flatnonzero(p_label <= level / len(candidates))
        for i in hits[np.argsort(p_label[hits], kind="stable")]:
            candidate = candidates[i]
            rows = (candidate["family"].window == candidate["key"]) & (codes == candidate["class"])
            text = "backdoor:" + candidate["pattern"]
            better = rows & (p_label[i] < best)
            for r in np.flatnonzero(better):
                reasons[r] = text
            best[better] = p_label[i]
            flagged |= rows
            found.append({
                "pattern": candidate["pattern"], "label": classes[candidate["class"]], "rows": int(candidate["count"]),
                "with_label": int(candidate["observed"]), "expected": round(float(candidate["expected"]), 3),
                "reference_rows": candidate["reference_count"] if reference is not None else None,
                "p_label": float(p_label[i]), "p_over_represented": None if np.isnan(p_over[i]) else float(p_over[i]),
            })
    return ScreenResult(
        name=NAME,
        scores=np.where(np.isfinite(best), -np.log10(np.maximum(best, 1e-300)), 0.0),
        flagged=flagged,
        reasons=tuple(reasons),
        fpr=level,
        details={"patterns_tested": len(candidates), "patterns": found[:MAX_LISTED]},
    )


def _keys(column: pd.Series, numeric: bool) -> list[str | None]:
    if numeric:
        return [None if pd.isna(v) else repr(float(v)) for v in column.tolist()]
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else category_label(v) for v in column.tolist()]


def _single(features: pd.DataFrame, reference: pd.DataFrame | None, name: str) -> _Family:
    column = features[name]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    window_keys = _keys(column, numeric)
    reference_keys = _keys(reference[name], numeric) if reference is not None and name in reference else []
    codes, uniques = pd.factorize(pd.Series(window_keys + reference_keys, dtype=object), use_na_sentinel=True)
    names = [f"{name}={_pretty(u)}" for u in uniques]
    window = np.asarray(codes[: len(window_keys)], dtype=np.int64)
    ref = np.asarray(codes[len(window_keys):], dtype=np.int64) if reference is not None else None
    return _Family((name,), window, ref, len(uniques), names)


def _pretty(key: str) -> str:
    try:
        number = float(key)
    except ValueError:
        return key
    return str(int(number)) if number.is_integer() else repr(number)


def _pair(a: _Family, b: _Family) -> _Family:
    def combine(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        if x is None or y is None:
            return None
        return np.where((x >= 0) & (y >= 0), x * b.n_keys + y, -1)

    window = combine(a.window, b.window)
    assert window is not None
    return _Family(a.features + b.features, window, combine(a.reference, b.reference), a.n_keys * b.n_keys,
                   names=[], parts=(a, b))


def _candidates(
    family: _Family, onehot: np.ndarray, proba: np.ndarray, min_count: int, max_count: float
) -> list[dict[str, Any]]:
    present = family.window >= 0
    keys = family.window[present]
    if keys.size == 0:
        return []
    unique, counts = np.unique(keys, return_counts=True)
    chosen = (counts >= min_count) & (counts <= max_count)
    if not chosen.any():
        return []
    unique, counts = unique[chosen], counts[chosen]
    position = np.searchsorted(unique, keys)
    valid = (position < unique.size) & (unique[np.minimum(position, unique.size - 1)] == keys)
    observed = np.zeros((unique.size, onehot.shape[1]))
    expected = np.zeros_like(observed)
    np.add.at(observed, position[valid], onehot[present][valid])
    np.add.at(expected, position[valid], proba[present][valid])
    reference_counts = np.zeros(unique.size, dtype=np.int64)
    if family.reference is not None:
        ref_keys = family.reference[family.reference >= 0]
        ref_pos = np.searchsorted(unique, ref_keys)
        ref_ok = (ref_pos < unique.size) & (unique[np.minimum(ref_pos, unique.size - 1)] == ref_keys)
        np.add.at(reference_counts, ref_pos[ref_ok], 1)
    # the upper binomial tail at the mean probability, per class; the smallest, times the classes
    mean = np.clip(expected / counts[:, None], 0.0, 1.0)
    tails = stats.binom.sf(observed - 1, counts[:, None], mean)
    worst = tails.argmin(axis=1)
    p_label = np.minimum(1.0, tails.min(axis=1) * onehot.shape[1])
    out = []
    for j in range(unique.size):
        c = int(worst[j])
        out.append({
            "family": family, "key": int(unique[j]), "count": int(counts[j]), "class": c,
            "observed": float(observed[j, c]), "expected": float(expected[j, c]),
            "reference_count": int(reference_counts[j]), "p_label": float(p_label[j]),
            "pattern": family.pattern(int(unique[j])),
        })
    return out

