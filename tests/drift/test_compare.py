"""compare(): known answers for each kind of change, the effect-size gate, and profile equivalence.

The statistics themselves are checked against scipy in tests/stats; here the
question is whether the comparison of two tables reaches the right verdict.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from loopwatch.drift import ReferenceProfile, build_profile, compare
from loopwatch.errors import InvalidInput

NUMERIC = ["x", "y", "z"]
CATEGORICAL = ["c"]
N_REFERENCE = 2000


def draw(rng: np.random.Generator, n: int, *, x_shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, n) + x_shift,
            "y": rng.normal(5.0, 2.0, n),
            "z": rng.exponential(3.0, n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return draw(np.random.default_rng(1), N_REFERENCE)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return build_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL, seed=0)


@pytest.fixture(scope="module")
def stable(reference: pd.DataFrame) -> pd.DataFrame:
    return draw(np.random.default_rng(2), 1000)


def test_the_stable_sample_is_quiet(profile: ReferenceProfile, stable: pd.DataFrame) -> None:
    report = compare(profile, stable)
    assert not report.dataset_drift
    assert report.drifted_features == []
    assert set(report.features) == set(NUMERIC + CATEGORICAL)


def test_a_mean_shift_in_one_feature(profile: ReferenceProfile) -> None:
    current = draw(np.random.default_rng(3), 1000, x_shift=0.5)
    report = compare(profile, current)
    assert report.dataset_drift
    assert report.drifted_features == ["x"]
    x = report.features["x"]
    assert x.decided_by == "ks" and x.statistics["ks"].p_value_adjusted < 1e-6
    assert x.statistics["wasserstein_normed"] == pytest.approx(0.5, abs=0.1)
    assert all(not report.features[f].drift for f in ("y", "z", "c"))


def test_a_new_category(profile: ReferenceProfile, stable: pd.DataFrame) -> None:
    current = stable.copy()
    current.loc[current.index[:100], "c"] = "brand-new"
    report = compare(profile, current)
    c = report.features["c"]
    assert c.drift and c.decided_by == "chi2"
    assert c.statistics["chi2"].p_value < 1e-10
    assert "brand-new" in c.distribution["categories"]
    assert report.data_quality.unseen_categories == {"c": {"brand-new": 100}}
    assert report.dataset_drift
    # the multivariate tests still ran (an unseen category encodes as all zeros)
    assert set(report.multivariate) == {"pca_reconstruction", "pca_ks", "mmd", "domain_classifier"}


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return pd.DataFrame({"a": z[:, 0], "b": 3.0 + 2.0 * z[:, 1]})


def test_a_change_of_correlation_alone_is_dataset_drift() -> None:
    rng = np.random.default_rng(4)
    reference, current = correlated(rng, 3000, 0.8), correlated(rng, 3000, 0.0)
    report = compare(reference, current, mmd_permutations=199)
    # every marginal is unchanged, so no feature may drift ...
    assert report.drifted_features == []
    assert all(f.statistics["ks"].p_value > 0.01 for f in report.features.values())
    # ... and yet the data did: the multivariate family says so
    assert report.dataset_drift
    assert [n for n, m in report.multivariate.items() if m.drift] == [
        "pca_reconstruction", "mmd", "domain_classifier"]
    # one principal component's marginal moved too (significantly), but by less than a KS distance
    # reaches by chance between 900 held-out reference rows and a window of 1,000
    ks = report.multivariate["pca_ks"]
    assert ks.significant and ks.practical is not None and ks.practical.effect < ks.practical.threshold


def test_far_outliers_raise_the_outlier_rates(profile: ReferenceProfile, stable: pd.DataFrame) -> None:
    current = stable.copy()
    rows = np.random.default_rng(5).choice(len(current), size=len(current) // 20, replace=False)
    current.loc[current.index[rows], "x"] = 9.0
    current.loc[current.index[rows], "y"] = -15.0
    current.loc[current.index[rows], "z"] = 60.0
    report = compare(profile, current)
    assert set(report.outliers) == {"isolation_forest", "elliptic_envelope", "novelty"}
    for name, rate in report.outliers.items():
        assert rate.drift, name
        assert rate.rate >= 0.05 > 2 * rate.expected_rate, name
        assert rate.p_value < 1e-4, name
        assert rate.n_flagged == round(rate.rate * len(current))
    assert report.dataset_drift
    # the same sample without the far points: expected rates
    quiet = compare(profile, stable)
    assert not any(o.drift for o in quiet.outliers.values())


def test_out_of_range_values(profile: ReferenceProfile, reference: pd.DataFrame, stable: pd.DataFrame) -> None:
    current = stable.copy()
    top = reference["y"].max()
    current.loc[current.index[:30], "y"] = top + 1.0
    current.loc[current.index[30:40], "y"] = reference["y"].min() - 1.0
    report = compare(profile, current)
    rates = report.data_quality.out_of_range_rate
    assert rates["y"] == pytest.approx(40 / len(current))
    assert rates["x"] < 0.01 and rates["z"] < 0.01
    assert report.features["y"].distribution["range"] == [reference["y"].min(), top]


def test_missing_columns_are_reported_and_the_rest_compared(profile: ReferenceProfile) -> None:
    current = draw(np.random.default_rng(6), 1000, x_shift=0.5).drop(columns=["y", "c"])
    current["extra"] = 1.0
    report = compare(profile, current)
    assert report.data_quality.missing_columns == ["y", "c"]
    assert report.data_quality.unknown_columns == ["extra"]
    assert set(report.features) == {"x", "z"}
    assert report.drifted_features == ["x"] and report.dataset_drift
    assert "ks" in report.features["z"].statistics
    # the joint tests need every column: skipped rather than guessed
    assert report.multivariate == {} and report.outliers == {}


def test_a_missing_value_column_is_not_a_crash(profile: ReferenceProfile, stable: pd.DataFrame) -> None:
    current = stable.copy()
    current["z"] = np.nan
    report = compare(profile, current)
    z = report.features["z"]
    assert not z.drift and z.n_current == 0 and z.statistics == {}
    assert report.data_quality.missing_rate["z"] == 1.0


def test_no_shared_column_is_invalid_input(profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInput, match="shares no feature column"):
        compare(profile, pd.DataFrame({"other": [1.0, 2.0]}))


# ------------------------------------------------------------------ the effect-size gate


def test_effect_size_gate_at_a_million_rows() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    reference = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n)})
    base = rng.normal(size=n)
    tiny = compare(reference, pd.DataFrame({"x": base + 0.01, "y": rng.normal(size=n)}),
                   multivariate=False, outliers=False)
    x = tiny.features["x"]
    # the p-value alone would flag it ...
    assert x.statistics["ks"].p_value < 1e-6
    assert x.statistics["ks"].p_value_adjusted < tiny.config["family_alpha"]["features"]
    # ... but a hundredth of a standard deviation is below the practical threshold, which at a
    # million rows is still the floor or the reference's band at 1,000 rows, whichever is higher
    assert x.significant and x.practical is not None
    assert x.practical.floor == 0.1 and x.practical.band_rows == 1000
    assert x.statistics["wasserstein_normed"] < 0.1 <= x.practical_threshold < 0.12
    assert not x.drift and not tiny.dataset_drift
    assert tiny.n_reference == tiny.n_current == n
    small = compare(reference, pd.DataFrame({"x": base + 0.2, "y": rng.normal(size=n)}),
                    multivariate=False, outliers=False)
    assert small.features["x"].drift and small.drifted_features == ["x"]
    assert small.features["x"].statistics["wasserstein_normed"] == pytest.approx(0.2, abs=0.01)


def test_equal_large_windows_give_a_valid_report() -> None:
    """Two windows of 50,000 rows each: a KS statistic is then a multiple of 1/50,000,
    so n_eff * D is often a whole number, an edge of the exact Smirnov sum."""
    rng = np.random.default_rng([50_000, 50, 2])
    reference, current = rng.normal(size=50_000), rng.normal(0.05, 1.0, size=50_000)
    report = compare(pd.DataFrame({"x": reference}), pd.DataFrame({"x": current}),
                     multivariate=False, outliers=False)
    ks = report.features["x"].statistics["ks"]
    assert ks.statistic * 25_000 == pytest.approx(559)  # n_eff * D, a whole number
    assert ks.p_value == pytest.approx(stats.ks_2samp(reference, current, method="asymp").pvalue, rel=1e-6)
    assert ks.p_value < 1e-6
    x = report.features["x"]
    assert x.drift == (x.statistics["wasserstein_normed"] >= 0.05)  # the gate decides at this size


def test_the_gate_for_categorical_features_is_js_distance() -> None:
    rng = np.random.default_rng(8)
    n = 300_000
    reference = pd.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    # a one-point move of shares on large samples: chi2 is certain, the move is tiny
    nudged = pd.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.51, 0.295, 0.195])})
    report = compare(reference, nudged, multivariate=False, outliers=False)
    c = report.features["c"]
    assert c.statistics["chi2"].p_value_adjusted < 1e-8
    assert c.statistics["js_distance"] < 0.05 <= c.practical_threshold
    assert c.practical is not None and c.practical.statistic == "js_distance"
    assert not c.drift and not report.dataset_drift
    moved = pd.DataFrame({"c": rng.choice(["a", "b", "c"], n, p=[0.42, 0.34, 0.24])})
    assert compare(reference, moved, multivariate=False, outliers=False).features["c"].drift


# ------------------------------------------------------------------ profiles


def test_compare_on_a_profile_equals_compare_on_the_table(
    reference: pd.DataFrame, profile: ReferenceProfile
) -> None:
    current = draw(np.random.default_rng(9), 800, x_shift=0.2)
    from_table = compare(reference, current, seed=0).to_dict()
    from_profile = compare(profile, current, seed=0).to_dict()
    assert from_table == from_profile


def test_profile_bytes_round_trip_gives_the_same_report(profile: ReferenceProfile) -> None:
    current = draw(np.random.default_rng(10), 800, x_shift=0.2)
    data = profile.to_bytes()
    again = ReferenceProfile.from_bytes(data)
    assert again.features == profile.features and again.n == profile.n
    assert compare(again, current).to_dict() == compare(profile, current).to_dict()


# ------------------------------------------------------------------ a distance as the decider


@pytest.mark.parametrize("decider", ["psi", "wasserstein_normed", "hellinger"])
def test_a_distance_decides_with_its_threshold(profile: ReferenceProfile, decider: str) -> None:
    current = draw(np.random.default_rng(11), 1000, x_shift=0.3)
    report = compare(profile, current, numeric_test=decider)
    n_features = len(report.features)
    share = report.config["family_alpha"]["features"] / n_features
    for name in NUMERIC:
        feature = report.features[name]
        assert feature.decided_by == decider
        value, threshold = feature.statistics[decider], feature.thresholds[decider]
        # the threshold is the null quantile at a Bonferroni share of the features' alpha
        null = replace(profile.univariate.nulls[name], n_reference=feature.n_reference,
                       n_current=feature.n_current)
        assert threshold == pytest.approx(null.threshold(decider, share))
        gate = feature.statistics["wasserstein_normed"] >= 0.05
        assert feature.drift == (value > threshold and gate)
        # the test is still reported, Bonferroni-adjusted for display
        ks = feature.statistics["ks"]
        assert ks.p_value_adjusted == pytest.approx(min(1.0, ks.p_value * n_features))
    assert report.features["x"].drift
    assert not report.features["y"].drift and not report.features["z"].drift
    # the categorical feature is still decided by its own test
    assert report.features["c"].decided_by == "chi2"


def test_a_distance_decider_for_categories(profile: ReferenceProfile) -> None:
    current = draw(np.random.default_rng(12), 1000)
    current["c"] = np.random.default_rng(13).choice(["a", "b", "c"], 1000, p=[0.3, 0.3, 0.4])
    report = compare(profile, current, categorical_test="js_distance")
    c = report.features["c"]
    assert c.decided_by == "js_distance"
    assert c.drift == (c.statistics["js_distance"] > c.thresholds["js_distance"]) is True
    assert c.statistics["chi2"].p_value < 1e-10


def test_unknown_deciders_are_invalid_input(profile: ReferenceProfile, stable: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput):
        compare(profile, stable, numeric_test="chi2")
    with pytest.raises(InvalidInput):
        compare(profile, stable, categorical_test="ks")
    with pytest.raises(InvalidInput):
        compare(profile, stable, alpha=1.5)
