"""A stored window's label join: its summarised events with their current labels, as counts and
sums (:class:`~loopwatch.summaries.labels.LabelSums`), split by the day each label became known.

The summariser rebuilds a window's label part from this join whenever labels arrive for it,
so a label counted once stays counted once (see :mod:`loopwatch.summaries.labels`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from loopwatch.errors import LoopwatchError
from loopwatch.records import ModelVersion, PredictionEvent
from loopwatch.stores.base import Store, to_micros
from loopwatch.summaries.labels import LabelSums
from loopwatch.summaries.window import window_start

_log = logging.getLogger("loopwatch.application.summaries")


def join_labels(store: Store, name: str, version: int, start: datetime, end: datetime, *, logged_through: int,
                base_length: timedelta, skip_hours: set[datetime] | None = None) -> LabelSums | None:
    """The label join of ``name`` v``version``'s events in ``[start, end)`` logged through
    ``logged_through``, less those of the base windows in ``skip_hours``; ``None`` without a
    label (or with labels that cannot be summed, which are logged)."""
    events = store.iter_window_events(name, version=version, start=start, end=end, logged_through=logged_through)
    if skip_hours:
        events = [e for e in events if window_start(e.timestamp, base_length) not in skip_hours]
    current = {(label.request_id, label.row_index): label
               for label in store.iter_labels(name, since=start, until=end, by="prediction_time")
               if label.model_version == version}
    pairs = [(e, current[(e.request_id, e.row_index)]) for e in events if (e.request_id, e.row_index) in current]
    if not pairs:
        return None
    meta = store.get_model_version(name, version)
    whole = label_sums(meta, pairs, where=(name, start))
    if whole is None:
        return None
    # the same join split by the day each label became known: what was known when
    by_day: dict[int, list[tuple[PredictionEvent, Any]]] = defaultdict(list)
    for event, label in pairs:
        by_day[to_micros(window_start(label.label_time, timedelta(days=1)))].append((event, label))
    parts = {day: label_sums(meta, mine, where=(name, start)) for day, mine in by_day.items()}
    if any(part is None for part in parts.values()):
        return whole
    return whole.with_arrivals({day: part for day, part in parts.items() if part is not None})


def label_sums(meta: ModelVersion, pairs: Sequence[tuple[PredictionEvent, Any]], *,
               where: tuple[str, datetime]) -> LabelSums | None:
    """The label sums of (event, label) pairs of one version, or ``None`` when they cannot be
    summed (labels of the wrong kind: logged, and the window keeps no label part)."""
    delays = [max(label.delay_seconds, 0.0) for _, label in pairs]
    try:
        if meta.task == "classification":
            classes = [str(c) for c in meta.schema.classes]
            probabilities = [e.probability for e, _ in pairs]
            proba = None
            if all(p is not None and len(p) == len(classes) for p in probabilities):
                proba = np.asarray(probabilities, dtype=np.float64)
            return LabelSums.from_pairs(
                task="classification", predicted=[str(e.prediction[0]) for e, _ in pairs],
                truth=[str(label.label) for _, label in pairs], delay_seconds=delays, classes=classes, proba=proba)
        return LabelSums.from_pairs(task="regression", predicted=[float(e.prediction[0]) for e, _ in pairs],
                                    truth=[float(label.label) for _, label in pairs], delay_seconds=delays)
    except (LoopwatchError, TypeError, ValueError) as exc:
        _log.warning("labels of %s v%s at %s not summarised: %s", where[0], meta.version, where[1].isoformat(), exc)
        return None
