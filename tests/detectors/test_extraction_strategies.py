"""The extraction detector against the three ways of copying a model by querying it, on
the demo's churn model: queries drawn uniformly over the feature box, queries chosen near the
decision boundary (what active learning converges to), and real customers swept one feature
at a time. Each is flagged on the signal it produces, alone, where the mean of the signals
(the rule before) stays below its threshold. Then known answers for each part: the support
signal and its one-broken-column rule, the grid signal matched to the client's size, the
judgement against other clients and the client's history, the nearest-neighbour arithmetic
against scipy, and the false-alarm rate on clients of the training population."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from loopwatch.detectors.extraction import ExtractionDetector, QueryFeatures
from loopwatch.detectors.query_geometry import median_nn_dropping, nearest_dropping
from loopwatch.simulate import FEATURES, sample_customers
from tests.extraction_scenario import Box, lattice_queries


@pytest.fixture(scope="module")
def box(churn_training: pd.DataFrame, model: Any) -> Box:
    return Box(churn_training, list(FEATURES), tuple(model.schema.categorical))


def _mean_rule(result: Any) -> float:
    """The score before: the mean of the signals, against a threshold of at least 0.5."""
    return float(np.mean([result.signals[k] for k in ("boundary", "grid", "spread")]))


# --- the three strategies ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_queries_over_the_feature_box_are_flagged_off_the_support(
    detector: ExtractionDetector, proba: Any, box: Box, seed: int
) -> None:
    queries = box.uniform(1000, np.random.default_rng(seed))
    result = detector.score(queries, proba(queries))
    assert result.flagged and "support" in result.reasons, result.to_dict()
    # measured: 86% to 87% of the queries lie off the support, against 5% of held-out real rows
    assert result.features.off_support_share > 0.75
    assert _mean_rule(result) < 0.5  # the mean of the other three would not have named it


def test_queries_chosen_near_the_boundary_are_flagged(detector: ExtractionDetector, proba: Any, box: Box) -> None:
    """Active learning ends where the model is least sure: most queries near its boundary."""
    candidates = box.uniform(40_000, np.random.default_rng(3))
    p = proba(candidates)[:, 1]
    queries = candidates[np.abs(p - 0.5) < 0.1].head(400).reset_index(drop=True)
    assert len(queries) == 400
    result = detector.score(queries, proba(queries))
    # measured: boundary 1.0; support 0.40 (near the boundary lies nearer real customers)
    assert result.flagged and result.reasons[0] == "boundary", result.to_dict()
    # the boundary alone names it, without the inputs (a model that does not log them)
    alone = detector.score(None, proba(queries))
    assert alone.flagged and alone.reasons == ("boundary",)


def test_real_customers_swept_one_feature_at_a_time_are_flagged(
    detector: ExtractionDetector, proba: Any, box: Box
) -> None:
    anchors = sample_customers(np.random.default_rng(4), n=10).dropna().head(6)
    queries = lattice_queries(box, anchors[list(FEATURES)], 300)
    result = detector.score(queries, proba(queries))
    assert result.flagged and result.reasons[0] == "grid", result.to_dict()
    assert result.features.neighbour_share == 1.0


# --- the support signal -----------------------------------------------------------------


def _related(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Four features, three of them tied to one hidden size: real rows follow the ties."""
    size = rng.normal(10.0, 2.0, n)
    return pd.DataFrame({"a": size + rng.normal(0.0, 0.3, n), "b": 2.0 * size + rng.normal(0.0, 0.5, n),
                         "c": np.exp(size / 5.0) + rng.normal(0.0, 0.4, n), "d": rng.gamma(3.0, 1.0, n)})


@pytest.fixture(scope="module")
def related() -> ExtractionDetector:
    return ExtractionDetector(seed=0).fit(_related(np.random.default_rng(0), 3000))


def test_support_known_answers(related: ExtractionDetector) -> None:
    rng = np.random.default_rng(1)
    real = related.score(_related(rng, 800))
    # real rows: about the held-out share (5%) off the support, no signal (measured 4%)
    assert real.features.off_support_share < 0.08 and real.signals["support"] < 0.05 and not real.flagged
    # a segment of real rows (the largest fifth) lies in the sparse tail, still near real rows
    # (measured: 10.6% off, a signal of 0.06)
    tail = _related(rng, 8000)
    segment = related.score(tail[tail["a"] > tail["a"].quantile(0.8)].head(800))
    assert segment.signals["support"] < 0.2 and not segment.flagged
    # the ties broken: each feature drawn on its own over its range
    box = pd.DataFrame({"a": rng.uniform(4, 16, 800), "b": rng.uniform(8, 32, 800), "c": rng.uniform(1, 25, 800),
                        "d": rng.gamma(3.0, 1.0, 800)})
    broken = related.score(box)
    # measured: 85% off the support
    assert broken.features.off_support_share > 0.6 and broken.flagged and broken.reasons[0] == "support"
    # one column broken (d sent x60): every row is off the support with d, none without it
    scaled = _related(rng, 800).assign(d=lambda f: f["d"] * 60.0)
    one_column = related.score(scaled)
    assert one_column.features.support_left_out == "d" and one_column.features.off_support_share < 0.1
    assert one_column.features.spread_left_out == "d" and not one_column.flagged


# --- the grid signal matched to the client's size ----------------------------------------


def _discrete(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Few distinct values per feature: large samples hold many one-feature twins by chance."""
    return pd.DataFrame({"x": rng.integers(0, 12, n).astype(float), "y": rng.integers(0, 8, n).astype(float),
                         "z": rng.choice(["p", "q", "r"], n)})


def test_a_large_client_of_a_discrete_table_is_compared_at_its_own_size() -> None:
    detector = ExtractionDetector(seed=0).fit(_discrete(np.random.default_rng(0), 1000), numeric=["x", "y"])
    big = detector.score(_discrete(np.random.default_rng(1), 5000))
    # nearly every distinct row has a twin, as in the reference at that size: no signal
    assert big.features.neighbour_share > 0.9 and big.features.expected_grid is not None
    assert big.features.expected_grid > 0.4
    assert big.signals["grid"] < 0.2 and not big.flagged
    assert big.features.grid_rows == big.features.n_distinct <= detector.max_grid_rows


# --- judged against the other clients and the client's own history ------------------------


def _features(*, n: int = 200, boundary: float | None = 0.1, spread: float | None = 1.0) -> QueryFeatures:
    return QueryFeatures(n_rows=n, n_distinct=n, near_boundary_share=boundary,
                         expected_near_boundary_share=None if boundary is None else 0.1,
                         neighbour_share=0.0, step_regularity=None, step_entropy=None, spread_ratio=spread,
                         grid_rows=n, expected_grid=0.0, off_support_share=0.0, expected_off_support_share=0.01)


@pytest.fixture(scope="module")
def judge() -> ExtractionDetector:
    """Fitted with outputs of which exactly 10% are near the boundary."""
    p = np.where(np.arange(3000) % 10 == 0, 0.5, 0.9)
    return ExtractionDetector(seed=0).fit(_related(np.random.default_rng(0), 3000),
                                          probabilities=np.column_stack([1 - p, p]))


def test_a_signal_counts_at_its_weakest_over_the_baselines(judge: ExtractionDetector) -> None:
    related = judge
    assert related.reference_boundary_share_ == pytest.approx(0.1)
    client = _features(boundary=0.8)
    alone = related.decide(client)
    assert alone.against["boundary"] == {"reference": pytest.approx(0.7 / 0.9)}
    assert alone.flagged and alone.reasons == ("boundary",)
    # everyone's traffic moved to the boundary (a drift): no client's signal
    crowd = related.decide(client, others=[_features(boundary=0.85), _features(boundary=0.8), _features(boundary=0.1)])
    assert crowd.against["boundary"]["others"] == pytest.approx(0.0)
    assert crowd.signals["boundary"] == pytest.approx(0.0) and not crowd.flagged
    # its own normal: it always sends cases near the boundary (median of its history 0.6)
    own = related.decide(client, history=[_features(boundary=0.5), _features(boundary=0.6), _features(boundary=0.7)])
    assert own.against["boundary"]["history"] == pytest.approx((0.8 - 0.6) / 0.4)
    assert own.signals["boundary"] == pytest.approx(0.5)
    # baselines of fewer than min_rows rows say nothing
    small = related.decide(client, others=[_features(n=10, boundary=0.8)])
    assert "others" not in small.against["boundary"] and small.flagged
    # the spread is a distance in log ratio, either way
    packed = related.decide(_features(spread=0.25), others=[_features(spread=0.5)])
    assert packed.against["spread"]["reference"] == pytest.approx(1.0)
    assert packed.against["spread"]["others"] == pytest.approx(0.5)


@given(st.floats(0, 1), st.lists(st.floats(0, 1), max_size=4), st.lists(st.floats(0, 1), max_size=4),
       st.floats(0.05, 20), st.integers(1, 400))
@settings(max_examples=60, deadline=None)
def test_baselines_never_raise_a_signal_and_the_score_is_the_strongest_over_its_threshold(
    judge: ExtractionDetector, share: float, others: list[float], history: list[float], spread: float, n: int
) -> None:
    related = judge
    client = _features(n=n, boundary=share, spread=spread)
    alone = related.decide(client)
    judged = related.decide(client, others=[_features(boundary=b) for b in others],
                            history=[_features(boundary=b, spread=spread * 2) for b in history])
    for name, value in judged.signals.items():
        assert 0.0 <= value <= alone.signals[name] + 1e-12
        assert value == min(judged.against[name].values())
    assert judged.score == pytest.approx(max(v / judged.thresholds[k] for k, v in judged.signals.items()))
    assert judged.flagged == (judged.score >= 1.0 and n >= related.min_rows)
    assert judged.reasons == tuple(sorted((k for k, v in judged.signals.items() if v >= judged.thresholds[k]),
                                          key=lambda k: (-judged.signals[k] / judged.thresholds[k], k)))


# --- the arithmetic against scipy ---------------------------------------------------------


@given(st.integers(2, 25), st.integers(1, 30), st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1,
                                                        max_size=4), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_distances_with_a_group_left_out_match_scipy(
    n: int, m: int, blocks: list[tuple[int, bool]], seed: int
) -> None:
    """Groups of numbers, and one-hot blocks as categories are encoded (their distances taken
    from the categories' codes), against scipy's distances on the columns kept."""
    rng = np.random.default_rng(seed)
    widths = [w for w, _ in blocks]
    width = sum(widths)
    x, y = rng.normal(size=(n, width)), rng.normal(size=(m, width))
    edges = np.cumsum([0, *widths])
    for (w, one_hot), lo in zip(blocks, edges[:-1]):
        if one_hot and w > 1:
            for rows in (x, y):
                rows[:, lo:lo + w] = np.eye(w)[rng.integers(0, w, len(rows))] / np.sqrt(2.0)
    groups = [np.arange(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    choices = [np.arange(width)] + [np.setdiff1d(np.arange(width), g) for g in groups]
    nearest = nearest_dropping(x, y, groups)
    median = median_nn_dropping(x, groups)
    for k, columns in enumerate(choices):
        if columns.size == 0:
            expected_nearest = np.zeros(n)
            expected_median = 0.0
        else:
            expected_nearest = cdist(x[:, columns], y[:, columns]).min(axis=1)
            within = cdist(x[:, columns], x[:, columns])
            np.fill_diagonal(within, np.inf)
            expected_median = float(np.median(within.min(axis=1)))
        np.testing.assert_allclose(nearest[:, k], expected_nearest, atol=1e-6)
        assert median[k] == pytest.approx(expected_median, abs=1e-6)


# --- the false-alarm rate on clients of the training population -----------------------------


def test_clients_of_the_training_population_are_not_flagged(detector: ExtractionDetector, proba: Any) -> None:
    """100 clients of fresh customers of the stable population (not reference rows), of 50 to
    2,000 rows: the stated rate is 1% (all signals together); measured 0 of 100 (and 0 of
    400 in docs/security.md)."""
    rng = np.random.default_rng(12)
    sizes = np.exp(rng.uniform(np.log(50), np.log(2000), size=100)).round().astype(int)
    results = []
    for size in sizes:
        rows = sample_customers(rng, n=int(size))[list(FEATURES)]
        results.append(detector.score(rows, proba(rows)))
    assert sum(r.flagged for r in results) <= 1  # 1% of 100; measured 0
    # measured: the highest is 0.11 of the thresholds (0.21 over the 400 clients)
    assert max(r.score for r in results) < 0.4
