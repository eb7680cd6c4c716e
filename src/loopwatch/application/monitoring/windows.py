"""Windows over logged events: by event time (hour, day, week) or by count.

A window's time is the events' own event time (``timestamp``), never when
they were logged, and days are UTC calendar days.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Sequence, cast

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.frames import canonical_column, labels_of, with_canonical_features
from loopwatch.features.schema import FeatureSchema
from loopwatch.records import EventColumns, PredictionEvent

_SPEC = re.compile(r"^(\d+)([hdw])$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=timezone.utc)


@dataclass(frozen=True)
class WindowSpec:
    """``1h``, ``1d``, ``7d``, ``1w`` (weeks start on Monday), or ``count:N`` events."""

    length: timedelta | None
    count: int | None

    @classmethod
    def parse(cls, spec: str) -> WindowSpec:
        spec = spec.strip().lower()
        if spec.startswith("count:"):
            try:
                count = int(spec.split(":", 1)[1])
            except ValueError:
                count = 0
            if count < 1:
                raise InvalidInput(f"window {echo(spec)}: count:N needs a positive N")
            return cls(length=None, count=count)
        match = _SPEC.match(spec)
        if not match or int(match.group(1)) < 1:
            raise InvalidInput(f"window {echo(spec)} must look like 1h, 1d, 7d, 1w or count:1000")
        return cls(length=int(match.group(1)) * _UNIT[match.group(2)], count=None)

    def start_of(self, moment: datetime) -> datetime:
        """The start of the window holding ``moment`` (aligned to the epoch's first Monday)."""
        assert self.length is not None
        steps = (moment - EPOCH_MONDAY) // self.length
        return EPOCH_MONDAY + steps * self.length

    def starts_of(self, moments: pd.Series) -> pd.Series:
        """:meth:`start_of` of every moment of a column of UTC timestamps, at once."""
        assert self.length is not None
        length = pd.Timedelta(self.length)
        origin = pd.Timestamp(EPOCH_MONDAY)
        moments = pd.to_datetime(moments, utc=True)
        return origin + ((moments - origin) // length) * length


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    frame: pd.DataFrame

    @property
    def n(self) -> int:
        return len(self.frame)


def events_frame(
    events: Iterable[PredictionEvent], classes: Sequence[Any] = (), *, schema: FeatureSchema | None = None
) -> pd.DataFrame:
    """Events as a table: the input row's features as columns, plus the event's facts.

    ``prediction`` is the first output (as a string for classifiers, as the model's
    own outputs are profiled); ``probability_<class>`` holds each class's
    probability. Event facts are in columns starting with ``__``. With the version's
    ``schema``, its features are in the one form the model and the monitors read
    (:func:`~loopwatch.features.frames.model_frame`: labels for categories, float64 numbers).
    """
    rows: list[dict[str, Any]] = []
    for e in events:
        row: dict[str, Any] = dict(e.data) if e.data else {}
        row["__timestamp"] = e.timestamp
        row["__version"] = e.model_version
        row["__client_id"] = e.client_id
        row["__fingerprint_id"] = e.fingerprint_id
        row["__request_id"] = e.request_id
        row["__runtime_ms"] = e.row_runtime_ms
        row["__request_runtime_ms"] = e.runtime_ms
        row["__row_index"] = e.row_index
        row["__request_type"] = e.request_type
        row["__has_data"] = e.data is not None
        # the evasion score's flag (None when the version has no adversarial detector)
        row["__adversarial"] = e.input_data_summary.get("adversarial")
        first = e.prediction[0] if e.prediction else None
        row["prediction"] = str(first) if classes and first is not None else first
        if e.probability is not None:
            for label, p in zip(classes, e.probability):
                row[f"probability_{label}"] = p
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if schema is None else with_canonical_features(frame, schema)


#: A categorical feature of these values is labelled as it is (``None`` is missing).
_TEXT = {str, type(None)}


def _same_keys(data: Sequence[dict[str, Any] | None], keys: Any) -> bool:
    """Whether every row holds data, of exactly ``keys``."""
    try:
        return all(map(keys.__eq__, map(dict.keys, data)))  # type: ignore[arg-type]
    except TypeError:  # a row without data
        return False


def columns_frame(
    columns: EventColumns, classes: Sequence[Any] = (), *, schema: FeatureSchema | None = None
) -> pd.DataFrame:
    """:func:`events_frame` of a batch read column by column
    (:meth:`~loopwatch.stores.base.Store.iter_event_columns_logged`): the same frame (the same
    columns, types and values), built a column at a time rather than a row at a time."""
    n = len(columns)
    if n == 0:
        return pd.DataFrame()
    data = columns.data
    names: list[str] = []
    by_name: dict[str, Sequence[Any]] = {}
    first = next((d for d in data if d), None)
    if first is not None:
        keys = first.keys()
        if _same_keys(data, keys):
            # every row holds the same features (the common case): one C-level pass transposes them
            names = list(keys)
            rows = cast("Sequence[dict[str, Any]]", data)
            by_name = dict(zip(names, zip(*map(operator.itemgetter(*names), rows)) if len(names) > 1
                               else [[d[names[0]] for d in rows]]))
        else:  # rows without data or of different features: every feature any row holds, in order of appearance
            names = list(dict.fromkeys(key for d in data if d for key in d))
            by_name = {name: [None if d is None else d.get(name) for d in data] for name in names}
    features = {} if schema is None else {f.name: f for f in schema.features}
    out: dict[str, Any] = {}
    for name in names:
        values = by_name[name]
        feature = features.get(name)
        if feature is None:
            out[name] = list(values)
        elif feature.kind == "numeric":
            try:  # numpy reads JSON's numbers, booleans, numeric strings and nulls as pandas' column would
                out[name] = np.array(values, dtype=np.float64)
            except (TypeError, ValueError):
                out[name] = canonical_column(pd.Series(values), feature)
        elif set(map(type, values)) <= _TEXT:
            # labels of strings are the strings: no column to infer first
            out[name] = pd.array(labels_of(values), dtype=object)
        else:
            out[name] = canonical_column(pd.Series(values), feature)
    runtime = np.asarray(columns.runtime_ms, dtype=np.float64)
    row_runtime = np.asarray(columns.row_runtime_ms, dtype=np.float64)
    out["__timestamp"] = pd.to_datetime(np.asarray(columns.timestamp_us, dtype=np.int64), unit="us", utc=True)
    out["__version"] = np.array(columns.model_version, dtype=np.int64)
    out["__client_id"] = list(columns.client_id)
    out["__fingerprint_id"] = list(columns.fingerprint_id)
    out["__request_id"] = list(columns.request_id)
    # an ingested event whose sender reported no latency: not measured, not fast
    out["__runtime_ms"] = np.where(row_runtime >= 0, row_runtime, np.nan)
    out["__request_runtime_ms"] = np.where(runtime >= 0, runtime, np.nan)
    out["__row_index"] = np.array(columns.row_index, dtype=np.int64)
    out["__request_type"] = list(columns.request_type)
    out["__has_data"] = np.array([d is not None for d in data], dtype=bool)
    out["__adversarial"] = list(columns.adversarial)
    out["prediction"] = [str(p) if p is not None else None for p in columns.prediction] if classes \
        else list(columns.prediction)
    probability = columns.probability
    if any(p is not None for p in probability):
        width = max(len(p) for p in probability if p is not None)
        for j, label in enumerate(classes[:width]):  # as zip(classes, probability) fills them
            out[f"probability_{label}"] = [p[j] if p is not None and j < len(p) else None for p in probability]
    return pd.DataFrame(out)


def split(frame: pd.DataFrame, spec: WindowSpec) -> Iterator[Window]:
    """Consecutive windows in event-time order; empty windows are skipped."""
    if frame.empty:
        return
    frame = frame.sort_values("__timestamp", kind="stable").reset_index(drop=True)
    if spec.count is not None:
        for start in range(0, len(frame), spec.count):
            part = frame.iloc[start : start + spec.count]
            yield Window(part["__timestamp"].iloc[0], part["__timestamp"].iloc[-1], part)
        return
    assert spec.length is not None
    starts = [t.to_pydatetime() for t in spec.starts_of(frame["__timestamp"])]
    # group on positions, not on the datetimes: pandas would drop their timezone
    boundaries = [0] + [i for i in range(1, len(starts)) if starts[i] != starts[i - 1]] + [len(starts)]
    for lo, hi in zip(boundaries, boundaries[1:]):
        yield Window(starts[lo], starts[lo] + spec.length, frame.iloc[lo:hi])
