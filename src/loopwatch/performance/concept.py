"""Concept drift on the stream of per-prediction losses, and drift of the target.

Once labels arrive, each prediction has a loss: a 0/1 error, a log loss or an
absolute error. A change in the relation between inputs and target shows up
as a change in the level of that stream, and the streaming detectors of
`river <https://riverml.xyz>`_ watch for exactly that, one value at a time, in
the order the labels arrived. river is the optional extra ``streaming``.

Detectors (``DETECTORS``) and what they take. Each has its own frozen dataclass of
typed parameters (:class:`Adwin`, :class:`HddmA`, :class:`HddmW`,
:class:`PageHinkley`, :class:`Kswin`), whose defaults are loopwatch's;
:func:`concept_params` builds one from the name the monitoring configuration stores
(:mod:`loopwatch.performance.concept_params`):

============  ===========================  ==================  ===========================
name          river class                  losses it takes     defaults changed here
============  ===========================  ==================  ===========================
adwin         ``drift.ADWIN``              any (0/1 or real)   none
hddm_a        ``drift.binary.HDDMA``       0/1 errors only     none
hddm_w        ``drift.binary.HDDMW``       0/1 errors only     ``lambda_val=0.01``
page_hinkley  ``drift.PageHinkley``        any; threshold and  ``mode="up"``
                                           delta in loss units
kswin         ``drift.KSWIN``              any (0/1 or real)   ``alpha=1e-4``,
                                                               ``window_size=1000``,
                                                               ``stat_size=300``
============  ===========================  ==================  ===========================

The defaults are chosen so that a stable Bernoulli error stream (error rate
0.15 to 0.3) raises at most about one alarm per 5,000 predictions. The rate
each default was measured at (``FALSE_ALARMS_PER_5000``) and its detection
delay after an error-rate step from 0.15 to 0.35 (``DELAY_AT_STEP``) come from
``benchmarks/concept_drift_quality.py`` and are checked by the tests. The
HDDM tests and Page-Hinkley (``mode="up"``) are one-sided: they watch for the
loss going up, which is what a model getting worse looks like; ADWIN and
KSWIN also see it going down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from loopwatch.errors import InvalidInput, require, echo
from loopwatch.features.schema import Task, category_label
from loopwatch.performance.concept_params import (
    BINARY_ONLY,
    DEFAULT_PARAMS,
    DETECTORS,
    PARAMS_BY_NAME,
    RIVER_CLASSES,
    Adwin,
    ConceptDetectorParams,
    HddmA,
    HddmW,
    Kswin,
    PageHinkley,
    concept_params,
    river_params,
)
from loopwatch.stats.univariate import TestResult, chi2_test, ks_test

__all__ = [
    "BINARY_ONLY", "DEFAULT_PARAMS", "DELAY_AT_STEP", "DETECTORS", "FALSE_ALARMS_PER_5000", "LOSS_KINDS",
    "PARAMS_BY_NAME", "RIVER_CLASSES", "Adwin", "ConceptDetectorParams", "ConceptDriftDetector",
    "ConceptDriftResult", "HddmA", "HddmW", "Kswin", "PageHinkley", "TargetDriftResult", "concept_params",
    "detect_concept_drift", "per_prediction_loss", "river_params", "target_drift",
]

#: Alarms per 5,000 predictions of a stable Bernoulli error stream (rates 0.15 and 0.3),
#: measured with the default parameters; see docs/concept-drift.md.
FALSE_ALARMS_PER_5000 = {
    "adwin": 0.0,
    "hddm_a": 0.1,
    "hddm_w": 0.1,
    "page_hinkley": 0.05,
    "kswin": 0.0,
}

#: Predictions after an error-rate step 0.15 -> 0.35 within which the detector fires
#: (the largest delay measured over the seeded step streams, rounded up).
DELAY_AT_STEP = {
    "adwin": 300,
    "hddm_a": 500,
    "hddm_w": 1500,
    "page_hinkley": 500,
    "kswin": 400,
}


class ConceptDriftDetector(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no stubs
    """One river drift detector over a stream of per-prediction losses.

    Feed it losses one at a time with :meth:`update`, or a whole stream with
    :meth:`run`. After an alarm river's detector starts afresh, so a second
    change later in the stream raises a second alarm.

    Parameters
    ----------
    detector:
        The detector and its typed parameters: :class:`Adwin` (the default),
        :class:`HddmA`, :class:`HddmW`, :class:`PageHinkley` or :class:`Kswin`
        (:func:`concept_params` builds one from its name).
    seed:
        Seed of the detector's randomness (only KSWIN draws random numbers).

    Attributes
    ----------
    n_seen_:
        Losses seen since the detector was built (or since the last :meth:`run`).
    drifts_:
        Positions (0-based, in the order seen) where drift was detected.
    params_:
        river's parameters that differ from river's defaults (see :func:`river_params`).

    Examples
    --------
    An error rate that steps from 15% to 35% at prediction 3,000:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(3000) < 0.15, rng.random(2000) < 0.35].astype(float)
    >>> detector = ConceptDriftDetector(detector=Adwin())
    >>> drifts = detector.run(errors)
    >>> len(drifts), 3000 < drifts[0] < 3300
    (1, True)
    >>> detector.n_seen_
    5000
    """

    def __init__(self, *, detector: ConceptDetectorParams | None = None, seed: int = 0) -> None:
        self.detector = detector
        self.seed = seed

    @property
    def method(self) -> str:
        """The name of the detector (the monitoring configuration's ``concept_detector``)."""
        return self._params().name

    def _params(self) -> ConceptDetectorParams:
        if self.detector is None:
            return Adwin()
        if not isinstance(self.detector, tuple(PARAMS_BY_NAME.values())):
            raise InvalidInput(
                f"detector must be one of {', '.join(c.__name__ for c in PARAMS_BY_NAME.values())}, "
                f"got {echo(self.detector)}"
            )
        return self.detector

    def _build(self) -> None:
        chosen = self._params()
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InvalidInput(f"seed must be an integer, got {echo(self.seed)}")
        module_name, class_name = chosen.river_class
        module = require(module_name, "streaming")
        params = river_params(chosen)
        arguments = {f.name: getattr(chosen, f.name) for f in fields(chosen)}
        if isinstance(chosen, Kswin):
            params["seed"] = arguments["seed"] = int(self.seed)
        try:
            self.detector_ = getattr(module, class_name)(**arguments)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"invalid parameters for {chosen.name}: {exc}") from exc
        self.params_ = params
        self.n_seen_ = 0
        self.drifts_: list[int] = []

    def _check_value(self, value: Any) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"a loss must be a number, got {echo(value)}") from exc
        if not math.isfinite(x):
            raise InvalidInput(f"a loss must be finite, got {echo(x)}")
        if self._params().binary_only and x not in (0.0, 1.0):
            raise InvalidInput(
                f"{self.method} takes 0/1 errors, got {echo(x)}; for log losses or absolute errors "
                "use adwin, page_hinkley or kswin"
            )
        return x

    def update(self, value: float) -> bool:
        """Feed one loss; True when drift is detected at this value."""
        if not hasattr(self, "detector_"):
            self._build()
        x = self._check_value(value)
        self.detector_.update(x)
        detected = bool(self.detector_.drift_detected)
        if detected:
            self.drifts_.append(self.n_seen_)
        self.n_seen_ += 1
        return detected

    def run(self, values: Sequence[float] | np.ndarray) -> list[int]:
        """Positions in ``values`` where drift was detected, from a fresh detector."""
        array = _loss_array(values, name="values")
        self._build()
        if self._params().binary_only and array.size and not np.isin(array, (0.0, 1.0)).all():
            self._check_value(array[~np.isin(array, (0.0, 1.0))][0])  # raises, naming the detectors that apply
        for i, x in enumerate(array.tolist()):
            self.detector_.update(x)
            if self.detector_.drift_detected:
                self.drifts_.append(i)
        self.n_seen_ = len(array)
        return list(self.drifts_)


def _loss_array(values: Any, *, name: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)  # a copy: the caller's array is never touched
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numbers") from exc
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name} must hold finite losses; drop predictions without a label first")
    return array


@dataclass(frozen=True)
class ConceptDriftResult:
    """Where a detector raised alarms on a loss stream."""

    method: str
    n: int
    drift_indices: list[int]
    drift_times: list[str]
    first_drift_time: str | None
    params: dict[str, Any] = field(default_factory=dict)
    warmup: int = 0

    @property
    def drifted(self) -> bool:
        return bool(self.drift_indices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n": self.n,
            "drifted": self.drifted,
            "drift_indices": list(self.drift_indices),
            "drift_times": list(self.drift_times),
            "first_drift_time": self.first_drift_time,
            "params": {k: _plain(v) for k, v in self.params.items()},
            "warmup": self.warmup,
        }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _time_texts(times: Any, n: int) -> list[str]:
    import pandas as pd

    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(times, format="ISO8601"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"times must be timestamps: {exc}") from exc
    if len(stamps) != n:
        raise InvalidInput(f"times has {len(stamps)} values, losses has {n}")
    if stamps.hasnans:
        raise InvalidInput("times holds missing timestamps")
    if not stamps.is_monotonic_increasing:
        raise InvalidInput("losses must be in label-arrival order: times must not go backwards")
    return [t.isoformat() for t in stamps]


def detect_concept_drift(
    losses: Sequence[float] | np.ndarray,
    times: Any,
    *,
    detector: ConceptDetectorParams | None = None,
    seed: int = 0,
    warmup: int = 0,
) -> ConceptDriftResult:
    """Run one detector (default :class:`Adwin`) over ``losses`` (in label-arrival order,
    ``times`` the label times).

    The first ``warmup`` losses feed the detector but raise no alarm: prepend a
    reference stream of that length so the detector starts out knowing the
    model's usual loss.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> errors = np.r_[rng.random(3000) < 0.15, rng.random(2000) < 0.35].astype(float)
    >>> times = pd.date_range("2024-01-01", periods=5000, freq="h")
    >>> result = detect_concept_drift(errors, times, detector=PageHinkley())
    >>> result.first_drift_time[:10], result.drift_indices[0] > 3000
    ('2024-05-09', True)
    """
    array = _loss_array(losses, name="losses")
    warmup = int(warmup) if isinstance(warmup, (int, np.integer)) and not isinstance(warmup, bool) else -1
    if not 0 <= warmup <= len(array):
        raise InvalidInput("warmup must be an integer between 0 and the number of losses")
    texts = _time_texts(times, len(array))
    stream = ConceptDriftDetector(detector=detector, seed=seed)
    indices = [i for i in stream.run(array) if i >= warmup]
    return ConceptDriftResult(
        method=stream.method,
        n=len(array),
        drift_indices=indices,
        drift_times=[texts[i] for i in indices],
        first_drift_time=texts[indices[0]] if indices else None,
        params=dict(stream.params_),
        warmup=warmup,
    )


LOSS_KINDS = ("error", "log_loss")


def per_prediction_loss(
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    *,
    task: Task,
    classes: Sequence[Any] | None = None,
    kind: str = "error",
) -> np.ndarray:
    """The loss of each prediction: the stream the concept drift detectors watch.

    Classifiers: the 0/1 error (``kind="error"``) or the log loss of the true
    class (``kind="log_loss"``, needs ``y_proba`` with one column per class of
    ``classes``, clipped like scikit-learn's ``log_loss``). Regressors: the
    absolute error.

    >>> per_prediction_loss(["a", "b", "b"], ["a", "a", "b"], task="classification")
    array([0., 1., 0.])
    >>> per_prediction_loss([1.0, 2.0], [1.5, 1.0], task="regression")
    array([0.5, 1. ])
    """
    from loopwatch.performance.labels import check_classes, check_proba, check_values, encode_labels

    if task == "regression":
        if kind != "error":
            raise InvalidInput("a regressor's loss is its absolute error: kind must be 'error'")
        truth = check_values(y_true, name="y_true")
        errors: np.ndarray = np.abs(truth - check_values(y_pred, name="y_pred", n=len(truth)))
        return errors
    if task != "classification":
        raise InvalidInput(f"task must be 'classification' or 'regression', not {echo(task)}")
    if kind not in LOSS_KINDS:
        raise InvalidInput(f"kind must be one of {LOSS_KINDS}, not {echo(kind)}")
    if kind == "log_loss":
        if y_proba is None or classes is None:
            raise InvalidInput("a log loss needs y_proba and the classes its columns stand for")
        known = check_classes(classes)
        truth = encode_labels(y_true, known, name="y_true")
        proba = check_proba(y_proba, n=len(truth), k=len(known))
        eps = np.finfo(np.float64).eps
        picked = np.clip(proba[np.arange(len(truth)), truth], eps, 1.0 - eps)
        losses: np.ndarray = -np.log(picked)
        return losses
    if classes is not None:
        known = check_classes(classes)
        truth = encode_labels(y_true, known, name="y_true")
        wrong: np.ndarray = (truth != encode_labels(y_pred, known, name="y_pred")).astype(np.float64)
        return wrong
    truth_text = [category_label(_plain(v)) for v in np.asarray(y_true, dtype=object).ravel()]
    pred_text = [category_label(_plain(v)) for v in np.asarray(y_pred, dtype=object).ravel()]
    if len(truth_text) != len(pred_text):
        raise InvalidInput(f"y_pred has {len(pred_text)} values, y_true has {len(truth_text)}")
    return np.fromiter((a != b for a, b in zip(truth_text, pred_text)), dtype=np.float64, count=len(truth_text))


@dataclass(frozen=True)
class TargetDriftResult:
    """Has the distribution of the labels changed? chi-square (classes) or KS (numbers)."""

    task: str
    test: str
    statistic: float
    p_value: float
    alpha: float
    n_reference: int
    n_current: int

    @property
    def drifted(self) -> bool:
        return self.p_value < self.alpha

    def as_test_result(self) -> TestResult:
        return TestResult(self.statistic, self.p_value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


def _label_counts(labels: Any, name: str) -> dict[str, int]:
    values = [category_label(_plain(v)) for v in np.asarray(labels, dtype=object).ravel()]
    if not values:
        raise InvalidInput(f"{name} is empty")
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def class_target_drift(reference_labels: Any, current_counts: dict[str, int], *, alpha: float = 0.01) -> TargetDriftResult:
    """:func:`target_drift` of a classifier's labels given as counts per class label (a window
    summary's confusion counts, whatever its size).

    >>> r = class_target_drift(["a"] * 50 + ["b"] * 50, {"a": 30, "b": 70})
    >>> r.test, round(r.p_value, 4), r.n_current
    ('chi2', 0.0039, 100)
    """
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InvalidInput(f"alpha must be between 0 and 1, got {echo(alpha)}")
    current = {category_label(label): int(n) for label, n in current_counts.items() if n > 0}
    if not current:
        raise InvalidInput("current_labels is empty")
    ref = _label_counts(reference_labels, "reference_labels")
    result = chi2_test(ref, current)
    return TargetDriftResult("classification", "chi2", result.statistic, result.p_value, float(alpha),
                             sum(ref.values()), sum(current.values()))


def target_drift(reference_labels: Any, current_labels: Any, *, task: Task, alpha: float = 0.01) -> TargetDriftResult:
    """Compare the labels of a window with the reference's: chi-square for classes, KS for numbers.

    >>> r = target_drift(["a"] * 50 + ["b"] * 50, ["a"] * 30 + ["b"] * 70, task="classification")
    >>> r.test, round(r.p_value, 4), r.drifted
    ('chi2', 0.0039, True)
    """
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InvalidInput(f"alpha must be between 0 and 1, got {echo(alpha)}")
    if task == "classification":
        return class_target_drift(reference_labels, _label_counts(current_labels, "current_labels"), alpha=alpha)
    if task == "regression":
        from loopwatch.stats.sketch import finite_array

        ref_values = np.sort(finite_array(reference_labels, name="reference_labels"))
        cur_values = finite_array(current_labels, name="current_labels")
        result = ks_test(ref_values, cur_values)
        return TargetDriftResult(task, "ks", result.statistic, result.p_value, float(alpha),
                                 len(ref_values), len(cur_values))
    raise InvalidInput(f"task must be 'classification' or 'regression', not {echo(task)}")
