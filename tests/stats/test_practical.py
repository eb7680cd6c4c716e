"""Practical thresholds: known answers, checks against direct simulation and scipy, and properties.

* every threshold is at least its floor, at every window size;
* it never rises with the window size and is constant beyond N0 (hypothesis);
* each band matches a direct simulation of windows drawn from the reference (or scipy's
  null distribution) at the band's level;
* a drift is the conjunction: significant, and an effect at least the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopwatch.drift import build_profile, compare
from loopwatch.drift.config import DriftConfig
from loopwatch.errors import InvalidInput
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.stats.binned import js_distance
from loopwatch.stats.calibration import bootstrap_null, bootstrap_null_categorical
from loopwatch.stats.practical import (
    BAND_LEVEL,
    DEFAULT_FLOORS,
    auc_band,
    distance_band,
    ks_band,
    mean_ratio_band,
    practical,
    rate_band,
)
from loopwatch.stats.univariate import wasserstein_normed

N0 = 1000
REFERENCE = np.sort(np.random.default_rng(5).gamma(2.0, size=20_000))
NULL = bootstrap_null(REFERENCE, 5000, ["wasserstein_normed"], rng=np.random.default_rng(1))
COUNTS = {"a": 9000, "b": 6000, "c": 3000, "d": 1500, "e": 500}
NULL_CATEGORICAL = bootstrap_null_categorical(COUNTS, 5000, ["js_distance"], rng=np.random.default_rng(2))


def bands(n: int, band_rows: int = N0) -> dict[str, float]:
    """Every statistic's band at ``n`` rows, on fixed references."""
    return {
        "wasserstein_normed": distance_band(NULL, "wasserstein_normed", n_reference=REFERENCE.size, n_current=n,
                                            band_rows=band_rows),
        "js_distance": distance_band(NULL_CATEGORICAL, "js_distance", n_reference=20_000, n_current=n,
                                     band_rows=band_rows),
        "pca_reconstruction": mean_ratio_band(REFERENCE, n, band_rows=band_rows),
        "pca_ks": ks_band(6000, n, 4, band_rows=band_rows),
        "mmd": 0.0,
        "domain_classifier": auc_band(500, n, band_rows=band_rows),
        "outlier_rate": rate_band(0.01, n, 6000, band_rows=band_rows),
        "evasion_rate": rate_band(0.01, n, 500, band_rows=band_rows),
    }


def thresholds(n: int, band_rows: int = N0) -> dict[str, float]:
    return {name: practical(name, 0.0, band=band, band_rows=band_rows, overrides={}).threshold
            for name, band in bands(n, band_rows).items()}


@given(n=st.integers(1, 5_000_000))
@settings(max_examples=60, deadline=None)
def test_the_threshold_is_never_below_the_floor(n: int) -> None:
    for name, value in thresholds(n).items():
        assert value >= DEFAULT_FLOORS[name], name


@given(n=st.integers(1, 200_000), more=st.integers(0, 2_000_000), band_rows=st.integers(10, 20_000))
@settings(max_examples=80, deadline=None)
def test_the_threshold_never_rises_with_n_and_is_constant_beyond_n0(n: int, more: int, band_rows: int) -> None:
    smaller, larger = thresholds(n, band_rows), thresholds(n + more, band_rows)
    for name in smaller:
        assert larger[name] <= smaller[name] * (1 + 1e-12), name
    beyond = thresholds(band_rows + more, band_rows)
    at_n0 = thresholds(band_rows, band_rows)
    assert beyond == pytest.approx(at_n0, rel=1e-12)


def test_the_band_at_n0_is_what_small_windows_see_and_larger_windows_keep() -> None:
    # a 3-sd band at n rows would shrink like 1/sqrt(n): at 50,000 rows it would be 7 times
    # narrower than at 1,000, and flag what a p-value flags
    w = [bands(n)["wasserstein_normed"] for n in (250, 1000, 50_000)]
    assert w[0] == pytest.approx(2 * w[1], rel=0.1) and w[2] == w[1]


@pytest.mark.parametrize("m", [200, 1000])
def test_the_numeric_band_matches_windows_drawn_from_the_reference(m: int) -> None:
    rng = np.random.default_rng([7, m])
    simulated = np.array([wasserstein_normed(REFERENCE, np.sort(rng.choice(REFERENCE, m))) for _ in range(4000)])
    direct = float(np.quantile(simulated, BAND_LEVEL))
    band = bands(m)["wasserstein_normed"]
    assert band == pytest.approx(direct, rel=0.15)
    # and chance alone crosses it in about 0.135% of windows (at most 0.5% allowed here)
    assert np.mean(simulated >= band) <= 0.005


def test_the_categorical_band_matches_windows_drawn_from_the_reference() -> None:
    rng = np.random.default_rng(8)
    reference = np.array(list(COUNTS.values()), dtype=float)
    windows = rng.multinomial(500, reference / reference.sum(), size=4000)
    simulated = np.array([js_distance(reference, w) for w in windows])
    assert bands(500)["js_distance"] == pytest.approx(float(np.quantile(simulated, BAND_LEVEL)), rel=0.15)


def test_the_ks_band_is_kolmogorovs_quantile() -> None:
    # one component, an effectively infinite reference: scipy's asymptotic Kolmogorov law
    assert ks_band(10**12, 800, 1, band_rows=N0) == pytest.approx(
        stats.kstwobign.isf(1 - BAND_LEVEL) / math.sqrt(800), rel=0.01)


def test_the_auc_band_is_three_null_sds_of_mann_whitney() -> None:
    rng = np.random.default_rng(9)
    n1, n2 = 300, 200
    aucs = np.array([stats.mannwhitneyu(rng.random(n2), rng.random(n1)).statistic / (n1 * n2) - 0.5
                     for _ in range(3000)])
    assert auc_band(n1, n2, band_rows=N0) == pytest.approx(3.0 * aucs.std(), rel=0.1)


def test_the_rate_band_is_three_sds_of_a_difference_of_shares() -> None:
    rng = np.random.default_rng(10)
    p, m, n_cal = 0.02, 800, 4000
    diffs = rng.binomial(m, p, 20_000) / m - rng.binomial(n_cal, p, 20_000) / n_cal
    assert rate_band(p, m, n_cal, band_rows=N0) == pytest.approx(3.0 * diffs.std(), rel=0.05)


def test_the_reconstruction_band_is_three_sds_of_a_relative_mean() -> None:
    rng = np.random.default_rng(11)
    m = 400
    means = np.array([rng.choice(REFERENCE, m).mean() for _ in range(4000)]) / REFERENCE.mean() - 1
    # the band adds the reference mean's own (small) uncertainty
    assert mean_ratio_band(REFERENCE, m, band_rows=N0) == pytest.approx(3.0 * means.std(), rel=0.1)


def test_a_configured_threshold_wins_and_says_so() -> None:
    t = practical("js_distance", 0.07, band=0.2, band_rows=N0, overrides={"js_distance": 0.06})
    assert t.threshold == 0.06 and t.source == "configured" and t.large_enough
    t = practical("js_distance", 0.07, band=0.2, band_rows=N0, overrides={})
    assert t.threshold == 0.2 and t.source == "calibrated" and not t.large_enough


# ------------------------------------------------------------------ the decision


def frame(rng: np.random.Generator, n: int, shift: float = 0.0, share: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0, n),
        "z": rng.normal(size=n),
        "c": rng.choice(["a", "b"], n, p=[share, 1 - share]),
    })


def decisions(report) -> list[tuple[str, bool, bool | None, float, float]]:  # type: ignore[no-untyped-def]
    rows = []
    for family in (report.features, report.multivariate, report.outliers):
        for name, item in family.items():
            assert item.practical is not None, name
            rows.append((name, item.drift, item.significant, item.practical.effect, item.practical.threshold))
    return rows


@pytest.mark.parametrize("shift", [0.0, 0.08, 0.3])
def test_drift_is_significant_and_large_enough_everywhere(shift: float) -> None:
    rng = np.random.default_rng([12, int(shift * 100)])
    profile = build_profile(frame(rng, 4000), numeric=["x", "z"], categorical=["c"], seed=0)
    report = compare(profile, frame(rng, 20_000, shift=shift, share=0.5 - shift / 2), mmd_permutations=99)
    for name, drift, significant, effect, threshold in decisions(report):
        assert drift == bool(significant and effect >= threshold), name
    if shift == 0.3:
        assert report.features["x"].drift and report.features["c"].drift


def test_a_significant_effect_below_the_threshold_is_not_drift_and_the_converse() -> None:
    rng = np.random.default_rng(13)
    profile = build_profile(frame(rng, 50_000), numeric=["x", "z"], categorical=["c"], joint=False, seed=0)
    current = frame(rng, 50_000, shift=0.06)
    x = compare(profile, current, multivariate=False, outliers=False).features["x"]
    assert x.significant and x.effect < x.practical_threshold and not x.drift
    lowered = compare(profile, current, multivariate=False, outliers=False,
                      practical_thresholds={"wasserstein_normed": 0.05}).features["x"]
    assert lowered.drift and lowered.practical is not None and lowered.practical.source == "configured"
    # a large effect on 12 rows is not significant: no drift either
    tiny = compare(profile, frame(rng, 12, shift=0.5), multivariate=False, outliers=False,
                   practical_thresholds={"wasserstein_normed": 0.0}).features["x"]
    assert not tiny.significant and not tiny.drift


def test_the_report_json_carries_the_threshold_beside_each_statistic() -> None:
    rng = np.random.default_rng(14)
    data = compare(frame(rng, 3000), frame(rng, 1500, shift=0.5), mmd_permutations=99).to_dict()
    for family in ("features", "multivariate", "outliers"):
        for name, item in data[family].items():
            assert {"significant", "effect", "practical_threshold", "practical"} <= set(item), name
            assert item["practical_threshold"] >= item["practical"]["floor"] or item["practical"]["source"] == "configured"
    assert data["config"]["practical_band_rows"] == 1000 and data["config"]["practical_thresholds"] == {}


@pytest.mark.parametrize("bad", [
    {"practical_thresholds": {"psi": 0.1}},
    {"practical_thresholds": {"js_distance": -0.1}},
    {"practical_thresholds": {"js_distance": float("nan")}},
    {"practical_thresholds": {"js_distance": True}},
    {"practical_thresholds": ["js_distance"]},
    {"practical_band_rows": 5},
    {"practical_band_rows": 2.5},
])
def test_bad_settings_are_refused_clearly(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput):
        DriftConfig(**bad)
    with pytest.raises(InvalidInput):
        MonitoringConfig.from_dict(bad)


def test_the_monitoring_configuration_keeps_its_settings() -> None:
    config = MonitoringConfig.from_dict({"practical_thresholds": {"js_distance": 0.1}, "practical_band_rows": 2000})
    assert config.practical_thresholds == {"js_distance": 0.1} and config.practical_band_rows == 2000
    assert MonitoringConfig.from_dict(config.to_dict()) == config
