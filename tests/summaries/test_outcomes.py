"""Estimation and label-join sums: estimates from merged windows equal the estimators' on the rows."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, precision_score, recall_score

from loopwatch.errors import InvalidInput
from loopwatch.performance import (
    ConfidenceBasedEstimator,
    DirectLossEstimator,
    classification_metrics,
    regression_metrics,
)
from loopwatch.summaries.log_bins import LogHistogram
from loopwatch.summaries.labels import RANK_SCORE_BINS, LabelSums, ScoredLabels
from loopwatch.summaries.outcomes import ConfidenceSums, LossSums, exact_sums
from tests.realdata import fertility

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=40), st.lists(st.integers(0, 2), max_size=40))
def test_exact_sums_are_the_exact_sums_per_group(values: list[float], groups: list[int]) -> None:
    groups = (groups + [0] * len(values))[: len(values)]
    got = exact_sums(np.array(values, dtype=np.float64), np.array(groups, dtype=np.int64), 3)
    assert [s.as_fraction() for s in got] == [sum((Fraction(v) for v, g in zip(values, groups) if g == j), Fraction(0))
                                            for j in range(3)]


def merged(parts):
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part)
    return out


def cbpe_world(rng: np.random.Generator, n: int, k: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, k)) * 1.5
    logits[:, 0] += shift
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(k, p=p) for p in proba])
    return np.round(proba, 4), truth  # rounded: ties of scores, as served probabilities have


@pytest.mark.parametrize("k", [2, 3])
def test_cbpe_from_merged_windows_equals_cbpe_on_the_rows(k: int) -> None:
    rng = np.random.default_rng(5)
    proba, truth = cbpe_world(rng, 3000, k)
    cbpe = ConfidenceBasedEstimator(classes=list(range(k)), n_sim=20, calibration_resamples=2).fit(proba, truth)
    window, _ = cbpe_world(rng, 2400, k, shift=0.7)
    served = cbpe.predict_indices(window)
    calibrated = cbpe.calibrate(window)
    batches = [slice(0, 700), slice(700, 1500), slice(1500, 2400)]
    parts = [ConfidenceSums.from_rows(window[s], calibrated[s], served[s], positive=cbpe.positive_index_)
             for s in batches]
    whole = ConfidenceSums.from_rows(window, calibrated, served, positive=cbpe.positive_index_)
    assert merged(parts) == whole == merged(parts[::-1]) == parts[0].merge(parts[1].merge(parts[2]))
    assert whole.merge(ConfidenceSums.empty(n_classes=k, positive=cbpe.positive_index_)) == whole
    got, rows = whole.estimate(), cbpe.estimate(window)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert getattr(got, name) == pytest.approx(rows[name].value, abs=1e-12)
    assert 0 < got.roc_auc_bound < 0.02
    assert abs(got.roc_auc - rows["roc_auc"].value) <= got.roc_auc_bound + 1e-12
    # the accuracy's spread: the Poisson-binomial standard deviation of the calibrated rows
    q = calibrated[np.arange(len(window)), served]
    assert got.accuracy_sd == pytest.approx(math.sqrt(np.sum(q * (1 - q))) / len(window), rel=1e-12)
    assert ConfidenceSums.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole


def test_the_auc_bound_shrinks_with_finer_calibration_bins() -> None:
    rng = np.random.default_rng(8)
    proba, truth = cbpe_world(rng, 2000, 2)
    cbpe = ConfidenceBasedEstimator(classes=[0, 1], n_sim=20, calibration_resamples=2).fit(proba, truth)
    window, _ = cbpe_world(rng, 2000, 2)
    rows = cbpe.estimate(window)["roc_auc"].value
    args = (window, cbpe.calibrate(window), cbpe.predict_indices(window))
    coarse = ConfidenceSums.from_rows(*args, positive=1, score_bins=10).estimate()
    fine = ConfidenceSums.from_rows(*args, positive=1, score_bins=1000).estimate()
    assert fine.roc_auc_bound < coarse.roc_auc_bound / 20
    for got in (coarse, fine):
        assert abs(got.roc_auc - rows) <= got.roc_auc_bound + 1e-12


def test_cbpe_sums_on_real_census_windows() -> None:
    # a logistic model of a third child on 1980 census mothers; CBPE on its holdout; four
    # windows of mothers over 30 (a covariate shift) summarised, merged, and estimated
    table = fertility()
    features = ["gender1", "gender2", "afam", "hispanic", "other", "age", "work"]
    train, holdout, later = table.iloc[:20_000], table.iloc[20_000:30_000], table.iloc[30_000:]
    model = LogisticRegression(max_iter=500).fit(train[features], train["morekids"])
    cbpe = ConfidenceBasedEstimator(classes=[0, 1], n_sim=20, calibration_resamples=2).fit(
        model.predict_proba(holdout[features]), holdout["morekids"].to_numpy())
    window = later[later["age"] > 30].iloc[:8000]
    proba = model.predict_proba(window[features])
    served, calibrated = cbpe.predict_indices(proba), cbpe.calibrate(proba)
    parts = [ConfidenceSums.from_rows(proba[i:i + 2000], calibrated[i:i + 2000], served[i:i + 2000], positive=1)
             for i in range(0, 8000, 2000)]
    got, rows = merged(parts).estimate(), cbpe.estimate(proba)
    assert got.accuracy == pytest.approx(rows["accuracy"].value, abs=1e-12)
    assert got.f1 == pytest.approx(rows["f1"].value, abs=1e-12)
    assert abs(got.roc_auc - rows["roc_auc"].value) <= got.roc_auc_bound + 1e-12


def regression_world(rng: np.random.Generator, n: int, shift: float = 0.0):
    x = rng.normal(size=(n, 2))
    x[:, 0] += shift
    prediction = 2 * x[:, 0] + np.sin(x[:, 1])
    return x, prediction, prediction + rng.normal(size=n) * (0.3 + 0.5 * np.abs(x[:, 0]))


def test_dle_from_merged_windows_equals_dle_on_the_rows() -> None:
    rng = np.random.default_rng(2)
    x, prediction, y = regression_world(rng, 1500)
    dle = DirectLossEstimator(max_iter=15).fit(x, prediction, y)
    wx, wp, _ = regression_world(rng, 1200, shift=0.5)
    parts = [LossSums.from_losses(*dle.row_losses(wx[i:i + 400], wp[i:i + 400])) for i in range(0, 1200, 400)]
    whole = LossSums.from_losses(*dle.row_losses(wx, wp))
    assert merged(parts) == whole == merged(parts[::-1]) and whole.merge(LossSums()) == whole
    got, rows = whole.estimate(dle), dle.estimate(wx, wp)
    for name in ("mae", "rmse"):
        for attribute in ("value", "ci_low", "ci_high"):
            assert getattr(got[name], attribute) == pytest.approx(getattr(rows[name], attribute), rel=1e-9)
        assert got[name].n == rows[name].n == 1200
    assert LossSums.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole
    assert math.isnan(LossSums().estimate(dle)["mae"].value)


labels = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc"), st.floats(0, 1e6)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(labels, labels, labels)
def test_label_sums_merge_like_one_join(a, b, c) -> None:
    def part(pairs):
        return LabelSums.from_pairs(task="classification", predicted=[p for p, _, _ in pairs],
                                    truth=[t for _, t, _ in pairs], delay_seconds=[d for _, _, d in pairs],
                                    classes="abc")

    x, y, z = part(a), part(b), part(c)
    assert x.merge(y) == y.merge(x) and x.merge(y).merge(z) == x.merge(y.merge(z)) == part(a + b + c)
    assert x.merge(LabelSums(task="classification")) == x
    assert LabelSums.from_dict(json.loads(json.dumps(x.to_dict()))) == x


arrivals = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc"), st.floats(0, 1e6),
                              st.integers(0, 3)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(arrivals, arrivals)
def test_label_sums_split_by_arrival_day_merge_day_by_day(a, b) -> None:
    """A part split by the day its labels became known merges day by day, round-trips, and what
    was known by the end of a day is the join of the labels that arrived up to it."""
    from loopwatch.summaries.labels import DAY_US

    def plain(pairs):
        return LabelSums.from_pairs(task="classification", predicted=[p for p, *_ in pairs],
                                    truth=[t for _, t, *_ in pairs], delay_seconds=[d for _, _, d, _ in pairs],
                                    classes="abc")

    def split(pairs):
        days = {day for *_, day in pairs}
        return plain(pairs).with_arrivals({day * DAY_US: plain([p for p in pairs if p[3] == day]) for day in days})

    x, y = split(a), split(b)
    both = x.merge(y)
    assert both == y.merge(x) == split(a + b)
    assert LabelSums.from_dict(json.loads(json.dumps(both.to_dict()))) == both
    for day in range(4):
        known = both.known_by((day + 1) * DAY_US)
        expected = [p for p in a + b if p[3] <= day]
        assert (known is None) == (not expected)
        if known is not None:
            assert known == plain(expected)
    # a part without the split leaves the merge without it: what arrived when is not known
    if a and b:
        assert not x.merge(plain(b)).arrivals
    one = ("a", "b", 1.0, 0)
    with pytest.raises(InvalidInput, match="split the whole join"):
        plain([one, one]).with_arrivals({0: plain([one])})


def test_realized_metrics_from_label_sums_match_sklearn_and_the_rows() -> None:
    rng = np.random.default_rng(4)
    truth, predicted = rng.choice(["x", "y", "z"], 900), rng.choice(["x", "y", "z"], 900)
    delays = rng.exponential(36_000, 900)
    parts = [LabelSums.from_pairs(task="classification", predicted=predicted[i:i + 300], truth=truth[i:i + 300],
                                  delay_seconds=delays[i:i + 300], classes=["x", "y", "z"]) for i in (0, 300, 600)]
    got = merged(parts).metrics(n_classes=3)
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert got[name] == pytest.approx(score(truth, predicted, average="macro"), abs=1e-12)
    binary = LabelSums.from_pairs(task="classification", predicted=predicted == "x", truth=truth == "x",
                                  delay_seconds=delays, classes=[False, True]).metrics(n_classes=2, positive=1)
    assert binary["f1"] == pytest.approx(f1_score(truth == "x", predicted == "x"), abs=1e-12)
    # label delays: the quantiles the evidence reports, each within its bin of numpy's
    delay = merged(parts).delay
    for q in (0.1, 0.5, 0.9):
        exact = np.percentile(np.floor(delays), 100 * q, method="inverted_cdf")
        bound = delay.quantile(q)
        assert bound.low <= exact <= bound.high and bound.relative_error < 0.05


@pytest.mark.parametrize("k", [2, 3])
def test_scored_label_sums_give_the_realized_metrics_of_the_rows(k: int) -> None:
    rng = np.random.default_rng(k)
    proba, truth = cbpe_world(rng, 3000, k)
    proba = proba / proba.sum(axis=1, keepdims=True)
    served = proba.argmax(axis=1)
    parts = [LabelSums.from_pairs(task="classification", predicted=served[i:i + 1000], truth=truth[i:i + 1000],
                                  delay_seconds=np.zeros(1000), classes=range(k), proba=proba[i:i + 1000])
             for i in range(0, 3000, 1000)]
    whole = merged(parts)
    assert whole == merged(parts[::-1]) and whole.scored is not None and whole.scored.n == 3000
    got = whole.metrics(n_classes=k, positive=1 if k == 2 else None)
    rows = classification_metrics(truth, served, proba, classes=list(range(k)), n_boot=0)
    for name in ("accuracy", "precision", "recall", "f1", "log_loss", "brier", "ece"):
        assert got[name] == pytest.approx(rows[name].value, abs=1e-12), name
    assert 0 < got["roc_auc_bound"] < 0.02 and abs(got["roc_auc"] - rows["roc_auc"].value) <= got["roc_auc_bound"]
    assert LabelSums.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole
    with pytest.raises(InvalidInput, match="with probabilities and one without"):
        whole.merge(LabelSums.from_pairs(task="classification", predicted=[0], truth=[0], delay_seconds=[0.0],
                                         classes=range(k)))


@given(st.integers(0, 2**32 - 1), st.sampled_from([2, 3]))
@settings(max_examples=25, deadline=None)
def test_scored_parts_of_nested_score_bins_merge_on_the_coarser_exactly(seed: int, k: int) -> None:
    # a part stored on the old 100 bins meets one on the realized AUC's 1,000: the merge is the
    # coarser part of all the rows, not an error (a monitor must not die of its own upgrade)
    rng = np.random.default_rng(seed)
    # unrounded scores: a score on a bin edge (0.29) may fall either side of it in floating point
    # (0.29 * 100 < 29 but 0.29 * 1000 == 290), so the edges' rows are where coarsening can differ
    proba = rng.dirichlet(np.ones(k) * 0.7, size=400)
    truth = np.array([rng.choice(k, p=p) for p in proba])
    positive = 1 if k == 2 else None
    old = ScoredLabels.from_rows(proba[:150], truth[:150], positive=positive, score_bins=100)
    new = ScoredLabels.from_rows(proba[150:], truth[150:], positive=positive)
    whole = ScoredLabels.from_rows(proba, truth, positive=positive, score_bins=100)
    assert new.score_bins == RANK_SCORE_BINS
    assert old.merge(new) == new.merge(old) == whole
    assert ScoredLabels.from_rows(proba, truth, positive=positive).coarsened(100) == whole
    assert ScoredLabels.from_rows(proba, truth, positive=positive).metrics()["roc_auc_bound"] <= whole.metrics()["roc_auc_bound"]
    with pytest.raises(InvalidInput, match="do not nest"):
        old.merge(ScoredLabels.from_rows(proba[:5], truth[:5], positive=positive, score_bins=30))


def test_regression_label_sums_on_real_flight_delays() -> None:
    from tests.realdata import flights

    table = flights().dropna(subset=["air_time"]).iloc[:30_000]
    # a crude model of air time from distance, and its errors, window by window
    predicted = (table["distance"] / 7.8 + 15).to_numpy()
    truth = table["air_time"].to_numpy()
    parts = [LabelSums.from_pairs(task="regression", predicted=predicted[i:i + 5000], truth=truth[i:i + 5000],
                                  delay_seconds=np.full(len(truth[i:i + 5000]), 3600.0))
             for i in range(0, len(truth), 5000)]
    got = merged(parts).metrics()
    rows = regression_metrics(truth, predicted, n_boot=0)
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-12)
    for name in ("mae", "rmse", "mape"):
        assert got[name] == pytest.approx(rows[name].value, rel=1e-12)
    assert merged(parts).delay.quantile(0.5).low == merged(parts).delay.quantile(0.5).high == 3600


def test_a_late_or_corrected_label_counts_once_when_the_window_is_rebuilt() -> None:
    events = pd.DataFrame({"request_id": ["a", "b", "c"], "predicted": [1, 0, 1], "at": [0.0, 0.0, 0.0]})

    def rebuild(label_log: pd.DataFrame) -> LabelSums:
        # the join: each event with its latest label
        latest = label_log.sort_values("arrived").groupby("request_id").tail(1)
        join = events.merge(latest, on="request_id")
        return LabelSums.from_pairs(task="classification", predicted=join["predicted"].tolist(),
                                    truth=join["truth"].tolist(), delay_seconds=(join["arrived"] - join["at"]).tolist(),
                                    classes=[0, 1])

    log = pd.DataFrame({"request_id": ["a", "c"], "truth": [1, 0], "arrived": [60.0, 30.0]})
    first = rebuild(log)
    assert first.n == 2 and first.metrics(n_classes=2, positive=1)["accuracy"] == 0.5
    # the same label sent again changes nothing; a late label and a correction count once each
    assert rebuild(pd.concat([log, log.iloc[:1]])) == first
    later = pd.concat([log, pd.DataFrame({"request_id": ["b", "c"], "truth": [1, 1], "arrived": [7200.0, 9000.0]})])
    rebuilt = rebuild(later)
    assert rebuilt.n == 3 and rebuilt.confusion == {(1, 0): 1, (1, 1): 2}
    assert rebuild(pd.concat([later, later])) == rebuilt


def test_log_histogram_quantiles_bound_numpys() -> None:
    rng = np.random.default_rng(1)
    values = np.rint(rng.lognormal(9, 1.5, 5000)).astype(np.int64)
    whole = LogHistogram.from_values(values)
    assert merged([LogHistogram.from_values(values[i:i + 1000]) for i in range(0, 5000, 1000)]) == whole
    assert whole.total == int(values.sum()) and whole.mean() == pytest.approx(values.mean())
    for q in (0.0, 0.01, 0.5, 0.99, 1.0):
        exact = np.percentile(values, 100 * q, method="inverted_cdf")
        got = whole.quantile(q)
        assert got.low <= exact <= got.high and got.relative_error <= 2 ** (1 / 16) - 1 + 1e-9
    assert LogHistogram.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(InvalidInput, match="finite"):
        exact_sums(np.array([1.0, np.nan]))
    with pytest.raises(InvalidInput, match="not one of the classes"):
        LabelSums.from_pairs(task="classification", predicted=["a"], truth=["q"], delay_seconds=[1.0], classes="ab")
    with pytest.raises(InvalidInput, match="cannot merge"):
        LabelSums(task="classification").merge(LabelSums(task="regression"))
    with pytest.raises(InvalidInput, match="non-negative"):
        LogHistogram.from_values([-1])
    with pytest.raises(InvalidInput, match="out of range"):
        ConfidenceSums.from_rows([[0.5, 0.5]], [[0.5, 0.5]], [2], positive=1)
    with pytest.raises(InvalidInput, match="positive class"):
        ConfidenceSums.from_rows([[0.5, 0.5]], [[0.5, 0.5]], [1], positive=2)
