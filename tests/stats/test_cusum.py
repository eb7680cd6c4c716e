"""The pooled (CUSUM) test: known answers, its false-alarm rate on no-shift scores, its power."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopwatch.stats.cusum import cusum_alarm, cusum_alarms, cusum_path, in_control_run_length


def test_known_answers() -> None:
    assert cusum_path([1.0, 1.0, -3.0, 2.0], drift=0.5).tolist() == [0.5, 1.0, 0.0, 1.5]
    assert cusum_alarm([3.0, 3.0, 3.0], drift=0.5, threshold=6.0) == (0, 2)
    # the run starts after the last zero: the early spike is not part of it
    assert cusum_alarm([5.0, -9.0, 0.0, 2.5, 2.5, 2.5], drift=0.5, threshold=5.0) == (3, 5)
    assert cusum_alarm([np.nan, np.inf, 0.4]) is None  # non-finite scores count as 0
    with pytest.raises(ValueError):
        cusum_alarm([1.0], threshold=0.0)


@given(st.lists(st.floats(-10, 10), max_size=50))
def test_the_sum_is_never_negative_and_an_alarm_lies_past_its_run_start(z: list[float]) -> None:
    path = cusum_path(z)
    assert (path >= 0).all()
    alarm = cusum_alarm(z)
    if alarm is not None:
        start, at = alarm
        assert start <= at and path[at] > 6.0 and (path[start:at + 1] > 0).all()
    # every alarm index, in order; the first is cusum_alarm's
    every = list(cusum_alarms(z))
    assert [at for _, at in every] == np.flatnonzero(path > 6.0).tolist()
    assert (every[0] if every else None) == alarm
    for start, at in every:
        assert (path[start:at + 1] > 0).all() and (start == 0 or path[start - 1] == 0)


def test_false_alarms_on_no_shift_scores_match_the_stated_run_length() -> None:
    rng = np.random.default_rng(20261207)
    windows = 60  # about a quarter of daily windows, more than the demo judges
    alarms = sum(cusum_alarm(rng.standard_normal(windows)) is not None for _ in range(4000))
    rate = alarms / 4000
    # Siegmund's run length (about 2,600 windows) says at most ~2.3 % of 60-window series alarm
    assert in_control_run_length() == pytest.approx(2573, rel=0.01)
    assert rate <= 0.03, rate


def test_a_drift_of_two_standard_errors_a_window_is_found_in_about_five_windows() -> None:
    rng = np.random.default_rng(7001)
    delays = []
    for _ in range(500):
        alarm = cusum_alarm(rng.standard_normal(30) + 2.0)
        assert alarm is not None
        delays.append(alarm[1])
    assert np.median(delays) <= 4 and np.percentile(delays, 99) <= 8  # index 4: the fifth window
