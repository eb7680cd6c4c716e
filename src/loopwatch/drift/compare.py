"""compare(reference, current): one drift report for two tables.

How the families are combined so that ``dataset_drift`` keeps its stated
false-alarm rate ``alpha`` (5% by default): alpha is split across three families
by Bonferroni, ``alpha/2`` for the features, ``alpha/4`` for the multivariate tests
and ``alpha/4`` for the outlier and novelty rates. Within the features,
p-values are adjusted across features (Benjamini-Hochberg by default, which
under no drift at all controls the chance of any alarm). Within the other two
families each test gets its share by Bonferroni.

Significance is half of a decision. Every feature, multivariate test and outlier
rate also has an effect (Wasserstein in reference sds, Jensen-Shannon distance,
AUC - 0.5, excess flagged share, ...) that must reach a practical threshold,
max(floor, the reference's own band at min(n, N0) rows) (stats/practical.py), so
that at a million rows a p-value alone cannot flag a shift nobody cares about.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.drift.config import DriftConfig
from loopwatch.drift.profile import (
    JointProfile,
    ReferenceProfile,
    UnivariateProfile,
    build_profile,
    category_values,
    numeric_values,
    split_columns,
)
from loopwatch.drift.report import (
    DataQuality,
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutlierRate,
    SkippedTest,
    TestStatistic,
)
from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import align_categories, bin_counts, hellinger, js_distance, kl_divergence, psi
from loopwatch.stats.multitest import benjamini_hochberg, bonferroni
from loopwatch.stats.domain import DOMAIN_MIN_ROWS, domain_classifier_test
from loopwatch.stats.multivariate import (
    MMD_MIN_ROWS,
    PCA_KS_MIN_ROWS,
    PCA_RECONSTRUCTION_MIN_ROWS,
    MultivariateResult,
    mmd_test,
    pca_ks_test,
    pca_reconstruction_test,
)
from loopwatch.stats.practical import (
    PracticalThreshold,
    auc_band,
    distance_band,
    ks_band,
    mean_ratio_band,
    practical,
    rate_band,
)
from loopwatch.stats.rates import rate_test
from loopwatch.stats.sketch import CategoricalSummary
from loopwatch.stats.univariate import TestResult, chi2_test, ks_and_wasserstein, ks_pvalue

DISTANCES = ("wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger")
MULTIVARIATE_TESTS = ("pca_reconstruction", "pca_ks", "mmd", "domain_classifier")
#: Least current rows of each multivariate test, as each declares it beside its code: a
#: smaller window leaves the test out (reported in ``DriftReport.skipped``) instead of failing.
MULTIVARIATE_MIN_ROWS = {
    "pca_reconstruction": PCA_RECONSTRUCTION_MIN_ROWS,
    "pca_ks": PCA_KS_MIN_ROWS,
    "mmd": MMD_MIN_ROWS,
    "domain_classifier": DOMAIN_MIN_ROWS,
}


def compare(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    categorical: Sequence[str] | None = None,
    outputs: Sequence[str] = (),
    config: DriftConfig | None = None,
    **options: Any,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (a table, or a profile built from one).

    ``categorical`` names numeric columns to treat as categories; ``outputs``
    names columns holding model outputs (prediction, probabilities), compared
    for prediction drift but kept out of the input features. Keyword options
    override :class:`DriftConfig` fields.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    >>> cur = pd.DataFrame({"x": rng.normal(1, 1, 2000), "c": rng.choice(["a", "b"], 2000)})
    >>> report = compare(ref, cur, multivariate=False, outliers=False)
    >>> report.dataset_drift, report.drifted_features
    (True, ['x'])
    """
    config = config or DriftConfig(**options)
    if not isinstance(current, pd.DataFrame) or current.empty:
        raise InvalidInput("the current data must be a table with at least one row")
    if isinstance(reference, ReferenceProfile):
        profile = reference
    else:
        numeric, cats = split_columns(reference, categorical=categorical, exclude=outputs)
        reference_outputs = reference[list(outputs)] if outputs else None
        # nothing is fitted that this comparison will not use
        profile = build_profile(
            reference, numeric=numeric, categorical=cats, outputs=reference_outputs, seed=config.seed,
            joint=config.multivariate or config.outliers, detectors=config.outliers,
        )
    quality = data_quality(profile, current, outputs=outputs)
    present = [f for f in profile.features if f not in quality.missing_columns]
    if not present:
        raise InvalidInput("the current data shares no feature column with the reference")
    features = _features(profile, current, present, config)
    rng = np.random.default_rng(config.seed)
    multivariate: dict[str, MultivariateDrift] = {}
    outliers: dict[str, OutlierRate] = {}
    joint = profile.joint
    if (config.multivariate or config.outliers) and joint is not None and not quality.missing_columns:
        encoded = joint.encoder.transform(current)
        if config.multivariate:
            multivariate = _multivariate(joint, encoded, config, rng)
        if config.outliers:
            outliers = _outliers(joint, encoded, config)
    predictions = _outputs(profile, current, outputs, config)
    skipped = _skipped_features(features, "feature") + _skipped_features(predictions, "prediction")
    if config.multivariate and joint is not None and not quality.missing_columns:
        skipped += [
            SkippedTest(test=f"multivariate:{name}", reason="too_few_rows", n=len(current), minimum=least)
            for name, least in MULTIVARIATE_MIN_ROWS.items() if len(current) < least
        ]
    dataset_drift = (
        any(f.drift for f in features.values())
        or any(m.drift for m in multivariate.values())
        or any(o.drift for o in outliers.values())
    )
    return DriftReport(
        dataset_drift=dataset_drift,
        n_reference=profile.n,
        n_current=len(current),
        alpha=config.alpha,
        features=features,
        multivariate=multivariate,
        outliers=outliers,
        data_quality=quality,
        predictions=predictions,
        config=config.to_dict(),
        skipped=skipped,
    )


def _skipped_features(found: dict[str, FeatureDrift], family: str) -> list[SkippedTest]:
    """A column of the window with no value at all (every row null) has nothing to test."""
    return [
        SkippedTest(test=f"{family}:{name}", reason="no_values", n=0, minimum=1)
        for name, f in found.items() if f.n_current == 0
    ]


def _features(
    profile: ReferenceProfile, current: pd.DataFrame, names: list[str], config: DriftConfig
) -> dict[str, FeatureDrift]:
    return _decide(_statistics(profile.univariate, current, names), config)


def _statistics(part: UnivariateProfile, current: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in part.numeric:
            raw[name] = _numeric_statistics(part, name, numeric_values(current, name))
        else:
            raw[name] = _categorical_statistics(part, name, category_values(current, name))
    return raw


def _numeric_statistics(profile: UnivariateProfile, name: str, values: np.ndarray) -> dict[str, Any]:
    summary = profile.numeric[name]
    current = np.sort(values[~np.isnan(values)])
    edges = profile.edges[name]
    ref_bins = profile.bins[name]
    out: dict[str, Any] = {"kind": "numeric", "n_current": int(current.size), "n_reference": summary.n}
    if current.size == 0:
        out["empty"] = True
        return out
    # one merge of the two sorted arrays gives both the KS statistic and Wasserstein
    statistic, wasserstein = ks_and_wasserstein(summary, current)
    ks = TestResult(statistic, ks_pvalue(statistic, summary, current))
    cur_bins = bin_counts(current, edges)
    out["tests"] = {"ks": ks}
    out["distances"] = {
        "wasserstein": wasserstein,
        "wasserstein_normed": wasserstein / summary.scale,
        "kl_divergence": kl_divergence(ref_bins, cur_bins),
        "js_distance": js_distance(ref_bins, cur_bins),
        "psi": psi(ref_bins, cur_bins),
        "hellinger": hellinger(ref_bins, cur_bins),
    }
    out["null"] = profile.nulls[name]
    out["distribution"] = {
        "edges": edges.tolist(),
        "reference": ref_bins.tolist(),
        "current": cur_bins.tolist(),
        "range": [summary.minimum, summary.maximum],
    }
    return out


def _categorical_statistics(profile: UnivariateProfile, name: str, values: list[str | None]) -> dict[str, Any]:
    summary = profile.categorical[name]
    out: dict[str, Any] = {"kind": "categorical", "n_current": 0, "n_reference": summary.n}
    if all(v is None for v in values):  # a summary needs a value; a column of nulls has none to test
        out["empty"] = True
        return out
    current = CategoricalSummary.from_values(values)
    out["n_current"] = current.n
    out["tests"] = {"chi2": chi2_test(summary.counts, current.counts)}
    out["distances"], out["distribution"] = category_distances(summary.counts, current.counts)
    out["null"] = profile.nulls[name]
    return out


def category_distances(reference: Mapping[str, int], current: Mapping[str, int]) -> tuple[
        dict[str, float], dict[str, Any]]:
    """The distances between two categories' counts, and the counts side by side for plots."""
    labels, ref_vec, cur_vec = align_categories(reference, current)
    distances = {"kl_divergence": kl_divergence(ref_vec, cur_vec), "js_distance": js_distance(ref_vec, cur_vec),
                 "psi": psi(ref_vec, cur_vec), "hellinger": hellinger(ref_vec, cur_vec)}
    distribution = {"categories": list(labels), "reference": [int(v) for v in ref_vec],
                    "current": [int(v) for v in cur_vec]}
    return distances, distribution


def _decide(raw: dict[str, dict[str, Any]], config: DriftConfig) -> dict[str, FeatureDrift]:
    family_alpha = config.family_alpha["features"]
    names = [n for n, r in raw.items() if not r.get("empty")]
    tested = [n for n in names if _decider(raw[n], config) in ("ks", "chi2")]
    raw_p = np.array([raw[n]["tests"][_decider(raw[n], config)].p_value for n in tested])
    adjust = benjamini_hochberg if config.correction == "bh" else bonferroni
    adjusted = dict(zip(tested, adjust(raw_p) if len(raw_p) else []))
    # a distance has no p-value: its threshold takes a Bonferroni share of the family
    distance_alpha = family_alpha / max(1, len(names))
    out: dict[str, FeatureDrift] = {}
    for name, r in raw.items():
        kind = r["kind"]
        decider = _decider(r, config)
        if r.get("empty"):
            out[name] = FeatureDrift(
                name=name, kind=kind, drift=False, decided_by=decider, statistics={}, thresholds={},
                distribution={}, n_reference=r["n_reference"], n_current=0,
            )
            continue
        null = replace(r["null"], n_reference=max(1, r["n_reference"]), n_current=max(1, r["n_current"]))
        thresholds = {d: null.threshold(d, distance_alpha) for d in r["distances"]}
        statistics: dict[str, TestStatistic | float] = {}
        for test_name, result in r["tests"].items():
            statistics[test_name] = TestStatistic(
                statistic=result.statistic,
                p_value=result.p_value,
                p_value_adjusted=float(adjusted.get(name, result.p_value)) if test_name == decider else
                float(min(1.0, result.p_value * max(1, len(names)))),
            )
        statistics.update(r["distances"])
        effect_name = "wasserstein_normed" if kind == "numeric" else "js_distance"
        band = distance_band(r["null"], effect_name, n_reference=max(1, r["n_reference"]),
                             n_current=r["n_current"], band_rows=config.practical_band_rows)
        threshold = practical(effect_name, r["distances"][effect_name], band=band,
                              band_rows=config.practical_band_rows, overrides=config.practical_thresholds)
        if decider in ("ks", "chi2"):
            significant = bool(adjusted[name] < family_alpha)
        else:
            significant = bool(r["distances"][decider] > thresholds[decider])
        out[name] = FeatureDrift(
            name=name, kind=kind, drift=significant and threshold.large_enough, decided_by=decider,
            statistics=statistics, thresholds=thresholds, distribution=r["distribution"],
            n_reference=r["n_reference"], n_current=r["n_current"], significant=significant, practical=threshold,
            error_bounds=dict(r.get("error_bounds", {})),
        )
    return out


def _decider(raw: dict[str, Any], config: DriftConfig) -> str:
    return config.numeric_test if raw["kind"] == "numeric" else config.categorical_test


def _multivariate(
    profile: JointProfile, encoded: np.ndarray, config: DriftConfig, rng: np.random.Generator
) -> dict[str, MultivariateDrift]:
    alpha = config.family_alpha["multivariate"] / len(MULTIVARIATE_TESTS)
    reduced = profile.pca.transform(encoded)
    reference_reduced = profile.pca.transform(profile.sample)
    runs: dict[str, Callable[[], MultivariateResult]] = {
        "pca_reconstruction": lambda: pca_reconstruction_test(
            profile.holdout_errors, profile.pca.reconstruction_error(encoded), alpha=alpha
        ),
        "pca_ks": lambda: pca_ks_test(profile.holdout_projections, reduced, alpha=alpha),
        "mmd": lambda: mmd_test(
            reference_reduced, reduced, n_permutations=config.mmd_permutations,
            max_samples=config.mmd_max_samples, alpha=alpha, rng=rng,
        ),
        "domain_classifier": lambda: domain_classifier_test(
            profile.sample, encoded, max_samples=config.domain_max_samples, max_iter=config.domain_iterations,
            alpha=alpha, rng=rng,
        ),
    }
    # a test the window is too small for is left out (compare() reports it as skipped)
    results = {name: run() for name, run in runs.items() if len(encoded) >= MULTIVARIATE_MIN_ROWS[name]}
    thresholds = _multivariate_thresholds(profile, results, len(encoded), config)
    return {
        name: MultivariateDrift(
            name=name,
            drift=bool(result.drift and thresholds[name].large_enough),
            statistic=result.statistic,
            p_value=result.p_value,
            threshold=result.threshold,
            extra=dict(result.extra),
            significant=bool(result.drift),
            practical=thresholds[name],
        )
        for name, result in results.items()
    }


def _multivariate_thresholds(
    profile: JointProfile, results: Mapping[str, Any], n_current: int, config: DriftConfig
) -> dict[str, PracticalThreshold]:
    """Each multivariate test's effect beside its practical threshold (stats/practical.py)."""
    rows, overrides = config.practical_band_rows, config.practical_thresholds
    errors = profile.holdout_errors
    reference_error = float(np.mean(errors)) if errors.size else 0.0

    def reconstruction() -> tuple[float, float | None]:
        statistic = results["pca_reconstruction"].statistic
        effect = statistic / reference_error - 1.0 if reference_error > 0 else 0.0
        return effect, mean_ratio_band(errors, n_current, band_rows=rows)

    def projections() -> tuple[float, float | None]:
        result = results["pca_ks"]
        return result.statistic, ks_band(
            len(profile.holdout_projections), n_current, result.extra["n_components"], band_rows=rows)

    def domain() -> tuple[float, float | None]:
        result = results["domain_classifier"]
        return result.statistic - 0.5, auc_band(
            result.extra["n_test_reference"], result.extra["n_test_current"], band_rows=rows)

    effects = {
        "pca_reconstruction": reconstruction,
        "pca_ks": projections,
        # the permutation null is drawn on at most mmd_max_samples rows, so it never narrows
        # with the window: the floor alone is the practical threshold
        "mmd": lambda: (results["mmd"].statistic, None),
        "domain_classifier": domain,
    }
    # only the tests the window was large enough for (compare() reports the others as skipped)
    bands = {name: effects[name]() for name in results}
    return {name: practical(name, effect, band=band, band_rows=rows, overrides=overrides)
            for name, (effect, band) in bands.items()}


def _outliers(profile: JointProfile, encoded: np.ndarray, config: DriftConfig) -> dict[str, OutlierRate]:
    alpha = config.family_alpha["outliers"] / max(1, len(profile.detectors))
    if len(encoded) > config.outlier_max_rows:  # a seeded random sample: see DriftConfig.outlier_max_rows
        chosen = np.random.default_rng(config.seed).choice(len(encoded), config.outlier_max_rows, replace=False)
        encoded = encoded[np.sort(chosen)]
    n = len(encoded)
    reduced = profile.pca.transform(encoded)
    out = {}
    for name, detector in profile.detectors.items():
        flagged = int(np.count_nonzero(detector.predict(reduced)))
        result = rate_test(flagged, n, detector.calibration_k_, detector.calibration_n_)
        calibrated = detector.calibration_k_ / max(1, detector.calibration_n_)
        threshold = practical(
            "outlier_rate", flagged / n - calibrated,
            band=rate_band(calibrated, n, detector.calibration_n_, band_rows=config.practical_band_rows),
            band_rows=config.practical_band_rows, overrides=config.practical_thresholds,
        )
        significant = bool(result.p_value < alpha)
        out[name] = OutlierRate(
            name=name,
            rate=flagged / n,
            expected_rate=detector.expected_rate,
            p_value=result.p_value,
            drift=significant and threshold.large_enough,
            n_flagged=flagged,
            significant=significant,
            practical=threshold,
            n_scored=n,
        )
    return out


def _outputs(
    profile: ReferenceProfile, current: pd.DataFrame, outputs: Sequence[str], config: DriftConfig
) -> dict[str, FeatureDrift]:
    part = profile.outputs
    if part is None:
        return {}
    names = [n for n in outputs if n in part.columns and n in current.columns]
    return _decide(_statistics(part, current, names), config) if names else {}


def data_quality(profile: ReferenceProfile, current: pd.DataFrame, *, outputs: Sequence[str] = ()) -> DataQuality:
    columns = set(map(str, current.columns))
    missing_columns = [f for f in profile.features if f not in columns]
    unknown = sorted(columns - set(profile.features) - set(outputs))
    missing_rate: dict[str, float] = {}
    reference_missing: dict[str, float] = {}
    unseen: dict[str, dict[str, int]] = {}
    out_of_range: dict[str, float] = {}
    n = len(current)
    for name, summary in profile.univariate.numeric.items():
        reference_missing[name] = summary.n_missing / max(1, summary.n + summary.n_missing)
        if name not in columns:
            continue
        values = numeric_values(current, name)
        nan = np.isnan(values)
        missing_rate[name] = float(nan.mean())
        present = values[~nan]
        outside = np.count_nonzero((present < summary.minimum) | (present > summary.maximum))
        out_of_range[name] = float(outside / n)
    for name, categories in profile.univariate.categorical.items():
        reference_missing[name] = categories.n_missing / max(1, categories.n + categories.n_missing)
        if name not in columns:
            continue
        labels = category_values(current, name)
        missing_rate[name] = sum(v is None for v in labels) / n
        new: dict[str, int] = {}
        for value in labels:
            if value is not None and value not in categories.counts:
                new[value] = new.get(value, 0) + 1
        if new:
            unseen[name] = dict(sorted(new.items(), key=lambda kv: -kv[1])[:20])
    return DataQuality(
        missing_columns=missing_columns,
        unknown_columns=unknown,
        missing_rate=missing_rate,
        reference_missing_rate=reference_missing,
        unseen_categories=unseen,
        out_of_range_rate=out_of_range,
    )
