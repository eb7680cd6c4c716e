"""compare() on tables too small or too odd for some of its tests: those tests are left out
and reported with their reason and sizes; every other test still runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.drift.compare import MULTIVARIATE_MIN_ROWS, compare
from loopwatch.drift.profile import ReferenceProfile, build_profile
from loopwatch.drift.report import SkippedTest
from loopwatch.errors import InvalidInput
from loopwatch.stats.domain import domain_classifier_test
from loopwatch.stats.multivariate import mmd_test


def table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "z": rng.gamma(2.0, size=n),
        "c": rng.choice(["a", "b", "d"], n),
    })


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = table(np.random.default_rng(3), 600)
    return build_profile(reference, numeric=["x", "z"], categorical=["c"], seed=0)


def test_each_declared_minimum_is_the_size_its_test_refuses_below() -> None:
    """The declared minimum is the test's own: one row fewer and the test refuses the input."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(50, 2))
    for test, least in (("mmd", MULTIVARIATE_MIN_ROWS["mmd"]), ("domain", MULTIVARIATE_MIN_ROWS["domain_classifier"])):
        run = (lambda cur: mmd_test(reference, cur, n_permutations=9, rng=0)) if test == "mmd" else (
            lambda cur: domain_classifier_test(reference, cur, rng=0, max_iter=5))
        run(rng.normal(size=(least, 2)))  # at the minimum it runs
        with pytest.raises(InvalidInput):
            run(rng.normal(size=(least - 1, 2)))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(min_value=1, max_value=6), seed=st.integers(min_value=0, max_value=2**16))
def test_a_small_window_skips_exactly_the_tests_it_is_too_small_for(
    profile: ReferenceProfile, n: int, seed: int
) -> None:
    current = table(np.random.default_rng(seed), n)
    report = compare(profile, current, mmd_permutations=19, domain_iterations=5)
    too_small = {name for name, least in MULTIVARIATE_MIN_ROWS.items() if n < least}
    assert set(report.multivariate) == set(MULTIVARIATE_MIN_ROWS) - too_small
    skipped = {t.test: t for t in report.skipped}
    assert set(skipped) == {f"multivariate:{name}" for name in too_small}
    for name in too_small:
        entry = skipped[f"multivariate:{name}"]
        assert (entry.reason, entry.n, entry.minimum) == ("too_few_rows", n, MULTIVARIATE_MIN_ROWS[name])
    assert set(report.features) == {"x", "z", "c"}  # univariate tests run on any window
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["skipped"] == [t.to_dict() for t in report.skipped]


def test_a_column_of_nulls_is_skipped_with_no_values(profile: ReferenceProfile) -> None:
    current = table(np.random.default_rng(8), 30)
    current["c"] = None  # a categorical column with no value at all
    current["z"] = np.nan
    report = compare(profile, current, mmd_permutations=19, domain_iterations=5)
    skipped = {t.test: t for t in report.skipped}
    assert skipped["feature:c"] == SkippedTest(test="feature:c", reason="no_values", n=0, minimum=1)
    assert skipped["feature:z"].reason == "no_values"
    assert report.features["c"].drift is False and report.features["c"].n_current == 0
    assert "feature:x" not in skipped and report.features["x"].n_current == 30


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SkippedTest(test="multivariate:mmd", reason="bad luck", n=1)


def test_a_window_compare_refuses_is_reported_as_refused_and_renders(profile: ReferenceProfile) -> None:
    """The last guard: a window compare() refuses whole (here: none of the model's columns) is
    a report that says so, and the monitor's HTML page still renders."""
    from datetime import datetime, timezone

    from loopwatch.drift.html import render_monitor
    from loopwatch.application.monitoring.runner import MONITOR_CONFIG, MonitorReport, WindowReport, compare_window

    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    current = pd.DataFrame({"other": [1.0, 2.0, 3.0]})
    report = compare_window(profile, current, outputs=(), config=MONITOR_CONFIG, where=("m", start))
    (refused,) = report.skipped
    assert (refused.test, refused.reason, refused.n) == ("window", "refused", 3)
    assert "no feature column" in (refused.detail or "")
    assert report.features == {} and not report.dataset_drift
    window = WindowReport(start=start, end=start, n_events=3, model_version=1, segment=None, report=report,
                          previous=None, rejections=0, alarms=[], skipped=list(report.skipped))
    data = MonitorReport(model="m", window="1d", since=None, until=None, windows=[window]).to_dict()
    assert data["windows"][0]["skipped"][0]["detail"] == refused.detail
    page = render_monitor(json.loads(json.dumps(data, allow_nan=False)))
    assert "tests left out" in page and "window (refused)" in page
