"""The promotion gate: promote a candidate only when it is not worse, with confidence.

Both models are scored on the *same* labelled rows, so the comparison is
paired: each bootstrap resample draws rows once and measures both models on
them, and the interval is that of the difference ``candidate - production``.
Pairing removes the rows' own difficulty from the noise, which makes the
interval far narrower than comparing two separately measured metrics.

The gate passes when

- the metric is not worse by more than ``margin`` at the stated confidence: the
  lower end of the two-sided ``confidence`` percentile interval of the
  difference is above ``-margin`` (for metrics where lower is better, such as
  ``log_loss``, the upper end is below ``+margin``). With ``margin=0`` the
  candidate must be better with confidence; a positive margin tolerates that
  much loss (to accept a cheaper or fairer model, say); and
- when a latency budget is set, the candidate's 95th-percentile latency is
  within it. A budget with no candidate latency measured fails: an unchecked
  budget is not a kept one.

Bootstrap resamples are drawn as row counts (how many times each row is
drawn), so every metric is a weighted sum over rows and a thousand resamples
cost a few matrix products.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from loopwatch.errors import InvalidInput, echo

#: Metric name -> whether higher is better.
METRICS: dict[str, bool] = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
}
#: Metrics read from class probabilities rather than predicted labels.
PROBABILITY_METRICS = ("roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse")
#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs.
EPS = float(np.finfo(np.float64).eps)
#: Resamples drawn per block (bounds the memory of the count matrix).
_BLOCK = 200


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    passed: bool
    metric: str
    higher_is_better: bool
    production: float
    candidate: float
    #: ``candidate - production`` on all rows.
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    margin: float
    latency_ms_production: float | None
    latency_ms_candidate: float | None
    latency_budget_ms: float | None
    reasons: list[str] = field(default_factory=list)
    #: Rows both models were scored on.
    n: int = 0
    n_boot: int = 0
    #: Where the latencies came from (``shadow`` or ``offline``); ``None`` when not measured here.
    latency_source: str | None = None
    production_version: int | None = None
    candidate_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_gate(
    y_true: Sequence[Any],
    pred_production: Sequence[Any] | None,
    pred_candidate: Sequence[Any] | None,
    *,
    metric: str = "accuracy",
    higher_is_better: bool | None = None,
    margin: float = 0.0,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    latency_production_ms: Any = None,
    latency_candidate_ms: Any = None,
    latency_budget_ms: float | None = None,
    proba_production: Any = None,
    proba_candidate: Any = None,
    classes: Sequence[Any] | None = None,
) -> GateDecision:
    """Decide whether the candidate may replace production; see the module docstring.

    ``proba_*`` are class probabilities (a column per class in the order of
    ``classes``, or for two classes the positive class's probability alone);
    ``roc_auc`` and ``log_loss`` need them. ``classes`` defaults to the sorted
    labels seen. ``latency_*_ms`` are latency samples (or one number) in
    milliseconds; their 95th percentile is compared with the budget.
    ``higher_is_better`` defaults to the metric's own direction.
    """
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {echo(metric)}; choose one of: {', '.join(METRICS)}")
    better_high = METRICS[metric] if higher_is_better is None else bool(higher_is_better)
    _check_settings(margin=margin, confidence=confidence, n_boot=n_boot, budget=latency_budget_ms)
    score = _scorer(
        metric, y_true, pred_production, pred_candidate, proba_production, proba_candidate, classes
    )
    n = score.n
    production, candidate = (float(v[0]) for v in score(np.ones((1, n))))
    if not (math.isfinite(production) and math.isfinite(candidate)):
        raise InvalidInput(f"{metric} cannot be measured on these rows (a single class?)")
    diffs = _bootstrap_differences(score, n=n, n_boot=n_boot, seed=seed)
    if diffs.size == 0:
        raise InvalidInput(f"{metric} cannot be measured on these rows (a single class?)")
    alpha = 1.0 - confidence
    ci_low, ci_high = (float(v) for v in np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
    difference = candidate - production
    metric_ok = ci_low > -margin if better_high else ci_high < margin
    bound, side = (ci_low, 0.0 - margin) if better_high else (ci_high, margin + 0.0)
    reasons = [
        f"{metric}: candidate {candidate:.4g}, production {production:.4g} on {n} rows; "
        f"the {confidence:.0%} interval of the difference is [{ci_low:.4g}, {ci_high:.4g}], "
        + (
            f"{'above' if better_high else 'below'} {side:.4g}: not worse"
            if metric_ok
            else f"its {'lower' if better_high else 'upper'} end {bound:.4g} does not clear {side:.4g}: "
            "not shown to be no worse"
        )
    ]
    if diffs.size < n_boot:
        reasons.append(f"{n_boot - diffs.size} resamples could not be scored (one class only) and were skipped")
    p95_production = _p95(latency_production_ms, "latency_production_ms")
    p95_candidate = _p95(latency_candidate_ms, "latency_candidate_ms")
    latency_ok = True
    if latency_budget_ms is not None:
        if p95_candidate is None:
            latency_ok = False
            reasons.append("a latency budget is set but no candidate latency was measured")
        elif p95_candidate > latency_budget_ms:
            latency_ok = False
            reasons.append(
                f"candidate p95 latency {p95_candidate:.3g} ms is over the budget of {latency_budget_ms:.3g} ms"
            )
        else:
            reasons.append(
                f"candidate p95 latency {p95_candidate:.3g} ms is within the budget of {latency_budget_ms:.3g} ms"
            )
    return GateDecision(
        passed=bool(metric_ok and latency_ok),
        metric=metric,
        higher_is_better=better_high,
        production=production,
        candidate=candidate,
        difference=difference,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=float(confidence),
        margin=float(margin),
        latency_ms_production=p95_production,
        latency_ms_candidate=p95_candidate,
        latency_budget_ms=None if latency_budget_ms is None else float(latency_budget_ms),
        reasons=reasons,
        n=n,
        n_boot=int(diffs.size),
    )


def metric_values(
    metric: str,
    y_true: Sequence[Any],
    predicted: Sequence[Any] | None,
    *,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    weights: Any = None,
) -> np.ndarray:
    """``metric`` of one model under each row of ``weights`` (row counts, one resample a row).

    Without weights, the metric on all rows (an array of one value). A weighted
    metric equals the plain metric on the rows repeated that many times, which is
    what scikit-learn gives on the resampled rows.
    """
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {echo(metric)}; choose one of: {', '.join(METRICS)}")
    score = _scorer(metric, y_true, predicted, predicted, proba, proba, classes)
    w = np.ones((1, score.n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return score(w)[0]


# --- scoring under row weights -----------------------------------------------------------


@dataclass
class _Scorer:
    """Both models' per-row facts and how a metric reads them under row weights."""

    n: int
    #: (weights (B, n), one model's facts) -> the metric per resample, shape (B,)
    measure: Callable[[np.ndarray, Any], np.ndarray]
    production: Any
    candidate: Any

    def __call__(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.measure(weights, self.production), self.measure(weights, self.candidate)


def _scorer(
    metric: str,
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    proba_a: Any,
    proba_b: Any,
    classes: Sequence[Any] | None,
) -> _Scorer:
    y = _vector(y_true, "y_true")
    n = y.size
    if n < 2:
        raise InvalidInput("the gate needs at least two labelled rows")
    if metric in REGRESSION_METRICS:
        a, b = (_numbers(p, "predictions", n) - _numbers(y, "y_true", n) for p in (pred_a, pred_b))
        if metric == "mae":
            return _Scorer(n, _mean, np.abs(a), np.abs(b))
        return _Scorer(n, lambda w, squares: np.sqrt(_mean(w, squares)), a**2, b**2)
    labels = np.array([str(v) for v in y], dtype=object)
    if metric in PROBABILITY_METRICS:
        if proba_a is None or proba_b is None:
            raise InvalidInput(f"{metric} needs the class probabilities of both models")
        known = [str(c) for c in classes] if classes is not None else sorted(set(labels))
        positions = {c: i for i, c in enumerate(known)}
        unknown = sorted({lab for lab in labels if lab not in positions})
        if unknown:
            raise InvalidInput(f"labels {unknown[:5]} are not among the classes {known[:20]}")
        truth = np.array([positions[lab] for lab in labels])
        pa, pb = (_proba_matrix(p, n, len(known)) for p in (proba_a, proba_b))
        if metric == "log_loss":
            rows = np.arange(n)
            losses = (-np.log(np.clip(m[rows, truth], EPS, 1 - EPS)) for m in (pa, pb))
            return _Scorer(n, _mean, *losses)
        return _Scorer(n, lambda w, m: _auc(w, truth, m), pa, pb)
    if pred_a is None or pred_b is None:
        raise InvalidInput(f"{metric} needs the predicted labels of both models")
    pa, pb = (np.array([str(v) for v in _vector(p, "predictions", n)], dtype=object) for p in (pred_a, pred_b))
    if metric == "accuracy":
        return _Scorer(n, _mean, (pa == labels).astype(np.float64), (pb == labels).astype(np.float64))
    return _Scorer(n, lambda w, p: _macro_f1(w, labels, p), pa, pb)


def _mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    result: np.ndarray = (weights @ values) / weights.sum(axis=1)
    return result


def _macro_f1(weights: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro F1 over the classes present in each resample (in its labels or predictions),
    as scikit-learn computes it."""
    total = np.zeros(weights.shape[0])
    present = np.zeros(weights.shape[0])
    for label in sorted(set(labels) | set(predicted)):
        truth, said = labels == label, predicted == label
        tp = weights @ (truth & said)
        wrong = weights @ (truth ^ said)  # false positives + false negatives
        seen = (tp + wrong) > 0
        total += np.where(seen, 2 * tp / np.where(seen, 2 * tp + wrong, 1.0), 0.0)
        present += seen
    return np.where(present > 0, total / np.maximum(present, 1), np.nan)


def _auc(weights: np.ndarray, truth: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """ROC AUC: binary on the second class's probability, else one-vs-rest macro."""
    k = proba.shape[1]
    if k == 2:
        return _binary_auc(weights, truth == 1, proba[:, 1])
    per_class = [_binary_auc(weights, truth == c, proba[:, c]) for c in range(k)]
    auc: np.ndarray = np.mean(per_class, axis=0)  # NaN when a resample lacks a class, as sklearn refuses it
    return auc


def _binary_auc(weights: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count a half), per row of ``weights``."""
    order = np.argsort(score, kind="mergesort")
    ranked, pos = score[order], positive[order]
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    p = np.add.reduceat(w * pos, starts, axis=1)
    q = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(q, axis=1) - q
    pairs = p.sum(axis=1) * q.sum(axis=1)
    wins = (p * (below + 0.5 * q)).sum(axis=1)
    return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def _bootstrap_differences(score: _Scorer, *, n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_boot, _BLOCK):
        b = min(_BLOCK, n_boot - start)
        drawn = rng.integers(0, n, size=(b, n))
        counts = np.bincount((drawn + n * np.arange(b)[:, None]).ravel(), minlength=b * n)
        production, candidate = score(counts.reshape(b, n).astype(np.float64))
        diffs.append(candidate - production)
    out = np.concatenate(diffs)
    finite: np.ndarray = out[np.isfinite(out)]
    return finite


# --- input checks --------------------------------------------------------------------------


def _check_settings(*, margin: float, confidence: float, n_boot: int, budget: float | None) -> None:
    if not _finite(margin):
        raise InvalidInput(f"margin must be a finite number, got {echo(margin)}")
    if not _finite(confidence) or not 0.5 <= confidence < 1:
        raise InvalidInput(f"confidence must be in [0.5, 1), got {echo(confidence)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or not 50 <= n_boot <= 100_000:
        raise InvalidInput(f"n_boot must be an integer from 50 to 100000, got {echo(n_boot)}")
    if budget is not None and (not _finite(budget) or budget <= 0):
        raise InvalidInput(f"latency_budget_ms must be a positive number, got {echo(budget)}")


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and math.isfinite(value)


def _vector(values: Any, name: str, n: int | None = None) -> np.ndarray:
    if values is None:
        raise InvalidInput(f"{name} is required")
    arr = np.asarray(list(values), dtype=object)
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one value per row")
    if n is not None and arr.size != n:
        raise InvalidInput(f"{name} has {arr.size} values for {n} labelled rows")
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in arr):
        raise InvalidInput(f"{name} has missing values")
    return arr


def _numbers(values: Any, name: str, n: int) -> np.ndarray:
    arr = _vector(values, name, n)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) for v in arr):
        raise InvalidInput(f"{name} must be numbers for a regression metric")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{name} must be finite")
    return out


def _proba_matrix(proba: Any, n: int, k: int) -> np.ndarray:
    try:
        matrix = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("probabilities must be numbers") from exc
    if matrix.ndim == 1 and k <= 2:
        matrix = np.column_stack([1 - matrix, matrix])
    if matrix.shape != (n, max(k, 2)):
        raise InvalidInput(
            f"probabilities have shape {matrix.shape}; expected ({n}, {max(k, 2)}), "
            "a column per class (name the classes when some have no labelled row)"
        )
    if not np.isfinite(matrix).all() or matrix.min() < 0 or matrix.max() > 1:
        raise InvalidInput("probabilities must be finite and within [0, 1]")
    return matrix


def _p95(samples: Any, name: str) -> float | None:
    if samples is None:
        return None
    values = np.atleast_1d(np.asarray(samples, dtype=np.float64))
    if values.size == 0:
        return None
    if not np.isfinite(values).all() or values.min() < 0:
        raise InvalidInput(f"{name} must be non-negative finite milliseconds")
    return float(np.percentile(values, 95))
