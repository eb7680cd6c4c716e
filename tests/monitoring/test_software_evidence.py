"""Software first seen in a window, and the window's runtime percentile, on hand-made frames.

Each window is a frame shaped like the monitor's (features, ``prediction``,
``probability_*`` and the ``__`` bookkeeping columns). Client "web" serves every
window at version 1.0; a new version of it appears later, and whether its rows differ
from the others is chosen by the test, so every answer is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwatch.application.monitoring.window_checks import (
    SOFTWARE_MIN_SHARE,
    SOFTWARE_RECENT_WINDOWS,
    latency_of,
    software_changes_of,
)

N = 1000


def window(seed: int, *, new_share: float = 0.0, new_version: str = "2.0", scale: float = 1.0,
           model_version: int = 1, previous_share: float = 0.0) -> pd.DataFrame:
    """N rows of client "web": a share of them from ``new_version`` with ``spend`` times ``scale``."""
    rng = np.random.default_rng(seed)
    n_new = int(round(new_share * N))
    spend = rng.gamma(4.0, 10.0, N)
    spend[:n_new] *= scale
    versions = [new_version] * n_new + ["1.0"] * (N - n_new)
    if previous_share:
        versions[n_new:n_new + int(round(previous_share * N))] = ["0.9"] * int(round(previous_share * N))
    return pd.DataFrame({
        "spend": spend,
        "age": rng.normal(40.0, 10.0, N),
        "plan": rng.choice(["basic", "premium"], N),
        "prediction": rng.integers(0, 2, N),
        "probability_1": rng.random(N),
        "__client_id": "web",
        "__client_version": versions,
        "__version": model_version,
        "__request_id": [f"r{i // 10}" for i in range(N)],
    })


def run(windows: list[pd.DataFrame]) -> list[list]:
    """``software_changes_of`` over consecutive windows, as the runner calls it."""
    seen, previous, out = None, None, []
    for index, rows in enumerate(windows):
        changes, seen = software_changes_of(rows, previous, seen, index=index)
        out.append(changes)
        previous = rows
    return out


def client_changes(changes: list) -> list:
    return [c for c in changes if c.what == "client_version"]


def test_the_first_window_is_the_baseline() -> None:
    # the first window holds two client versions and a model version: none of them is new
    first = window(0, new_share=0.3, scale=60.0)
    changes, seen = software_changes_of(first, None, None, index=0)
    assert changes == []
    assert seen["client_version"] == {"web 1.0": -1, "web 2.0": -1}
    assert seen["model_version"] == {"1": -1}
    # and what the baseline held is never reported later, even when its rows differ
    (later,) = run([first, window(1, new_share=0.3, scale=60.0)])[1:]
    assert later == []


def test_a_new_client_version_whose_rows_differ_is_reported_with_that_feature() -> None:
    changes = run([window(0), window(1), window(2, new_share=0.3, scale=60.0)])
    assert changes[0] == changes[1] == []
    (change,) = changes[2]
    assert change.what == "client_version" and change.value == "web 2.0"
    assert change.share == pytest.approx(0.3)
    assert change.features == ["spend"]  # age and plan are drawn alike for every row
    assert change.windows_since_first == 0


def test_a_new_client_version_whose_rows_look_like_the_rest_names_no_feature() -> None:
    # the change is reported (it is new software), but nothing it sends differs
    (change,) = run([window(0), window(1, new_share=0.3, scale=1.0)])[1]
    assert change.value == "web 2.0" and change.features == []


def test_new_software_stays_a_suspect_for_the_recent_windows_then_not() -> None:
    windows = [window(0)] + [window(i, new_share=0.3, scale=60.0) for i in range(1, SOFTWARE_RECENT_WINDOWS + 4)]
    per_window = [client_changes(c) for c in run(windows)]
    since = [c[0].windows_since_first if c else None for c in per_window]
    # first seen in window 1, counted from there while at most SOFTWARE_RECENT_WINDOWS old
    expected = [None] + list(range(SOFTWARE_RECENT_WINDOWS + 1)) + [None, None]
    assert since == expected
    assert all(c[0].features == ["spend"] for c in per_window if c)


def test_software_below_the_least_share_is_ignored_until_it_grows() -> None:
    tiny = SOFTWARE_MIN_SHARE / 2  # a single request is not a deploy
    changes = run([window(0), window(1, new_share=tiny, scale=60.0), window(2, new_share=tiny, scale=60.0),
                   window(3, new_share=0.3, scale=60.0)])
    assert changes[1] == changes[2] == []
    (grown,) = changes[3]
    # its first appearance is counted from the window where it became large enough to be a deploy
    assert grown.value == "web 2.0" and grown.windows_since_first == 0 and grown.features == ["spend"]


def test_software_serving_the_whole_window_is_compared_with_the_previous_window() -> None:
    # every row of window 2 comes from 2.0, which multiplies spend: there is no "rest of the
    # window" to compare with, so the previous window is the baseline
    (change,) = client_changes(run([window(0), window(1), window(2, new_share=1.0, scale=60.0)])[2])
    assert change.share == 1.0 and change.features == ["spend"]
    # 96% is "the whole window" too: the 4% of others are too few to stand for the baseline
    (change,) = client_changes(run([window(0), window(1), window(2, new_share=0.96, scale=60.0)])[2])
    assert change.features == ["spend"]
    # a whole window of new software sending the same values as before differs in nothing
    (change,) = client_changes(run([window(0), window(1), window(2, new_share=1.0, scale=1.0)])[2])
    assert change.features == []


def test_a_new_model_version_is_software_too() -> None:
    changes = run([window(0), window(1), window(2, model_version=2)])
    (change,) = changes[2]
    assert (change.what, change.value, change.share, change.features) == ("model_version", "2", 1.0, [])


def test_a_whole_window_without_a_previous_one_names_no_feature() -> None:
    baseline = window(0)
    _, seen = software_changes_of(baseline, None, None, index=0)
    (change,) = software_changes_of(window(1, new_share=1.0, scale=60.0), None, seen, index=1)[0]
    assert change.features == []


def test_software_changes_of_does_not_change_what_it_is_given() -> None:
    first, second = window(0), window(1, new_share=0.3, scale=60.0)
    _, seen = software_changes_of(first, None, None, index=0)
    before = {k: dict(v) for k, v in seen.items()}
    copy = second.copy()
    software_changes_of(second, first, seen, index=1)
    assert seen == before
    pd.testing.assert_frame_equal(second, copy)


def test_latency_is_a_percentile_over_requests_not_rows() -> None:
    rng = np.random.default_rng(3)
    runtimes = rng.gamma(2.0, 5.0, 100)
    sizes = rng.integers(1, 50, 100)  # a large request must not weigh more than a small one
    frame = pd.DataFrame({
        "__request_id": np.repeat([f"r{i}" for i in range(100)], sizes),
        "__request_runtime_ms": np.repeat(runtimes, sizes),
    })
    for q in (50.0, 95.0, 99.0):
        assert latency_of(frame, q) == pytest.approx(float(np.percentile(runtimes, q)))
    assert latency_of(frame.iloc[:0], 95.0) is None
    assert latency_of(frame.drop(columns="__request_runtime_ms"), 95.0) is None
