"""Compare a window's summary with a reference profile: :func:`compare` without the window's rows.

What a monitor reads when it reads window summaries (docs/summaries.md) instead of the log:

* per numeric feature, PSI, KL, Jensen-Shannon and Hellinger from the window's exact bins on the
  reference's own edges (equal to what :func:`~loopwatch.drift.compare.compare` computes from
  the rows), and KS and Wasserstein from its quantile sketch, each with its error bound
  (:mod:`loopwatch.summaries.feature_tests`). The KS p-value the decision uses is the largest
  the exact statistic could have, given the bound; while the sketch still holds every value
  the bound is 0 and the test is the exact one;
* per categorical feature, the same tests from exact counts (or, past the part's cap, its
  frequent-items estimates, deciding on the chi-square p-value the bounds allow at most);
* the model's outputs the same way (prediction drift);
* data quality from exact counts: nulls, unseen categories, and values outside the training
  range (exact when the window's extremes lie inside it, else read from the sketch);
* the tests that need rows (multivariate, outlier and novelty rates) on the window's uniform
  row sample, at the sample's size; a window without one (a model that logs no input rows)
  names them as skipped.

Decisions go through the same multiple-testing correction and practical-significance rules as
:func:`compare`, so a report from summaries has the same form, plus ``error_bounds`` where a
statistic came from a sketch.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.drift.compare import (
    MULTIVARIATE_MIN_ROWS,
    _decide,
    _multivariate,
    _outliers,
    _skipped_features,
    category_distances,
)
from loopwatch.drift.config import DriftConfig
from loopwatch.drift.profile import ReferenceProfile, UnivariateProfile
from loopwatch.drift.report import DataQuality, DriftReport, FeatureDrift, SkippedTest
from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import hellinger, js_distance, kl_divergence, psi
from loopwatch.stats.sketch import CategoricalSummary
from loopwatch.stats.univariate import TestResult, chi2_test
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.feature_tests import categorical_tests, ks_from_summaries, wasserstein_from_summaries
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.window import FeaturePart

#: Most unseen categories a report lists per feature (as :func:`compare` does).
UNSEEN_LISTED = 20


def compare_summary(
    profile: ReferenceProfile,
    parts: Mapping[str, FeaturePart],
    *,
    n_events: int,
    sample: pd.DataFrame | None = None,
    outputs: Sequence[str] = (),
    config: DriftConfig | None = None,
) -> DriftReport:
    """A :class:`DriftReport` of one window from its feature parts (a
    :attr:`~loopwatch.summaries.window.WindowSummary.features`) and its row sample.

    ``n_events``: the window's events (the parts' rows, nulls included); ``sample``: its
    sampled rows with the reference's feature columns, or ``None`` when it has none.
    """
    config = config or DriftConfig()
    if n_events < 1:
        raise InvalidInput("a window summary needs at least one event")
    present = [f for f in profile.features if f in parts]
    if not present:
        raise InvalidInput("the window's summary shares no feature with the reference")
    quality = quality_from_parts(profile, parts, n_events=n_events)
    features = _decide(_statistics(profile.univariate, parts, present), config)
    skipped: list[SkippedTest] = []
    multivariate: dict[str, Any] = {}
    outliers: dict[str, Any] = {}
    joint = profile.joint
    wants_rows = (config.multivariate or config.outliers) and joint is not None
    if wants_rows and joint is not None:
        if sample is None or sample.empty:
            skipped += [SkippedTest(test=name, reason="no_row_sample", n=0, minimum=1)
                        for name in ("multivariate", "outliers")]
        else:
            encoded = joint.encoder.transform(sample)
            if config.multivariate:
                multivariate = _multivariate(joint, encoded, config, np.random.default_rng(config.seed))
                skipped += [
                    SkippedTest(test=f"multivariate:{name}", reason="too_few_rows", n=len(sample), minimum=least)
                    for name, least in MULTIVARIATE_MIN_ROWS.items() if len(sample) < least
                ]
            if config.outliers:
                outliers = _outliers(joint, encoded, config)
    predictions: dict[str, FeatureDrift] = {}
    if profile.outputs is not None:
        names = [n for n in outputs if n in profile.outputs.columns and n in parts]
        if names:
            predictions = _decide(_statistics(profile.outputs, parts, names), config)
    skipped = _skipped_features(features, "feature") + _skipped_features(predictions, "prediction") + skipped
    return DriftReport(
        dataset_drift=(any(f.drift for f in features.values()) or any(m.drift for m in multivariate.values())
                       or any(o.drift for o in outliers.values())),
        n_reference=profile.n, n_current=int(n_events), alpha=config.alpha, features=features,
        multivariate=multivariate, outliers=outliers, data_quality=quality, predictions=predictions,
        config=config.to_dict(), skipped=skipped,
    )


def _statistics(profile: UnivariateProfile, parts: Mapping[str, FeaturePart],
                names: Sequence[str]) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    for name in names:
        part = parts[name]
        if name in profile.numeric:
            if not isinstance(part, NumericPart):
                raise InvalidInput(f"feature {name!r} is numeric in the reference but not in the window's summary")
            raw[name] = _numeric(profile, name, part)
        else:
            if not isinstance(part, CategoricalPart):
                raise InvalidInput(f"feature {name!r} is categorical in the reference but not in the window's summary")
            raw[name] = _categorical(profile, name, part)
    return raw


def _numeric(profile: UnivariateProfile, name: str, part: NumericPart) -> dict[str, Any]:
    summary = profile.numeric[name]
    out: dict[str, Any] = {"kind": "numeric", "n_current": part.count, "n_reference": summary.n}
    if part.count == 0:
        out["empty"] = True
        return out
    edges = profile.edges[name]
    ref_bins = profile.bins[name]
    if tuple(float(e) for e in edges) != part.edges:
        raise InvalidInput(f"feature {name!r}: the window was summarised on other bin edges than the reference's; "
                           "rebuild the summaries (loopwatch summarize --rebuild)")
    cur_bins = np.asarray(part.bins, dtype=np.int64)
    ks = ks_from_summaries(summary, part)
    wasserstein = wasserstein_from_summaries(summary, part)
    # the decision reads the largest p-value the exact statistic could have (equal to the
    # p-value itself while the sketch holds every value)
    out["tests"] = {"ks": TestResult(ks.statistic, ks.p_value_high)}
    out["distances"] = {
        "wasserstein": wasserstein.distance,
        "wasserstein_normed": wasserstein.normed,
        "kl_divergence": kl_divergence(ref_bins, cur_bins),
        "js_distance": js_distance(ref_bins, cur_bins),
        "psi": psi(ref_bins, cur_bins),
        "hellinger": hellinger(ref_bins, cur_bins),
    }
    if ks.error_bound > 0 or wasserstein.error_bound > 0:
        out["error_bounds"] = {"ks": ks.error_bound, "wasserstein": wasserstein.error_bound,
                               "wasserstein_normed": wasserstein.normed_error_bound}
    out["null"] = profile.nulls[name]
    out["distribution"] = {"edges": edges.tolist(), "reference": ref_bins.tolist(), "current": cur_bins.tolist(),
                           "range": [summary.minimum, summary.maximum]}
    return out


def _categorical(profile: UnivariateProfile, name: str, part: CategoricalPart) -> dict[str, Any]:
    summary = profile.categorical[name]
    out: dict[str, Any] = {"kind": "categorical", "n_current": part.count, "n_reference": summary.n}
    if part.count == 0:
        out["empty"] = True
        return out
    if part.counts is not None:
        counts = dict(part.counts)
        out["tests"] = {"chi2": chi2_test(summary.counts, CategoricalSummary(counts).counts)}
    else:
        sketched = categorical_tests(summary, part)
        counts = part.estimated_counts()
        out["tests"] = {"chi2": TestResult(sketched.chi2_statistic, sketched.chi2_p_value_high)}
        out["error_bounds"] = {"count": sketched.count_error, "chi2_statistic_low": sketched.chi2_statistic_low}
    out["distances"], out["distribution"] = category_distances(summary.counts, counts)
    out["null"] = profile.nulls[name]
    return out


def quality_from_parts(profile: ReferenceProfile, parts: Mapping[str, FeaturePart], *, n_events: int) -> DataQuality:
    """:func:`~loopwatch.drift.compare.data_quality` from a window's parts: shares of its events."""
    n = max(1, int(n_events))
    uni = profile.univariate
    missing_columns = [f for f in profile.features if f not in parts]
    missing_rate: dict[str, float] = {}
    reference_missing: dict[str, float] = {}
    unseen: dict[str, dict[str, int]] = {}
    out_of_range: dict[str, float] = {}
    for name, summary in uni.numeric.items():
        reference_missing[name] = summary.n_missing / max(1, summary.n + summary.n_missing)
        part = parts.get(name)
        if not isinstance(part, NumericPart):
            continue
        missing_rate[name] = (part.n_null + part.n_nonfinite) / n
        out_of_range[name] = _outside(part, summary.minimum, summary.maximum) / n
    for name, categories in uni.categorical.items():
        reference_missing[name] = categories.n_missing / max(1, categories.n + categories.n_missing)
        part = parts.get(name)
        if not isinstance(part, CategoricalPart):
            continue
        missing_rate[name] = part.n_null / n
        counts = part.counts if part.counts is not None else part.estimated_counts()
        new = {label: int(c) for label, c in counts.items() if label not in categories.counts}
        if new:
            unseen[name] = dict(sorted(new.items(), key=lambda kv: -kv[1])[:UNSEEN_LISTED])
    return DataQuality(missing_columns=missing_columns, unknown_columns=[], missing_rate=missing_rate,
                       reference_missing_rate=reference_missing, unseen_categories=unseen,
                       out_of_range_rate=out_of_range)


def _outside(part: NumericPart, low: float, high: float) -> float:
    """Values of the window below ``low`` or above ``high``: 0 when its extremes lie inside (exact),
    else counted by the sketch (exact while it holds every value, else within its rank error)."""
    if part.count == 0 or part.minimum is None or part.maximum is None:
        return 0.0
    if part.minimum >= low and part.maximum <= high:
        return 0.0
    values = part.values_if_exact()
    if values is not None:
        return float(np.count_nonzero((values < low) | (values > high)))
    sketch = part.sketch()
    below = float(sketch.get_rank(low, False)) if part.minimum < low else 0.0
    above = 1.0 - float(sketch.get_rank(high, True)) if part.maximum > high else 0.0
    return (below + above) * part.count


__all__: Sequence[str] = ("compare_summary", "quality_from_parts")
