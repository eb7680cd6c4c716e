"""A summary job: how a frame of exported events becomes mergeable parts, and the in-process engine.

Events arrive as the Parquet export writes them (:mod:`loopwatch.stores.parquet`): a column
per event fact, per feature, per output. :func:`events_frame_of_export` renames them into the
form the summary builders read (features under their own names, event facts in ``__``
columns, as :func:`loopwatch.application.monitoring.windows.events_frame` makes them).

:func:`feature_parts_job` builds, per (model, version, hour, feature), a
:class:`~loopwatch.summaries.numeric.NumericPart` on the reference's bin edges or a
:class:`~loopwatch.summaries.categorical.CategoricalPart`. Keys are tuples of strings and
integers, so that any engine can hash, sort and ship them.

>>> from datetime import datetime, timezone
>>> layouts = {("m", 1): PartsLayout(numeric={"x": (0.0,)}, categorical=("c",))}
>>> frame = pd.DataFrame({"model_name": ["m"] * 3, "model_version": [1, 1, 1],
...     "timestamp": [datetime(2026, 1, 5, 10, 5, tzinfo=timezone.utc)] * 2
...                  + [datetime(2026, 1, 5, 11, 0, tzinfo=timezone.utc)],
...     "x": [-1.0, 2.0, None], "c": ["a", "b", "a"]})
>>> job = feature_parts_job(layouts)
>>> parts = job.build(frame)
>>> sorted(parts)[:2]
[('m', 1, '2026-01-05T10:00:00+00:00', 'c'), ('m', 1, '2026-01-05T10:00:00+00:00', 'x')]
>>> parts[("m", 1, "2026-01-05T10:00:00+00:00", "x")].bins
(1, 1)
>>> job.decode(job.encode(parts[("m", 1, "2026-01-05T11:00:00+00:00", "x")])).n_null
1
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo, require
from loopwatch.summaries.categorical import DEFAULT_CAP, CategoricalPart
from loopwatch.summaries.numeric import DEFAULT_K, NumericPart
from loopwatch.summaries.window import merge_feature

Key = tuple[Hashable, ...]
FeaturePart = NumericPart | CategoricalPart

#: Export columns renamed to the ``__`` event-fact columns the summary builders read.
EVENT_FACTS = {
    "timestamp": "__timestamp", "model_version": "__version", "request_id": "__request_id",
    "row_index": "__row_index", "client_id": "__client_id", "fingerprint_id": "__fingerprint_id",
    "request_type": "__request_type", "runtime_ms": "__request_runtime_ms", "row_runtime_ms": "__runtime_ms",
}


@dataclass(frozen=True)
class SummaryJob:
    """What an engine runs: ``build`` a frame of exported events into parts by key, ``merge``
    two parts of one key (associative and commutative), and ``encode``/``decode`` a part to
    bytes for shipping between processes. ``columns``: the export columns ``build`` reads
    (``None``: all), so an engine reads no others."""

    build: Callable[[pd.DataFrame], Mapping[Key, Any]]
    merge: Callable[[Any, Any], Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    columns: tuple[str, ...] | None = None

    def merge_into(self, into: dict[Key, Any], parts: Mapping[Key, Any]) -> None:
        """Merge ``parts`` into ``into``, key by key."""
        for key, part in parts.items():
            into[key] = part if key not in into else self.merge(into[key], part)


@dataclass(frozen=True, kw_only=True)
class PartsLayout:
    """What one model version's feature parts are built on: each numeric feature's bin edges
    (the reference's), the categorical features, and the export column of each feature where
    it differs from its name (``feature_timestamp`` for a feature named ``timestamp``)."""

    numeric: Mapping[str, tuple[float, ...]]
    categorical: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    kll_k: int = DEFAULT_K
    category_cap: int = DEFAULT_CAP


def events_frame_of_export(frame: pd.DataFrame, *, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """An exported frame with event facts as ``__`` columns and features under their names
    (``columns``: feature name by export column, where they differ). Timestamps are UTC."""
    renames = {c: n for c, n in EVENT_FACTS.items() if c in frame.columns}
    renames.update({c: n for n, c in (columns or {}).items() if c in frame.columns})
    out = frame.rename(columns=renames)
    if "__timestamp" in out.columns:
        # Spark hands timestamps over as naive values in its session's zone, which the engine sets to UTC
        out["__timestamp"] = pd.to_datetime(out["__timestamp"], utc=True)
    return out


def _hour_starts(times: pd.Series) -> pd.Series:
    return pd.to_datetime(times, utc=True).dt.floor("h")


def build_feature_parts(frame: pd.DataFrame, *, layouts: Mapping[tuple[str, int], PartsLayout]) -> dict[Key, FeaturePart]:
    """Per (model, version, hour start as ISO text, feature), the feature's part of the rows."""
    out: dict[Key, FeaturePart] = {}
    if frame.empty:
        return out
    missing = [c for c in ("model_name", "model_version", "timestamp") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"an exported events frame needs the columns {missing}")
    keys = pd.DataFrame({"m": frame["model_name"].astype(str).to_numpy(),
                         "v": frame["model_version"].astype(np.int64).to_numpy(),
                         "s": _hour_starts(frame["timestamp"]).to_numpy()})
    for (model, version, start), index in keys.groupby(["m", "v", "s"], sort=True).indices.items():
        layout = layouts.get((str(model), int(version)))
        if layout is None:
            raise InvalidInput(f"no summary layout for version {int(version)} of {echo(model)}")
        rows = events_frame_of_export(frame.iloc[np.sort(index)], columns=layout.columns)
        hour = pd.Timestamp(start).tz_localize("UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start)
        prefix: Key = (str(model), int(version), hour.isoformat())
        n = len(rows)
        for name, edges in layout.numeric.items():
            values = rows[name] if name in rows.columns else np.full(n, np.nan)
            out[(*prefix, name)] = NumericPart.from_values(values, edges=edges, k=layout.kll_k)
        for name in layout.categorical:
            labels = rows[name].tolist() if name in rows.columns else [None] * n
            out[(*prefix, name)] = CategoricalPart.from_values(labels, cap=layout.category_cap)
    return out


def encode_part(part: FeaturePart) -> bytes:
    return json.dumps(part.to_dict(), separators=(",", ":")).encode()


def decode_part(data: bytes) -> FeaturePart:
    d = json.loads(data)
    return NumericPart.from_dict(d) if d.get("kind") == "numeric" else CategoricalPart.from_dict(d)


def feature_parts_job(layouts: Mapping[tuple[str, int], PartsLayout]) -> SummaryJob:
    """The job that builds every version's per-hour feature parts (see the module's notes)."""
    frozen = dict(layouts)
    read: set[str] = {"model_name", "model_version", "timestamp"}
    for layout in frozen.values():
        read.update(layout.columns.get(n, n) for n in (*layout.numeric, *layout.categorical))

    def build(frame: pd.DataFrame) -> dict[Key, FeaturePart]:
        return build_feature_parts(frame, layouts=frozen)

    return SummaryJob(build=build, merge=merge_feature, encode=encode_part, decode=decode_part,
                      columns=tuple(sorted(read)))


def read_export(path: str | Path, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A Parquet export (a file, or a directory partitioned by model and date) as one frame."""
    ds = require("pyarrow.dataset", "parquet")
    source = Path(path)
    if not source.exists():
        raise InvalidInput(f"no Parquet export at {echo(str(source))}")
    dataset = ds.dataset(str(source), format="parquet", partitioning="hive" if source.is_dir() else None)
    wanted = None if columns is None else [c for c in columns if c in dataset.schema.names]
    table = dataset.to_table(columns=wanted)
    frame: pd.DataFrame = table.to_pandas()
    if "model_name" in frame.columns:
        # partition values come back as dictionary-encoded categories: plain strings, as in a file
        frame["model_name"] = frame["model_name"].astype(str)
    return frame


def run_in_process(job: SummaryJob, path: str | Path) -> dict[Key, Any]:
    """The in-process engine: read the whole export and ``build`` it at once."""
    return dict(job.build(read_export(path, columns=job.columns)))
