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
   against their expected probabilities. The p-value is the binomial tail at
   the mean probability, which bounds the exact Poisson-binomial tail from
   above; for the :data:`EXACT_PATTERNS` most skewed patterns of at most
   :data:`EXACT_MAX_ROWS` rows, the exact tail (far smaller when the rows'
   probabilities differ: a trigger row the model is sure of counts for more).
   The probabilities come from a
   model of the reference when there is one (it never saw the trigger); else
   from the out-of-fold model, which can learn a trigger it can encode (a
   value in an otherwise constant feature) and then expects its label.

A frequent combination of ordinary values whose label share differs from what
a model expects is an interaction, not a trigger (18-year-old men are not a
backdoor). So every finding also needs the pattern to be unusually *pure*
against similar patterns: for a single value, the rest of the table; for a
pair ``a=u & b=v``, its siblings ``a=u & b!=v`` and ``a!=u & b=v`` (sharing
all but one item; see :func:`_similar_impurity`). The purity test is the lower
binomial tail of the pattern's rows without its label, at the share the
siblings lead one to expect (their log-odds added against the rows holding
neither value), times the classes.

A pattern is flagged along either of two paths, each with half of ``alpha``:

- *new and one-sided*: over-represented (question 1 at ``alpha / 2``,
  Bonferroni over every pattern), then skewed (question 2 at ``alpha / 2``,
  Bonferroni over the over-represented patterns) and purer than its similar
  patterns (at :data:`NEW_PATTERN_PURITY_LEVEL`: the over-representation test
  holds this path's error rate). This finds a trigger hiding among ordinary
  values, labelled with the class its rows would mostly have anyway;
- *one-sided beyond doubt*: skewed and pure, each at ``alpha / 2`` with
  Bonferroni over every pattern, its rows without the label at most
  :data:`PURITY_RATIO` as common as in its purest sibling (an interaction
  shifts a share; injected rows make a pattern nearly pure), and confirmed by
  a model refitted without the pattern's rows (``refit``, at most
  :data:`MAX_REFITS` patterns), which no trigger can have taught. This finds
  a trigger the reference is too small to call new.

Without a reference only the second path runs, with all of ``alpha``. The
rows of a flagged pattern that carry its label are flagged, with the reason
``backdoor:<pattern>``.

What it cannot see: a trigger that is not an exact value (a small region of
a continuous feature), one of three or more values that are common alone and
in pairs, a trigger labelled with the class the pattern's rows would mostly
have anyway (without a reference), a trigger on a value so common that the
injected rows are under three in four of its rows (without a reference), or
one held by fewer than ``min_count`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.schema import category_label
from loopwatch.poisoning.base import FloatArray, ScreenResult, check_rate, class_codes

NAME = "backdoor"
#: Most flagged patterns listed in the details.
MAX_LISTED = 20
#: Most patterns confirmed by a refit per screening (the most skewed first).
MAX_REFITS = 20
#: Level of the purity test of a pattern already over-represented against the reference.
NEW_PATTERN_PURITY_LEVEL = 0.05
#: A pattern flagged without a reference to call it new must be this much purer than every
#: similar pattern: its rows without the label at most this share of theirs.
PURITY_RATIO = 0.25
#: Most patterns whose exact tail is computed, and the most rows such a pattern may hold.
EXACT_PATTERNS = 500
EXACT_MAX_ROWS = 400


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
    refit: Callable[[np.ndarray], FloatArray] | None = None,
    alpha: float = 0.01,
    min_count: int = 8,
    max_share: float = 0.05,
    pairs: bool = True,
) -> ScreenResult:
    """Flag rows of rare, over-represented exact patterns that come with one label.

    ``features`` holds the raw feature columns, ``labels`` one class per row,
    ``probabilities`` each row's expected class probabilities from a model that
    cannot see the patterns, with columns in the order of the sorted class
    texts (see :mod:`loopwatch.poisoning.compose`).
    ``reference`` is the trusted sample (its feature columns are read).
    ``refit(rows)`` returns the class probabilities of the rows of a boolean
    mask from a model fitted without them (without it, a skewed pattern needs
    no confirmation).

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
        raise InvalidInput(f"min_count must be an integer of at least 2, got {echo(min_count)}")
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
        p_pure = np.array([c["p_pure"] for c in candidates])
        ratio = np.array([(c["count"] - c["observed"]) / c["count"] / c["purest_impurity"] for c in candidates])
        # the exact tails are worth computing only for patterns that can pass the purity test
        pure = p_pure <= NEW_PATTERN_PURITY_LEVEL
        _sharpen([c for c, ok in zip(candidates, pure) if ok], codes, proba)
        p_label = np.array([c["p_label"] for c in candidates])
        p_over = np.full(len(candidates), np.nan)
        path = np.full(len(candidates), "", dtype=object)
        skew_budget = level
        if reference is not None and len(reference):
            skew_budget = level / 2
            k_w = np.array([c["count"] for c in candidates])
            k_r = np.array([c["reference_count"] for c in candidates])
            p_over = stats.binom.sf(k_w - 1, k_w + k_r, n / (n + len(reference)))
            over = p_over <= level / 2 / len(candidates)
            cut = level / 2 / max(1, int(over.sum()))
            # the over-representation test holds the error rate of this path; purity is the check that
            # the new rows come with one label, so it is tested at a plain level, not Bonferroni's
            path[over & (p_label <= cut) & (p_pure <= NEW_PATTERN_PURITY_LEVEL)] = "new_and_one_sided"
        cut = skew_budget / len(candidates)
        skewed = np.flatnonzero((p_label <= cut) & (p_pure <= cut) & (ratio <= PURITY_RATIO) & (path == ""))
        verdicts: dict[bytes, bool] = {}  # patterns holding the same rows share one refit
        for i in skewed[np.argsort(p_label[skewed], kind="stable")][:MAX_REFITS]:
            rows = candidates[i]["family"].window == candidates[i]["key"]
            key = np.packbits(rows).tobytes() + bytes([candidates[i]["class"] % 256])
            if key not in verdicts:
                verdicts[key] = refit is None or _confirmed(candidates[i], codes, refit, skew_budget / len(candidates))
            if verdicts[key]:
                path[i] = "one_sided"
        hits = np.flatnonzero(path != "")
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
                "similar_impurity": round(candidate["similar_impurity"], 4), "p_pure": float(p_pure[i]),
                "path": path[i],
            })
    return ScreenResult(
        name=NAME,
        scores=np.where(np.isfinite(best), -np.log10(np.maximum(best, 1e-300)), 0.0),
        flagged=flagged,
        reasons=tuple(reasons),
        fpr=level,
        details={"patterns_tested": len(candidates), "patterns": found[:MAX_LISTED]},
    )


def _label_tail(observed: np.ndarray, counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Upper binomial tail of ``observed`` of ``counts`` rows at the mean expected probability."""
    mean = np.clip(expected / counts, 0.0, 1.0)
    return np.asarray(stats.binom.sf(observed - 1, counts, mean), dtype=np.float64)


def exact_tail(probabilities: np.ndarray, observed: int) -> float:
    """``P(S >= observed)`` for ``S`` a sum of independent Bernoulli variables (Poisson-binomial)."""
    distribution = np.ones(1)
    for p in np.asarray(probabilities, dtype=np.float64):
        distribution = np.convolve(distribution, [1.0 - p, p])
    return float(min(1.0, distribution[int(observed):].sum()))


def _sharpen(candidates: list[dict[str, Any]], codes: np.ndarray, proba: np.ndarray) -> None:
    """Replace the bound by the exact tail for the most skewed small patterns."""
    small = [i for i, c in enumerate(candidates) if c["count"] <= EXACT_MAX_ROWS]
    small.sort(key=lambda i: candidates[i]["p_label"])
    for i in small[:EXACT_PATTERNS]:
        candidate = candidates[i]
        rows = candidate["family"].window == candidate["key"]
        tail = exact_tail(proba[rows, candidate["class"]], int(candidate["observed"]))
        candidate["p_label"] = min(candidate["p_label"], tail * proba.shape[1])


def _confirmed(candidate: dict[str, Any], codes: np.ndarray, refit: Callable[[np.ndarray], FloatArray],
               cut: float) -> bool:
    """Is the pattern still skewed against a model that never saw its rows?"""
    rows = candidate["family"].window == candidate["key"]
    proba = np.asarray(refit(rows), dtype=np.float64)
    c = candidate["class"]
    observed = np.array([candidate["observed"]])
    tail = float(_label_tail(observed, np.array([int(rows.sum())]), np.array([proba[:, c].sum()]))[0])
    if rows.sum() <= EXACT_MAX_ROWS:
        tail = min(tail, exact_tail(proba[:, c], int(candidate["observed"])))
    return bool(min(1.0, tail * proba.shape[1]) <= cut)


def _keys(column: pd.Series, numeric: bool) -> tuple[np.ndarray, list[str]]:
    """Each value's key code (-1: missing) and the key texts, one call per distinct value only."""
    if numeric:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [repr(float(u)) for u in uniques]
    else:
        codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
        texts = [category_label(u) for u in uniques]
    # values of one text (1, "1", 1.0) are one key
    merged, names = pd.factorize(pd.Series(texts, dtype=object))
    out = np.where(codes >= 0, merged[np.maximum(codes, 0)] if merged.size else -1, -1)
    return np.asarray(out, dtype=np.int64), [str(n) for n in names]


def _single(features: pd.DataFrame, reference: pd.DataFrame | None, name: str) -> _Family:
    column = features[name]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    both = column if reference is None or name not in reference else pd.concat(
        [column.astype(object), reference[name].astype(object)], ignore_index=True)
    codes, texts = _keys(both.reset_index(drop=True), numeric)
    names = [f"{name}={_pretty(t)}" for t in texts]
    window = codes[: len(column)]
    ref = codes[len(column):] if reference is not None else None
    return _Family((name,), window, ref, len(texts), names)


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
    if family.parts:  # a pair holding exactly the rows of one of its values adds nothing to that value
        first, second = family.parts
        for part, of_key in ((first, unique // second.n_keys), (second, unique % second.n_keys)):
            alone = np.bincount(part.window[part.window >= 0], minlength=part.n_keys)
            chosen &= counts < alone[of_key]
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
    tails = _label_tail(observed, counts[:, None], expected)
    worst = tails.argmin(axis=1)
    p_label = np.minimum(1.0, tails.min(axis=1) * onehot.shape[1])
    similar, purest = _similar_impurity(family, unique, observed, onehot, min_count)
    picked = np.arange(unique.size)
    other = counts - observed[picked, worst]
    baseline = similar[picked, worst]
    p_pure = np.minimum(1.0, stats.binom.cdf(other, counts, baseline) * onehot.shape[1])
    out = []
    for j in range(unique.size):
        c = int(worst[j])
        out.append({
            "family": family, "key": int(unique[j]), "count": int(counts[j]), "class": c,
            "observed": float(observed[j, c]), "expected": float(expected[j, c]),
            "reference_count": int(reference_counts[j]), "p_label": float(p_label[j]),
            "pattern": family.pattern(int(unique[j])), "similar_impurity": float(baseline[j]),
            "purest_impurity": float(purest[j, c]), "p_pure": float(p_pure[j]),
        })
    return out


def _similar_impurity(
    family: _Family, unique: np.ndarray, observed: np.ndarray, onehot: np.ndarray, min_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per pattern ``j`` and class ``c``, the share of rows not labelled ``c`` that similar patterns
    lead one to expect, and that share in the purest similar pattern.

    Similar to a single value ``f=v``: the other rows of the table (both shares are theirs).
    Similar to a pair ``a=u & b=v``: its siblings ``a=u & b!=v`` and ``a!=u & b=v`` (each shares
    all but one item with it) of at least ``min_count`` rows. The expected share adds their
    log-odds against the rows holding neither (the pair's label were there no interaction
    of the two values); the purest is the lower of the two. A pair without such siblings falls
    back on the rest of the table. Shares are smoothed by half a row.
    """
    n_rows, n_classes = onehot.shape
    totals = onehot.sum(axis=0)
    size = observed.sum(axis=1)
    rest = _impurity(totals[None, :] - observed, n_rows - size)
    if not family.parts:
        return rest, rest
    first, second = family.parts
    siblings, values = [], np.zeros_like(observed)
    for part, of_key in ((first, unique // second.n_keys), (second, unique % second.n_keys)):
        present = part.window >= 0
        by_value = np.zeros((part.n_keys, n_classes))
        np.add.at(by_value, part.window[present], onehot[present])
        # the sibling keeps this part's value and changes the other one: the value's rows minus the pattern's
        sibling = by_value[of_key] - observed
        values += sibling
        siblings.append((sibling, sibling.sum(axis=1) >= min_count))
    neither = totals[None, :] - values - observed
    log_odds = [_logit(_impurity(sibling, sibling.sum(axis=1))) for sibling, _ in siblings]
    base = _logit(_impurity(neither, neither.sum(axis=1)))
    (_, ok_1), (_, ok_2) = siblings
    both = (ok_1 & ok_2)[:, None]
    expected = np.where(both, _expit(log_odds[0] + log_odds[1] - base),
                        np.where(ok_1[:, None], _expit(log_odds[0]), np.where(ok_2[:, None], _expit(log_odds[1]), rest)))
    purest = np.where(both, _expit(np.minimum(log_odds[0], log_odds[1])), expected)
    return expected, purest


def _logit(share: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(share) - np.log1p(-share), dtype=np.float64)


def _expit(log_odds: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-log_odds)), dtype=np.float64)


def _impurity(label_counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Share of rows not labelled ``c``, per class, smoothed by half a row."""
    rows = np.asarray(rows, dtype=np.float64)[:, None]
    return np.asarray((rows - label_counts + 0.5) / (rows + 1.0), dtype=np.float64)

