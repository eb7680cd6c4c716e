"""Label-free performance estimation on real data: the cases behind benchmarks/estimation_realdata.py
and the fast checks in tests/performance/test_estimation_realdata.py.

A case is one real dataset split at random (by ``seed``) into a training set, on which a
gradient-boosted model is fitted, a holdout (the estimator's reference) and a pool of
production rows. Chunks are drawn from the pool:

* ``in_distribution``: a simple random sample of the pool;
* ``covariate_shift``: a weighted sample that favours part of the input space, chosen at
  random per chunk among the model's own inputs: a numeric input tilted toward its high or
  low end (weights ``exp(+-TILT * z)``, ``z`` the input's normal score), or one category
  (holding at least 2% of the pool) made ``CATEGORY_BOOST`` times as likely. The rows keep
  their true labels, and the selection depends on the inputs alone, so how labels relate
  to the inputs is unchanged: covariate shift and nothing else.

Datasets (tests/realdata.py):

* ``flights_late`` (classification): a 2013 New York departure arrives more than 15
  minutes late or is cancelled;
* ``census_morekids`` (classification): a 1980 census mother of two has a third child;
* ``flights_arr_delay`` (regression): minutes late at arrival, heavy-tailed (sd 45,
  maximum 1,272) and mostly unpredictable from the schedule;
* ``flights_air_time`` (regression): minutes in the air, mostly explained by the
  distance, with heavy-tailed residuals (weather, holding patterns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from tests.realdata import FERTILITY_CATEGORICAL, FLIGHTS_CATEGORICAL, fertility, flight_delays, flights

#: Strength of a numeric input's tilt under covariate shift (a normal input's mean moves by TILT sd).
TILT = 1.5
#: How much likelier a boosted category's rows are under covariate shift.
CATEGORY_BOOST = 20.0
#: Pool rows kept per case (production rows the chunks are drawn from).
POOL_ROWS = 100_000
CONDITIONS = ("in_distribution", "covariate_shift")


@dataclass(frozen=True)
class Dataset:
    task: str
    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    source: str = ""
    model: str = "boosting"


DATASETS: dict[str, Dataset] = {
    "flights_late": Dataset("classification", "late",
                            ("carrier", "origin", "dest", "weekday", "sched_hour", "distance"),
                            FLIGHTS_CATEGORICAL),
    "census_morekids": Dataset("classification", "morekids",
                               ("gender1", "gender2", "afam", "hispanic", "other", "age", "work"),
                               FERTILITY_CATEGORICAL),
    "flights_late_forest": Dataset("classification", "late",
                                   ("carrier", "origin", "dest", "weekday", "sched_hour", "distance"),
                                   FLIGHTS_CATEGORICAL, model="forest"),
    "census_morekids_bayes": Dataset("classification", "morekids",
                                     ("gender1", "gender2", "afam", "hispanic", "other", "age", "work"),
                                     FERTILITY_CATEGORICAL, model="bayes"),
    "flights_arr_delay": Dataset("regression", "arr_delay",
                                 ("carrier", "origin", "dest", "weekday", "month", "sched_hour", "distance"),
                                 FLIGHTS_CATEGORICAL),
    "flights_air_time": Dataset("regression", "air_time",
                                ("carrier", "origin", "dest", "weekday", "month", "sched_hour", "distance"),
                                FLIGHTS_CATEGORICAL),
}


def _frame(name: str) -> pd.DataFrame:
    if name.startswith("flights_late"):
        return flights()
    if name.startswith("census_morekids"):
        return fertility()
    return flight_delays()


@dataclass
class Case:
    """One dataset, split and modelled with one seed. ``out_*``: probabilities (classification,
    one column per class 0/1) or predictions (regression)."""

    name: str
    dataset: Dataset
    seed: int
    X_ref: pd.DataFrame
    y_ref: np.ndarray
    out_ref: np.ndarray
    X_pool: pd.DataFrame
    y_pool: np.ndarray
    out_pool: np.ndarray
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def chunks(self, *, size: int, count: int, condition: str, seed: int) -> Iterator[np.ndarray]:
        """``count`` chunks of ``size`` pool rows (indices), drawn as ``condition`` says."""
        rng = np.random.default_rng([self.seed, seed, size, CONDITIONS.index(condition)])
        n = len(self.y_pool)
        for _ in range(count):
            if condition == "in_distribution":
                yield rng.choice(n, size=size, replace=False)
                continue
            log_weight = self._shift(rng)
            # weighted sampling without replacement: the `size` largest of log w - log(-log u)
            keys = log_weight - np.log(-np.log(rng.random(n)))
            yield np.argpartition(-keys, size)[:size]

    def _shift(self, rng: np.random.Generator) -> np.ndarray:
        name = self.dataset.features[int(rng.integers(len(self.dataset.features)))]
        column = self.X_pool[name].to_numpy()
        if name in self.dataset.categorical:
            values, counts = np.unique(column, return_counts=True)
            common = values[counts >= 0.02 * len(column)]
            if len(common) > 1:
                chosen = common[int(rng.integers(len(common)))]
                return np.where(column == chosen, np.log(CATEGORY_BOOST), 0.0)
        if name not in self._scores:
            ranks = stats.rankdata(column, method="average")
            self._scores[name] = stats.norm.ppf(ranks / (len(column) + 1))
        return TILT * (1.0 if rng.random() < 0.5 else -1.0) * self._scores[name]


def build(name: str, *, seed: int, n_train: int = 20_000, n_reference: int = 10_000) -> Case:
    """Split ``name`` at random with ``seed``, fit the model on the training rows, and score the rest."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    dataset = DATASETS[name]
    frame = _frame(name).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    X = frame[list(dataset.features)]
    y = frame[dataset.target].to_numpy()
    mask = [f in dataset.categorical for f in dataset.features]
    train = slice(0, n_train)
    ref = slice(n_train, n_train + n_reference)
    pool = slice(n_train + n_reference, n_train + n_reference + POOL_ROWS)
    if dataset.task == "classification":
        model: Any = HistGradientBoostingClassifier(max_iter=100, categorical_features=mask, random_state=seed)
        if dataset.model == "forest":
            from sklearn.ensemble import RandomForestClassifier

            model = RandomForestClassifier(n_estimators=50, min_samples_leaf=3, random_state=seed, n_jobs=1)
        elif dataset.model == "bayes":
            from sklearn.naive_bayes import GaussianNB

            model = GaussianNB()
        model.fit(X.iloc[train], y[train])

        def out(rows: slice) -> np.ndarray:
            return model.predict_proba(X.iloc[rows])
    else:
        model = HistGradientBoostingRegressor(max_iter=100, categorical_features=mask, random_state=seed)
        model.fit(X.iloc[train], y[train])

        def out(rows: slice) -> np.ndarray:
            return model.predict(X.iloc[rows])
    return Case(name, dataset, seed, X.iloc[ref].reset_index(drop=True), y[ref], out(ref),
                X.iloc[pool].reset_index(drop=True), y[pool], out(pool))


def realized(case: Case, rows: np.ndarray) -> dict[str, float]:
    """The chunk's realized metrics, by scikit-learn."""
    y, out = case.y_pool[rows], case.out_pool[rows]
    if case.dataset.task == "classification":
        return {"accuracy": float(accuracy_score(y, out.argmax(axis=1))),
                "roc_auc": float(roc_auc_score(y, out[:, 1]))}
    return {"mae": float(mean_absolute_error(y, out)), "rmse": float(np.sqrt(np.mean((out - y) ** 2)))}


def fit_estimator(case: Case, *, inputs: bool = True, **params: Any) -> Any:
    """A CBPE (given the holdout's inputs unless ``inputs`` is false) or a DLE, fitted on the holdout."""
    from loopwatch.performance import ConfidenceBasedEstimator, DirectLossEstimator

    if case.dataset.task == "classification":
        cbpe = ConfidenceBasedEstimator(classes=[0, 1], **params)
        if not inputs:  # as estimators fitted before they took inputs
            return cbpe.fit(case.out_ref, case.y_ref)
        return cbpe.fit(case.out_ref, case.y_ref, X_reference=case.X_ref)
    return DirectLossEstimator(**params).fit(case.X_ref, case.out_ref, case.y_ref)


def estimate(case: Case, estimator: Any, rows: np.ndarray) -> dict[str, Any]:
    if case.dataset.task == "classification":
        if getattr(estimator, "segments_", None) is None:
            return estimator.estimate(case.out_pool[rows])
        return estimator.estimate(case.out_pool[rows], X=case.X_pool.iloc[rows])
    return estimator.estimate(case.X_pool.iloc[rows], case.out_pool[rows])
