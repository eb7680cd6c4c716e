"""Rows far from the trusted reference: an isolation forest fitted on the reference.

The reference is the training sample of the version in production: rows the
team trained on and trusts. Half of it fits an
:class:`~loopwatch.detectors.isolation_forest.IsolationForestDetector`; the
other half, which the forest never saw, sets the threshold so that a share
``fpr`` of reference rows is flagged. Rows drawn from the reference's
distribution are then flagged at rate ``fpr``; rows unlike anything the
reference holds (injected rows with impossible value combinations, extreme
values) score above it.

What it cannot tell apart: a genuine covariate shift also moves rows away from
the reference. At a low ``fpr`` only the far tail is set aside, and the flagged
share is reported, so a screen that flags far more than ``fpr`` says "the data
moved" as much as "someone poisoned it".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopwatch.detectors.isolation_forest import IsolationForestDetector
from loopwatch.errors import InvalidInput
from loopwatch.poisoning.base import ScreenResult, check_rate

NAME = "reference_distance"
REASON = "far_from_reference"
#: Fewest reference rows: half fit the forest, half calibrate its threshold.
MIN_REFERENCE_ROWS = 100


def reference_distance_screen(
    x: Any,
    x_reference: Any,
    *,
    fpr: float = 0.01,
    n_estimators: int = 200,
    seed: int = 0,
) -> ScreenResult:
    """Flag rows of ``x`` that an isolation forest of ``x_reference`` isolates too quickly.

    Both matrices must be encoded alike (one encoder, fitted on the reference).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=(1000, 3))
    >>> rows = np.vstack([rng.normal(size=(200, 3)), [[8.0, -8.0, 8.0]]])
    >>> result = reference_distance_screen(rows, reference, fpr=0.01, seed=0)
    >>> bool(result.flagged[-1]), result.n_flagged < 10
    (True, True)
    """
    level = check_rate(fpr, "fpr")
    rows = np.asarray(x, dtype=np.float64)
    reference = np.asarray(x_reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[0] < MIN_REFERENCE_ROWS:
        raise InvalidInput(f"the reference needs at least {MIN_REFERENCE_ROWS} rows, got {reference.shape[0]}")
    if rows.ndim != 2 or rows.shape[1] != reference.shape[1]:
        raise InvalidInput(f"x has shape {rows.shape}; the reference has {reference.shape[1]} columns")
    order = np.random.default_rng(seed).permutation(reference.shape[0])
    half = reference.shape[0] // 2
    detector = IsolationForestDetector(n_estimators=n_estimators, expected_rate=level, random_state=seed)
    detector.fit(reference[order[:half]], reference[order[half:]])
    scores = detector.score_samples(rows) if rows.shape[0] else np.zeros(0)
    flagged = scores > detector.threshold_
    return ScreenResult(
        name=NAME,
        scores=scores,
        flagged=flagged,
        reasons=tuple(REASON if f else None for f in flagged),
        threshold=float(detector.threshold_),
        fpr=level,
        details={"n_reference": int(reference.shape[0])},
    )
