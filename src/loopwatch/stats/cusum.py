"""One-sided CUSUM over a sequence of standardised scores: evidence pooled across windows.

A test of one window at a time needs each window's own evidence to clear a strict bar
(a false-alarm rate per window that stays small over many windows). A shift that costs
every window a little, a concept drift that lowers a daily AUC by two standard errors
say, clears that bar on few days or none, although twenty such days in a row are
overwhelming evidence. Page's CUSUM pools it:

    S_t = max(0, S_{t-1} + z_t - drift),   alarm when S_t > threshold

With in-control scores distributed N(0, 1), ``drift`` = 0.5 and ``threshold`` = 6,
Siegmund's approximation puts the average run length before a false alarm at about
2,600 windows (:func:`in_control_run_length`); a shift of the mean score by 2 is
found in the fifth window (median; 99 % by the ninth).

>>> cusum_alarm([0.1, -1.0, 3.0, 2.5, 2.8, 0.2])
(2, 4)
>>> cusum_alarm([1.0, -0.5, 0.3]) is None
True
>>> round(in_control_run_length(drift=0.5, threshold=6.0))
2573
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

#: Reference value (half the smallest shift of the score's mean worth finding quickly).
DEFAULT_DRIFT = 0.5
#: Decision threshold on the cumulative sum.
DEFAULT_THRESHOLD = 6.0


def cusum_path(z: Sequence[float], *, drift: float = DEFAULT_DRIFT) -> np.ndarray:
    """S_t for every t (S_0 is computed from a start at zero). Non-finite scores count as 0."""
    scores = np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    path = np.empty(len(scores))
    level = 0.0
    for t, value in enumerate(scores):
        level = max(0.0, level + float(value) - drift)
        path[t] = level
    return path


def cusum_alarm(z: Sequence[float], *, drift: float = DEFAULT_DRIFT,
                threshold: float = DEFAULT_THRESHOLD) -> tuple[int, int] | None:
    """The start of the run and the index at which the CUSUM first exceeds ``threshold``;
    ``None`` when it never does. The run starts after the last index where the sum was 0."""
    return next(cusum_alarms(z, drift=drift, threshold=threshold), None)


def cusum_alarms(z: Sequence[float], *, drift: float = DEFAULT_DRIFT,
                 threshold: float = DEFAULT_THRESHOLD) -> Iterator[tuple[int, int]]:
    """Every index at which the CUSUM is over ``threshold``, in order, each with the start of
    its run: for a caller that also asks something of the windows nearest the alarm (a
    practical size), and so takes the first index where both hold. The first is
    :func:`cusum_alarm`'s; the statistical false-alarm rate is that of the first.

    >>> list(cusum_alarms([4.0, 4.0, -9.0, 7.0]))
    [(0, 1), (3, 3)]
    """
    if drift < 0 or threshold <= 0:
        raise ValueError("drift must be >= 0 and threshold > 0")
    path = cusum_path(z, drift=drift)
    start = 0
    for t, level in enumerate(path):
        if level == 0.0:
            start = t + 1
        elif level > threshold:
            yield start, t


def in_control_run_length(*, drift: float = DEFAULT_DRIFT, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Siegmund's approximation of the average run length to a false alarm for N(0, 1) scores."""
    if drift <= 0:
        return math.inf
    delta = -drift
    h = threshold + 1.166
    return (math.exp(-2 * delta * h) + 2 * delta * h - 1) / (2 * delta**2)
