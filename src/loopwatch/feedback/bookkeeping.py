"""Label bookkeeping: how many predictions got a label, and how late the labels came.

Pure: predictions come in as counts per window of prediction time, labels as
``(prediction_time, label_time)`` pairs. A label counts in the window of its
prediction's time, so a window's coverage is the share of its predictions
whose outcome is known, and its delays say how long those outcomes took.
Windows are aligned as monitoring windows are, on the first Monday after the
epoch (so ``1d`` windows are UTC calendar days and ``1w`` windows start on
Mondays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

import numpy as np

from loopwatch.errors import InvalidInput
from loopwatch.records import LabelOutcome
from loopwatch.records.jsonutil import utc_iso

EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=timezone.utc)
_HOUR = 3600.0


def window_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the ``length``-long window holding ``moment``."""
    try:
        return EPOCH_MONDAY + ((moment - EPOCH_MONDAY) // length) * length
    except OverflowError as exc:  # a window that would start before year 1
        raise InvalidInput(f"{moment.isoformat()} is too early in time to be put in a window") from exc


def _end_of(start: datetime, length: timedelta) -> datetime:
    try:
        return start + length
    except OverflowError:  # the window holding the last moment there is
        return datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class DelaySummary:
    """Label delays in hours: median, 90th percentile (linear interpolation) and maximum."""

    p50_hours: float | None
    p90_hours: float | None
    max_hours: float | None

    @classmethod
    def of(cls, delays_seconds: np.ndarray) -> DelaySummary:
        if delays_seconds.size == 0:
            return cls(None, None, None)
        hours = delays_seconds / _HOUR
        p50, p90 = np.percentile(hours, [50.0, 90.0])
        return cls(float(p50), float(p90), float(hours.max()))

    def to_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50_hours, "p90": self.p90_hours, "max": self.max_hours}


@dataclass(frozen=True)
class CoverageWindow:
    start: datetime
    end: datetime
    predictions: int
    #: Predictions of the window that have a label.
    labelled: int
    delay: DelaySummary

    @property
    def coverage(self) -> float | None:
        """labelled / predictions; ``None`` for a window without predictions."""
        return self.labelled / self.predictions if self.predictions else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "coverage": self.coverage,
            "delay_hours": self.delay.to_dict(),
        }


@dataclass(frozen=True)
class LabelCoverage:
    """Coverage and label delay per window, and over all windows."""

    length: timedelta
    windows: tuple[CoverageWindow, ...]
    delay: DelaySummary

    @property
    def predictions(self) -> int:
        return sum(w.predictions for w in self.windows)

    @property
    def labelled(self) -> int:
        return sum(w.labelled for w in self.windows)

    @property
    def coverage(self) -> float | None:
        return self.labelled / self.predictions if self.predictions else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.length.total_seconds(),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "coverage": self.coverage,
            "delay_hours": self.delay.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
        }


def label_coverage(
    prediction_counts: Iterable[tuple[datetime, int]],
    labels: Iterable[tuple[datetime, datetime]],
    *,
    length: timedelta,
) -> LabelCoverage:
    """Per window of prediction time: predictions, labelled predictions, coverage, delays.

    ``prediction_counts`` holds (a time in the window, count) pairs, e.g. what
    ``Store.count_events_by_window`` returns; ``labels`` holds one
    ``(prediction_time, label_time)`` pair per labelled prediction. A negative
    delay (a label timed before its prediction) is kept as it is: it points at
    a clock or a join to look into, not at something to hide.
    """
    if length <= timedelta(0):
        raise InvalidInput("a coverage window must be longer than zero")
    counts: dict[datetime, int] = {}
    for moment, n in prediction_counts:
        if n < 0:
            raise InvalidInput("prediction counts cannot be negative")
        start = window_start(moment, length)
        counts[start] = counts.get(start, 0) + int(n)
    delays: dict[datetime, list[float]] = {}
    every: list[float] = []
    for prediction_time, label_time in labels:
        seconds = (label_time - prediction_time).total_seconds()
        delays.setdefault(window_start(prediction_time, length), []).append(seconds)
        every.append(seconds)
    windows = tuple(
        CoverageWindow(
            start=start,
            end=_end_of(start, length),
            predictions=counts.get(start, 0),
            labelled=len(delays.get(start, ())),
            delay=DelaySummary.of(np.asarray(delays.get(start, ()), dtype=np.float64)),
        )
        for start in sorted(set(counts) | set(delays))
    )
    return LabelCoverage(length=length, windows=windows, delay=DelaySummary.of(np.asarray(every, dtype=np.float64)))


_OUTCOME_REASONS = {
    "duplicate": "the prediction already has this label",
    "corrected": "the prediction had another label; this one replaces it",
}


def summarize_outcomes(outcomes: Sequence[LabelOutcome]) -> dict[str, Any]:
    """Counts per status, and each label that was not simply stored, with its position."""
    count = {s: sum(o.status == s for o in outcomes) for s in ("stored", "duplicate", "corrected", "unmatched")}
    return {
        "stored": count["stored"],
        "duplicates": count["duplicate"],
        "corrected": count["corrected"],
        "unmatched": count["unmatched"],
        "outcomes": [
            {
                "index": i,
                "status": o.status,
                "request_id": o.request_id,
                "row_index": o.row_index,
                "reason": o.error or _OUTCOME_REASONS.get(o.status, o.status),
            }
            for i, o in enumerate(outcomes)
            if o.status != "stored"
        ],
    }
