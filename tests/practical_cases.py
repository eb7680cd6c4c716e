"""Real-data cases for the practical thresholds, shared by the fast tests and the benchmark.

Every case compares windows of real rows with a reference profile built on a real training
split, with the monitor's drift settings, and reads back each window's drift alarms (data-quality
alarms are counted apart: they are not decided by thresholds):

* :func:`null_windows`: the 2013 flights shuffled over the year (:func:`tests.realdata.random_days`),
  a random training split and production windows of 1,000-3,000 rows: nothing changed;
* :func:`later_windows`: trained on January-February, production windows of a given size drawn
  at random from March-December. Drawing at random keeps the real difference between the
  periods the same at every size, so only the window size varies;
* :func:`selected_windows`: the shuffled year again, but production keeps every flight from one
  airport and only some of the others: a selected sub-population.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.drift import build_profile, compare
from loopwatch.drift.profile import ReferenceProfile
from loopwatch.drift.report import DriftReport
from loopwatch.application.monitoring.runner import MONITOR_CONFIG, alarms_of
from tests.realdata import FERTILITY_CATEGORICAL, FLIGHTS_CATEGORICAL, fertility, flights, random_days

FLIGHTS_FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]
FLIGHTS_NUMERIC = ["sched_hour", "distance", "air_time"]
FERTILITY_FEATURES = ["gender1", "gender2", "afam", "hispanic", "other", "age", "work"]
FERTILITY_NUMERIC = ["age", "work"]
#: Rows a reference profile is built on (the model's training split).
TRAINING_ROWS = 30_000


@dataclass(frozen=True)
class WindowResult:
    n: int
    #: Drift alarms (features, multivariate tests, outlier rates), as the monitor names them.
    alarms: list[str]
    #: Data-quality alarms (unseen categories, values out of range): not threshold decisions.
    quality: list[str]
    #: Per drifted statistic: its effect and the practical threshold it reached.
    effects: dict[str, tuple[float, float]]
    #: Per feature: its effect, threshold and whether its test alone was significant.
    features: dict[str, tuple[float, float, bool]]
    #: What a p-value alone would have flagged (features, multivariate tests, outlier rates).
    significant: list[str]


def evaluate(profile: ReferenceProfile, window: pd.DataFrame, *, seed: int = 0, **options: Any) -> WindowResult:
    """The window's drift with the monitor's settings (``options`` change them)."""
    report = compare(profile, window, config=replace(MONITOR_CONFIG, seed=seed, **options))
    return _result(report)


def _result(report: DriftReport) -> WindowResult:
    names = alarms_of(report)
    effects: dict[str, tuple[float, float]] = {}
    significant: list[str] = []
    for family, items in (("feature", report.features), ("multivariate", report.multivariate),
                          ("outliers", report.outliers)):
        for name, item in items.items():
            if item.significant:
                significant.append(f"{family}:{name}")
            if item.drift and item.practical is not None:
                effects[f"{family}:{name}"] = (item.practical.effect, item.practical.threshold)
    features = {name: (f.effect, float(f.practical_threshold or 0.0), bool(f.significant))
                for name, f in report.features.items() if f.practical is not None}
    return WindowResult(
        n=report.n_current,
        alarms=[a for a in names if not a.startswith("quality:")],
        quality=[a for a in names if a.startswith("quality:")],
        effects=effects,
        features=features,
        significant=significant,
    )


def flights_profile(training: pd.DataFrame) -> ReferenceProfile:
    return build_profile(training[FLIGHTS_FEATURES], numeric=FLIGHTS_NUMERIC, categorical=list(FLIGHTS_CATEGORICAL),
                         seed=0)


def shuffled_flights(seed: int) -> pd.DataFrame:
    return random_days(flights(), days=365, start="2013-01-01", seed=seed)


def null_windows(*, seed: int, n_windows: int = 20, low: int = 1000, high: int = 3000,
                 dataset: str = "flights") -> tuple[pd.DataFrame, Iterator[pd.DataFrame]]:
    """A random training split of one shuffled year and ``n_windows`` production windows."""
    rng = np.random.default_rng([seed, 1])
    if dataset == "flights":
        frame = shuffled_flights(seed)
    else:
        frame = fertility().sample(frac=1.0, random_state=seed).reset_index(drop=True)
    training = frame.iloc[:TRAINING_ROWS]
    rest = frame.iloc[TRAINING_ROWS:].reset_index(drop=True)
    sizes = rng.integers(low, high + 1, n_windows)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return training, (rest.iloc[s:s + n] for s, n in zip(starts, sizes))


def fertility_profile(training: pd.DataFrame) -> ReferenceProfile:
    return build_profile(training[FERTILITY_FEATURES], numeric=FERTILITY_NUMERIC,
                         categorical=list(FERTILITY_CATEGORICAL), seed=0)


def later_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """January-February (the training period) and March-December (production)."""
    frame = flights()
    month = frame["time"].dt.tz_convert("America/New_York").dt.month
    return frame[month <= 2].reset_index(drop=True), frame[month > 2].reset_index(drop=True)


def later_windows(later: pd.DataFrame, *, size: int, n_windows: int, seed: int) -> Iterator[pd.DataFrame]:
    rng = np.random.default_rng([seed, size])
    for _ in range(n_windows):
        yield later.iloc[rng.choice(len(later), size, replace=False)]


#: The selected sub-population: every flight from ORIGIN, and this share of the others.
SELECTED_ORIGIN = 1  # EWR, the first of the three airports in sorted order
KEPT_SHARE = 0.7


def selected_windows(frame: pd.DataFrame, *, sizes: np.ndarray, seed: int) -> Iterator[pd.DataFrame]:
    rng = np.random.default_rng([seed, 2])
    keep = (frame["origin"].to_numpy() == SELECTED_ORIGIN) | (rng.random(len(frame)) < KEPT_SHARE)
    selected = frame[keep].reset_index(drop=True)
    start = 0
    for n in sizes:
        yield selected.iloc[start:start + int(n)]
        start += int(n)


def rate(results: list[WindowResult]) -> float:
    return sum(bool(r.alarms) for r in results) / max(1, len(results))
