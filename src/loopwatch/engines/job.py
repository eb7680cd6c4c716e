"""A summary job: how a frame of exported events becomes whole window summaries, and the in-process engine.

Events arrive as the Parquet export writes them (:mod:`loopwatch.stores.parquet`): a column
per event fact, per feature, per output. :func:`window_frame` turns one version's rows into
the frame the summariser builds from (:func:`loopwatch.application.monitoring.windows.
events_frame`'s form: features under their names in the version's canonical form, event
facts in ``__`` columns, ``prediction`` as the class's text, ``probability_<class>``), and
:func:`~loopwatch.summaries.window.summarise_frame` builds the
:class:`~loopwatch.summaries.window.WindowSummary` of each (version, hour): the very code the
summariser runs on the store's log.

:func:`window_summaries_job` keys its values by ``("window", model, version, hour start as
ISO text)`` and, per model, ``("extent", model)``: an :class:`ExportExtent` (events read,
the newest ``logged_at`` among them, events of versions it had no layout for), which decides
what the export's summaries may be written over (:mod:`loopwatch.engines.summarize`). Keys
are tuples of strings and integers, so that any engine can hash, sort and ship them.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo, require
from loopwatch.features.frames import with_canonical_features
from loopwatch.features.schema import FeatureSchema, category_label
from loopwatch.summaries.window import EstimatorHook, SummaryLayout, WindowSummary, summarise_frame

Key = tuple[Hashable, ...]

#: Rows per batch the in-process engine builds from (Spark's engine: per Arrow batch of the same size).
BATCH_ROWS = 100_000

#: Export columns renamed to the ``__`` event-fact columns the summary builders read.
EVENT_FACTS = {
    "timestamp": "__timestamp", "model_version": "__version", "request_id": "__request_id",
    "row_index": "__row_index", "client_id": "__client_id", "fingerprint_id": "__fingerprint_id",
    "request_type": "__request_type", "runtime_ms": "__request_runtime_ms", "row_runtime_ms": "__runtime_ms",
}
#: Event facts held as text: a null is ``None`` in them, as in an event read from the store
#: (pandas reads a null of a string column as NaN).
_TEXT_FACTS = ("__request_id", "__client_id", "__fingerprint_id", "__request_type")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class SummaryJob:
    """What an engine runs: ``build`` a frame of exported events into values by key, ``merge``
    two values of one key (associative and commutative), ``finish`` a merged value before it
    leaves the engine (what the store keeps of it), and ``encode``/``decode`` a value to bytes
    for shipping between processes. ``columns``: the export columns ``build`` reads (``None``:
    all); ``models``: the models whose rows it reads (``None``: all)."""

    build: Callable[[pd.DataFrame], Mapping[Key, Any]]
    merge: Callable[[Any, Any], Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    columns: tuple[str, ...] | None = None
    finish: Callable[[Any], Any] = _same
    models: tuple[str, ...] | None = None

    def merge_into(self, into: dict[Key, Any], parts: Mapping[Key, Any]) -> None:
        """Merge ``parts`` into ``into``, key by key."""
        for key, part in parts.items():
            into[key] = part if key not in into else self.merge(into[key], part)


@dataclass(frozen=True, kw_only=True)
class VersionPlan:
    """What one version's events are summarised with: its layout (from its reference profile),
    its feature schema (the form its features are read in), its estimation hook, if any."""

    layout: SummaryLayout
    schema: FeatureSchema
    estimator: EstimatorHook | None = None


@dataclass(frozen=True, kw_only=True)
class ExportExtent:
    """What an export held of one model: its events, the newest event's ``logged_at``
    (microseconds; ``None`` when the export has no ``logged_at``) and request id (the store
    knows when it committed that request: the summariser's watermark counts by it), and the
    events of each version the job had no plan for (left out of the summaries)."""

    events: int
    logged_through: int | None
    last_request: str | None = None
    unplanned: Mapping[int, int] = field(default_factory=dict)

    def merge(self, other: ExportExtent) -> ExportExtent:
        newest = max((self, other), key=lambda e: (e.logged_through is not None, e.logged_through or 0,
                                                   e.last_request or ""))
        unplanned = dict(self.unplanned)
        for version, n in other.unplanned.items():
            unplanned[version] = unplanned.get(version, 0) + n
        return ExportExtent(events=self.events + other.events, logged_through=newest.logged_through,
                            last_request=newest.last_request, unplanned=unplanned)

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "logged_through": self.logged_through, "last_request": self.last_request,
                "unplanned": {str(v): n for v, n in sorted(self.unplanned.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportExtent:
        return cls(events=int(data["events"]),
                   logged_through=None if data["logged_through"] is None else int(data["logged_through"]),
                   last_request=None if data["last_request"] is None else str(data["last_request"]),
                   unplanned={int(v): int(n) for v, n in data["unplanned"].items()})


def _micros(times: pd.Series) -> np.ndarray:
    moments = pd.to_datetime(times, utc=True)
    return np.asarray((moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1), dtype=np.int64)


def _text(values: pd.Series) -> np.ndarray:
    """A column of text with ``None`` for a null."""
    out = values.to_numpy(dtype=object, copy=True)
    out[pd.isna(out)] = None
    return out


def window_frame(frame: pd.DataFrame, *, schema: FeatureSchema, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One version's exported events in the summariser's form (see the module's notes).

    ``columns``: the export column of each feature whose column is not its name
    (``feature_timestamp``). An event whose every feature is null is taken as logged without
    data (the export does not say which events were; a model with ``--no-log-data`` logs none).

    >>> from datetime import datetime, timezone
    >>> from loopwatch.features.schema import Feature
    >>> schema = FeatureSchema(features=(Feature(name="x", kind="numeric"), Feature(name="c", kind="categorical",
    ...     category_type="integer")), target="y", task="classification", classes=(False, True))
    >>> exported = pd.DataFrame({"timestamp": [datetime(2026, 1, 5, 10, tzinfo=timezone.utc)] * 2,
    ...     "model_version": [1, 1], "request_id": ["r1", "r2"], "row_index": [0, 0], "client_id": ["a", None],
    ...     "x": [0.5, None], "c": [3, None], "prediction": [True, False], "probability_true": [0.9, 0.2],
    ...     "probability_false": [0.1, 0.8]})
    >>> rows = window_frame(exported, schema=schema)
    >>> picked = rows[["c", "prediction", "probability_True", "__client_id", "__has_data"]]
    >>> picked.astype(object).where(picked.notna(), None).values.tolist()
    [['3', 'True', 0.9, 'a', True], [None, 'False', 0.2, None, False]]
    """
    data: dict[str, Any] = {}
    for column, name in EVENT_FACTS.items():
        if column in frame.columns:
            data[name] = _text(frame[column]) if name in _TEXT_FACTS else frame[column].to_numpy()
    if "__timestamp" in data:
        # Spark hands timestamps over as naive values in its session's zone, which the engine sets to UTC
        data["__timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).to_numpy()
    present = np.zeros(len(frame), dtype=bool)
    for feature in schema.features:
        column = (columns or {}).get(feature.name, feature.name)
        if column in frame.columns:
            data[feature.name] = frame[column].to_numpy()
            present |= frame[column].notna().to_numpy()
    data["__has_data"] = present if schema.features else np.ones(len(frame), dtype=bool)
    if "prediction" in frame.columns:
        prediction = frame["prediction"]
        if schema.task == "classification":
            # the class's own text, as the summariser reads a logged prediction (``str(True)``), from
            # whichever form the export's column holds it in (``true`` in a column of labels)
            texts = {category_label(c): str(c) for c in schema.classes}
            codes, uniques = pd.factorize(prediction, use_na_sentinel=True)
            labels = np.array([texts.get(category_label(u), str(u)) for u in uniques] + [None], dtype=object)
            data["prediction"] = labels[codes]
        else:
            data["prediction"] = prediction.to_numpy(dtype=np.float64, na_value=np.nan)
    for c in schema.classes if schema.task == "classification" else ():
        column = f"probability_{category_label(c)}"
        if column in frame.columns:
            data[f"probability_{c}"] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return with_canonical_features(pd.DataFrame(data), schema)


def _encode(value: Any) -> bytes:
    tagged = {"extent": value.to_dict()} if isinstance(value, ExportExtent) else {"window": value.to_dict()}
    return zlib.compress(json.dumps(tagged, separators=(",", ":")).encode(), 1)


def _decode(data: bytes) -> Any:
    tagged = json.loads(zlib.decompress(data))
    return ExportExtent.from_dict(tagged["extent"]) if "extent" in tagged else WindowSummary.from_dict(tagged["window"])


def _merge(a: Any, b: Any) -> Any:
    return a.merge(b)


def _finish(value: Any) -> Any:
    # what the store keeps of an hourly window (a short sample, pruned clients): applied where the
    # windows are merged, so that only that leaves the executors; the store applies it again, to no effect
    return value.stored() if isinstance(value, WindowSummary) else value


def build_windows(frame: pd.DataFrame, *, plans: Mapping[tuple[str, int], VersionPlan],
                  columns: Mapping[str, str] | None = None) -> dict[Key, Any]:
    """The window summaries of a frame of exported events, and each model's extent."""
    out: dict[Key, Any] = {}
    if frame.empty:
        return out
    missing = [c for c in ("model_name", "model_version", "timestamp", "request_id", "row_index")
               if c not in frame.columns]
    if missing:
        raise InvalidInput(f"an exported events frame needs the columns {missing}")
    logged = _micros(frame["logged_at"]) if "logged_at" in frame.columns else None
    requests = frame["request_id"].astype(str).to_numpy()
    keys = pd.DataFrame({"m": frame["model_name"].astype(str).to_numpy(),
                         "v": frame["model_version"].astype(np.int64).to_numpy()})
    for (model, version), index in keys.groupby(["m", "v"], sort=True).indices.items():
        name, number = str(model), int(version)
        plan = plans.get((name, number))
        through = last = None
        if logged is not None:
            newest = index[logged[index] == logged[index].max()]
            through, last = int(logged[newest[0]]), str(max(requests[newest]))
        extent = ExportExtent(events=len(index), logged_through=through, last_request=last,
                              unplanned={} if plan is not None else {number: len(index)})
        key: Key = ("extent", name)
        out[key] = extent if key not in out else out[key].merge(extent)
        if plan is None:
            continue
        rows = window_frame(frame.iloc[np.sort(index)], schema=plan.schema, columns=columns)
        built = summarise_frame(rows, model=name, layouts={number: plan.layout},
                                estimators=None if plan.estimator is None else {number: plan.estimator})
        for (v, start), summary in built.items():
            out[("window", name, v, start.isoformat())] = summary
    return out


def window_summaries_job(plans: Mapping[tuple[str, int], VersionPlan], *, columns: Mapping[str, str] | None = None,
                         models: Iterable[str] | None = None) -> SummaryJob:
    """The job that builds every planned version's hourly window summaries (see the module's
    notes). ``columns``: the export column of each feature whose column is not its name."""
    frozen = dict(plans)
    renamed = dict(columns or {})
    read: set[str] = {*EVENT_FACTS, "model_name", "logged_at", "prediction"}
    for plan in frozen.values():
        read.update(renamed.get(f, f) for f in plan.schema.names)
        read.update(f"probability_{category_label(c)}" for c in plan.schema.classes)

    def build(frame: pd.DataFrame) -> dict[Key, Any]:
        return build_windows(frame, plans=frozen, columns=renamed)

    return SummaryJob(build=build, merge=_merge, encode=_encode, decode=_decode, finish=_finish,
                      columns=tuple(sorted(read)), models=None if models is None else tuple(sorted(models)))


def _dataset(path: str | Path) -> Any:
    pa = require("pyarrow", "parquet")
    ds = require("pyarrow.dataset", "parquet")
    source = Path(path)
    if not source.exists():
        raise InvalidInput(f"no Parquet export at {echo(str(source))}")
    if not source.is_dir():
        return ds.dataset(str(source), format="parquet")
    # partition values as text, as Spark reads them here: a model named 2024 stays a name
    partitioning = ds.partitioning(pa.schema([("model_name", pa.string()), ("date", pa.string())]), flavor="hive")
    return ds.dataset(str(source), format="parquet", partitioning=partitioning)


def iter_export(path: str | Path, *, columns: Iterable[str] | None = None, models: Iterable[str] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """A Parquet export (a file, or a directory partitioned by model and date) in frames of at
    most ``batch_rows`` rows, holding only ``columns`` (those the export has) and ``models``."""
    ds = require("pyarrow.dataset", "parquet")
    dataset = _dataset(path)
    wanted = None if columns is None else [c for c in columns if c in dataset.schema.names]
    where = None if models is None else ds.field("model_name").isin(list(models))
    # one batch read ahead of one file: pyarrow's default reads ahead 16 batches of 4 files at
    # once, millions of rows, where the engine needs one batch at a time
    for batch in dataset.to_batches(columns=wanted, filter=where, batch_size=batch_rows, batch_readahead=1,
                                    fragment_readahead=1):
        if batch.num_rows:
            yield batch.to_pandas()


def read_export(path: str | Path, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A Parquet export as one frame (for tests and small exports: the engines read it in batches)."""
    dataset = _dataset(path)
    wanted = None if columns is None else [c for c in columns if c in dataset.schema.names]
    frame: pd.DataFrame = dataset.to_table(columns=wanted).to_pandas()
    return frame


def run_in_process(job: SummaryJob, path: str | Path, *, batch_rows: int = BATCH_ROWS) -> dict[Key, Any]:
    """The in-process engine: ``build`` the export batch by batch, merge, ``finish``."""
    merged: dict[Key, Any] = {}
    for frame in iter_export(path, columns=job.columns, models=job.models, batch_rows=batch_rows):
        job.merge_into(merged, job.build(frame))
    return {key: job.finish(value) for key, value in merged.items()}
