"""One window of one model version, summarised: every part monitoring reads, in one value.

A :class:`WindowSummary` is kept per (model, version, base window start); the base window is
an hour by default (:data:`BASE_WINDOW`). It holds:

* per input feature, a :class:`~loopwatch.summaries.numeric.NumericPart` on the reference's
  fixed bin edges or a :class:`~loopwatch.summaries.categorical.CategoricalPart`;
* the model's outputs as features too (``prediction``, and ``probability_<class>`` for a
  classifier), so prediction drift reads the same parts;
* the traffic (:class:`~loopwatch.summaries.traffic.TrafficSums`), the clients
  (:class:`~loopwatch.summaries.traffic.ClientSums`, pruned as stored windows keep them),
  and a bounded uniform row sample (:class:`~loopwatch.summaries.reservoir.RowSample`);
* the CBPE or DLE sums where the version has a fitted estimator (built by a callable the
  caller passes: the estimator lives with the version, outside this package);
* the label join (:class:`~loopwatch.summaries.labels.LabelSums`), set by whoever joins the
  window's labels: it is replaced as a whole when labels arrive, never added to.

What the parts are built on (edges, categories, classes, sample sizes, the sample's seed) is a
:class:`SummaryLayout`. Its :attr:`~SummaryLayout.layout_id` is stored with every summary, so
that a rebaseline (new edges) is seen and the version's summaries rebuilt, and summaries on
different layouts never merge.

:func:`summarise_frame` builds the summaries of one batch of events from a pandas frame in the
form :func:`loopwatch.application.monitoring.windows.events_frame` gives (features as columns,
event facts in ``__`` columns); it reads nothing else, so it runs anywhere a frame does: in
the summariser, or per partition in a Spark executor, whose results are then merged.

>>> layout = SummaryLayout(numeric={"x": (0.0, 1.0)}, categorical=("c",), task="regression", seed=1)
>>> frame = _example_frame()
>>> built = summarise_frame(frame, model="m", layouts={1: layout})
>>> sorted(built)
[(1, datetime.datetime(2026, 1, 5, 10, 0, tzinfo=datetime.timezone.utc))]
>>> s = built[sorted(built)[0]]
>>> s.n, s.features["x"].bins, dict(s.features["c"].counts), len(s.sample.rows)
(3, (1, 1, 1), {'a': 2, 'b': 1}, 3)
>>> WindowSummary.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput
from loopwatch.summaries.categorical import DEFAULT_CAP, CategoricalPart
from loopwatch.summaries.labels import LabelSums
from loopwatch.summaries.numeric import DEFAULT_K as KLL_K
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.outcomes import ConfidenceSums, LossSums
from loopwatch.summaries.part import freeze_fields
from loopwatch.summaries.reservoir import DEFAULT_K as SAMPLE_K
from loopwatch.summaries.reservoir import RowSample
from loopwatch.summaries.traffic import CLIENT_ROWS_STORED, CLIENT_SAMPLE_K, MAX_CLIENTS, ClientSums, TrafficSums

#: The base window: summaries are kept per hour of event time unless a model says otherwise.
BASE_WINDOW = timedelta(hours=1)
#: Windows are aligned as :class:`~loopwatch.application.monitoring.windows.WindowSpec` aligns
#: them: on the first Monday of 1970, so an hour, a day and a week all start on its boundaries.
EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=timezone.utc)
#: Rows a stored hourly window keeps of its sample: a day merged from 24 hours of similar
#: traffic fills its sample of ``k`` (2,000) again, and an hour's payload stays small (the
#: sample is most of it: 2,000 rows of 20 features are 1.3 MB of JSON, 400 kB compressed).
HOUR_SAMPLE_ROWS = 256
#: Columns of a sampled row beside its features and outputs: the client and the software
#: fingerprint of its event.
SAMPLE_SOURCE_COLUMNS = ("__client_id", "__fingerprint_id")
#: The version of :meth:`WindowSummary.to_dict`'s form; a reader refuses others.
FORMAT = 1

EstimationSums = ConfidenceSums | LossSums
#: Builds the estimation sums of a batch of one version's events (its frame), or ``None``.
EstimatorHook = Callable[[pd.DataFrame], EstimationSums | None]


@dataclass(frozen=True, kw_only=True)
class SummaryLayout:
    """What a version's window parts are built on.

    ``numeric``: each numeric feature's bin edges (the reference profile's); ``categorical``:
    the categorical features; ``task`` and ``classes``: the model's outputs (a classifier's
    ``prediction`` is a categorical part and each ``probability_<class>`` a numeric one on
    ``output_edges``; a regressor's ``prediction`` is numeric on ``output_edges["prediction"]``).
    ``log_data=False``: the model logs no input rows, so no row sample and no client rows.
    """

    numeric: Mapping[str, tuple[float, ...]]
    categorical: tuple[str, ...] = ()
    task: str = "classification"
    classes: tuple[str, ...] = ()
    output_edges: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    log_data: bool = True
    sample_k: int = SAMPLE_K
    client_k: int = CLIENT_SAMPLE_K
    category_cap: int = DEFAULT_CAP
    kll_k: int = KLL_K
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise InvalidInput(f"task must be classification or regression, got {self.task!r}")
        object.__setattr__(self, "numeric", {str(k): tuple(float(e) for e in v) for k, v in self.numeric.items()})
        object.__setattr__(self, "output_edges",
                           {str(k): tuple(float(e) for e in v) for k, v in self.output_edges.items()})
        object.__setattr__(self, "categorical", tuple(str(c) for c in self.categorical))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        freeze_fields(self, "numeric", "output_edges")

    @property
    def layout_id(self) -> str:
        """A digest of everything the parts are built on: equal layouts build mergeable parts."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def output_columns(self) -> dict[str, tuple[float, ...] | None]:
        """The output columns summarised as features: their edges, ``None`` for a categorical one."""
        if self.task == "regression":
            return {"prediction": self.output_edges.get("prediction", ())}
        out: dict[str, tuple[float, ...] | None] = {"prediction": None}
        for label in self.classes:
            name = f"probability_{label}"
            out[name] = self.output_edges.get(name, ())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {k: list(v) for k, v in sorted(self.numeric.items())}, "categorical": list(self.categorical),
            "task": self.task, "classes": list(self.classes),
            "output_edges": {k: list(v) for k, v in sorted(self.output_edges.items())},
            "log_data": self.log_data, "sample_k": self.sample_k, "client_k": self.client_k,
            "category_cap": self.category_cap, "kll_k": self.kll_k, "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SummaryLayout:
        return cls(
            numeric={k: tuple(v) for k, v in data["numeric"].items()}, categorical=tuple(data["categorical"]),
            task=str(data["task"]), classes=tuple(data["classes"]),
            output_edges={k: tuple(v) for k, v in data["output_edges"].items()}, log_data=bool(data["log_data"]),
            sample_k=int(data["sample_k"]), client_k=int(data["client_k"]),
            category_cap=int(data["category_cap"]), kll_k=int(data["kll_k"]), seed=int(data["seed"]),
        )


FeaturePart = NumericPart | CategoricalPart


def window_start(moment: datetime, length: timedelta = BASE_WINDOW) -> datetime:
    """The start of the window of ``length`` holding ``moment``.

    >>> window_start(datetime(2026, 3, 4, 17, 59, tzinfo=timezone.utc))
    datetime.datetime(2026, 3, 4, 17, 0, tzinfo=datetime.timezone.utc)
    """
    return EPOCH_MONDAY + ((moment - EPOCH_MONDAY) // length) * length


@dataclass(frozen=True, kw_only=True)
class WindowSummary:
    """The parts of one model version's events over ``[start, end)`` (see the module's notes).

    Merging two summaries of one version and layout gives the summary of both windows' events
    (``start`` the earlier start, ``end`` the later end): how days and weeks are read from
    hours. Exact parts merge exactly; sketches within their bounds.
    """

    #: The sketch fields of every feature part sit under this key of :meth:`to_dict`.
    SKETCH_KEYS: ClassVar[tuple[str, ...]] = ("sketches",)

    model: str
    version: int
    start: datetime
    end: datetime
    layout_id: str
    features: Mapping[str, FeaturePart]
    traffic: TrafficSums
    clients: ClientSums
    sample: RowSample
    estimation: EstimationSums | None = None
    labels: LabelSums | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise InvalidInput(f"a window's {name} must be a timezone-aware datetime")
            object.__setattr__(self, name, moment.astimezone(timezone.utc))
        if not self.start < self.end:
            raise InvalidInput("a window must end after it starts")
        freeze_fields(self, "features")

    @property
    def n(self) -> int:
        """Events summarised."""
        return self.traffic.n

    @property
    def unavailable_tests(self) -> tuple[str, ...]:
        """The tests that read rows and cannot run on this window (a model logged without data)."""
        return self.sample.unavailable_tests()

    def merge(self, other: WindowSummary, /) -> WindowSummary:
        if not isinstance(other, WindowSummary):
            raise InvalidInput("can only merge a WindowSummary with another")
        if (self.model, self.version, self.layout_id) != (other.model, other.version, other.layout_id):
            raise InvalidInput("window summaries of different models, versions or layouts cannot merge: "
                               "rebuild them on the version's current reference")
        if set(self.features) != set(other.features):
            raise InvalidInput("window summaries of different features cannot merge")
        return WindowSummary(
            model=self.model, version=self.version, start=min(self.start, other.start),
            end=max(self.end, other.end), layout_id=self.layout_id,
            features={name: merge_feature(part, other.features[name]) for name, part in self.features.items()},
            traffic=self.traffic.merge(other.traffic), clients=self.clients.merge(other.clients),
            sample=self.sample.merge(other.sample),
            estimation=_merge_optional(self.estimation, other.estimation),
            labels=_merge_optional(self.labels, other.labels),
        )

    def with_labels(self, labels: LabelSums | None) -> WindowSummary:
        """The same window with its label join replaced (never added to: late labels rebuild it)."""
        return replace(self, labels=labels)

    def stored(self, sample_rows: int | None = HOUR_SAMPLE_ROWS) -> WindowSummary:
        """What a stored window keeps: its clients pruned (:meth:`ClientSums.pruned`), and at most
        ``sample_rows`` of its sampled rows (:meth:`RowSample.truncated`; ``None``: all ``k``).
        A truncated sample is still every row below its threshold, so windows merged on read
        fill up to ``k`` again, and merging a batch into a stored window and truncating gives the
        same rows as truncating the whole window's sample: a rebuild gives the same sample."""
        sample = self.sample if sample_rows is None else self.sample.truncated(sample_rows)
        return replace(self, clients=self.clients.pruned(MAX_CLIENTS, CLIENT_ROWS_STORED), sample=sample)

    def to_dict(self) -> dict[str, Any]:
        features: dict[str, Any] = {}
        sketches: dict[str, Any] = {}
        for name, part in sorted(self.features.items()):
            d = part.to_dict()
            sketches[name] = {key: d.pop(key) for key in part.SKETCH_KEYS}
            features[name] = d
        return {
            "format": FORMAT, "model": self.model, "version": self.version,
            "start": self.start.isoformat(), "end": self.end.isoformat(), "layout_id": self.layout_id,
            "features": features, "sketches": sketches, "traffic": self.traffic.to_dict(),
            "clients": self.clients.to_dict(), "sample": self.sample.to_dict(),
            "estimation": None if self.estimation is None else {
                "kind": "confidence" if isinstance(self.estimation, ConfidenceSums) else "loss",
                **self.estimation.to_dict()},
            "labels": None if self.labels is None else self.labels.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSummary:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InvalidInput(f"not a window summary of format {FORMAT}")
        try:
            features: dict[str, FeaturePart] = {}
            for name, d in data["features"].items():
                whole = {**d, **data["sketches"][name]}
                features[name] = NumericPart.from_dict(whole) if d.get("kind") == "numeric" else \
                    CategoricalPart.from_dict(whole)
            estimation: EstimationSums | None = None
            if data["estimation"] is not None:
                e = dict(data["estimation"])
                kind = e.pop("kind")
                estimation = ConfidenceSums.from_dict(e) if kind == "confidence" else LossSums.from_dict(e)
            return cls(
                model=str(data["model"]), version=int(data["version"]),
                start=datetime.fromisoformat(data["start"]), end=datetime.fromisoformat(data["end"]),
                layout_id=str(data["layout_id"]), features=features,
                traffic=TrafficSums.from_dict(data["traffic"]), clients=ClientSums.from_dict(data["clients"]),
                sample=RowSample.from_dict(data["sample"]), estimation=estimation,
                labels=None if data["labels"] is None else LabelSums.from_dict(data["labels"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a window summary: {exc}") from exc


def merge_feature(a: FeaturePart, b: FeaturePart) -> FeaturePart:
    """Two parts of one feature: numeric with numeric, categorical with categorical."""
    if isinstance(a, NumericPart) and isinstance(b, NumericPart):
        return a.merge(b)
    if isinstance(a, CategoricalPart) and isinstance(b, CategoricalPart):
        return a.merge(b)
    raise InvalidInput("a feature summarised as numeric in one part and categorical in another cannot merge")


def _merge_optional(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


def empty_summary(*, model: str, version: int, start: datetime, layout: SummaryLayout,
                  length: timedelta = BASE_WINDOW) -> WindowSummary:
    """A window with no events: the identity of :meth:`WindowSummary.merge` for its version."""
    features: dict[str, FeaturePart] = {}
    for name, edges in layout.numeric.items():
        features[name] = NumericPart.empty(edges=edges, k=layout.kll_k)
    for name in layout.categorical:
        features[name] = CategoricalPart.empty(cap=layout.category_cap)
    for name, out_edges in layout.output_columns().items():
        features[name] = CategoricalPart.empty(cap=layout.category_cap) if out_edges is None else \
            NumericPart.empty(edges=out_edges, k=layout.kll_k)
    return WindowSummary(model=model, version=version, start=start, end=start + length, layout_id=layout.layout_id,
                         features=features, traffic=TrafficSums(), clients=ClientSums(k=layout.client_k,
                                                                                      seed=layout.seed),
                         sample=RowSample.empty(k=layout.sample_k, seed=layout.seed))


def summarise_frame(
    frame: pd.DataFrame,
    *,
    model: str,
    layouts: Mapping[int, SummaryLayout],
    length: timedelta = BASE_WINDOW,
    estimators: Mapping[int, EstimatorHook] | None = None,
    sample_rows: int | None = None,
) -> dict[tuple[int, datetime], WindowSummary]:
    """The summaries of one batch of events, one per (version, window start).

    ``frame``: events as :func:`~loopwatch.application.monitoring.windows.events_frame` gives
    them (``__timestamp``, ``__version``, ``__request_id``, ``__row_index``, ``__client_id``,
    ``__fingerprint_id``, ``__request_type``, ``__request_runtime_ms``, ``__has_data``, the
    features, ``prediction`` and ``probability_<class>``). ``layouts``: each version's layout
    (a version without one is refused). ``estimators``: per version, the hook that builds the
    batch's CBPE or DLE sums. Pure: the same frame gives the same summaries anywhere.

    ``sample_rows``: each window's row sample as :meth:`WindowSummary.stored` keeps it (its
    ``sample_rows`` rows of smallest priority), for a caller that stores the summaries as base
    windows right away: merged into a stored window and stored, it gives the same sample as the
    whole sample would (see :meth:`WindowSummary.stored`), without building rows that are
    dropped on the way (at an hour of 3,600 events, most of the summary's cost).
    """
    out: dict[tuple[int, datetime], WindowSummary] = {}
    if frame.empty:
        return out
    missing = [c for c in ("__timestamp", "__version", "__request_id", "__row_index") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"an events frame needs the columns {missing}")
    times = pd.to_datetime(frame["__timestamp"], utc=True)
    # window starts as integers of the column's own unit (grouping on timestamps as objects cost
    # more than summarising): floor division as pandas floors a Timedelta's
    unit = times.dt.unit
    ticks = times.dt.tz_localize(None).to_numpy().view(np.int64)
    origin = int(np.datetime64(EPOCH_MONDAY.replace(tzinfo=None), unit).astype(np.int64))
    step = int(np.timedelta64(length, "us").astype(f"timedelta64[{unit}]").astype(np.int64))
    starts = origin + ((ticks - origin) // step) * step
    versions = frame["__version"].astype(np.int64).to_numpy()
    order = np.lexsort((starts, versions))  # by version, then start; positions ascending within each
    v_sorted, s_sorted = versions[order], starts[order]
    bounds = np.flatnonzero(np.r_[True, (v_sorted[1:] != v_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1]), True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        version = int(v_sorted[lo])
        layout = layouts.get(version)
        if layout is None:
            raise InvalidInput(f"no summary layout for version {version} of {model!r}")
        part = frame.iloc[order[lo:hi]]
        moment = pd.Timestamp(int(s_sorted[lo]), unit=unit, tz="UTC")
        hook = None if estimators is None else estimators.get(version)
        summary = _summarise_window(part, model=model, version=version, start=moment.to_pydatetime(),
                                    length=length, layout=layout, estimator=hook, sample_rows=sample_rows)
        out[(version, summary.start)] = summary
    return out


def _column(frame: pd.DataFrame, name: str, default: Any) -> list[Any]:
    if name in frame.columns:
        return list(frame[name].tolist())
    return [default] * len(frame)


def _summarise_window(frame: pd.DataFrame, *, model: str, version: int, start: datetime, length: timedelta,
                      layout: SummaryLayout, estimator: EstimatorHook | None,
                      sample_rows: int | None = None) -> WindowSummary:
    n = len(frame)
    features: dict[str, FeaturePart] = {}
    for name, edges in layout.numeric.items():
        values = frame[name] if name in frame.columns else np.full(n, np.nan)
        features[name] = NumericPart.from_values(values, edges=edges, k=layout.kll_k)
    for name in layout.categorical:
        features[name] = CategoricalPart.from_values(_column(frame, name, None), cap=layout.category_cap)
    for name, out_edges in layout.output_columns().items():
        if out_edges is None:
            features[name] = CategoricalPart.from_values(_column(frame, name, None), cap=layout.category_cap)
        else:
            values = frame[name] if name in frame.columns else np.full(n, np.nan)
            features[name] = NumericPart.from_values(values, edges=out_edges, k=layout.kll_k)
    request_ids = [str(r) for r in frame["__request_id"].tolist()]
    row_indices = frame["__row_index"].astype(np.int64).tolist()
    request_types = [str(t) for t in _column(frame, "__request_type", "api")]
    traffic = TrafficSums.from_columns(
        row_indices=row_indices,
        request_latency_ms=np.asarray(_column(frame, "__request_runtime_ms", np.nan), dtype=np.float64).tolist(),
        request_types=request_types, fingerprint_ids=[str(f) for f in _column(frame, "__fingerprint_id", "")],
        evasion_flags=_column(frame, "__adversarial", None),
    )
    columns = [*layout.numeric, *layout.categorical, *layout.output_columns()]
    has_data = np.asarray(_column(frame, "__has_data", True), dtype=bool) & layout.log_data
    # a sampled row keeps who sent it and with what software, so that the loop engine can tell
    # the rows of new software from the others (SAMPLE_SOURCE_COLUMNS)
    rows = frame.reindex(columns=[*columns, *SAMPLE_SOURCE_COLUMNS]).reset_index(drop=True)
    sample = RowSample.empty(k=layout.sample_k, seed=layout.seed)
    with_data = np.flatnonzero(has_data)
    if with_data.size:
        sample = RowSample.from_rows([request_ids[i] for i in with_data], [row_indices[i] for i in with_data],
                                     rows.iloc[with_data].reset_index(drop=True), k=layout.sample_k, seed=layout.seed,
                                     keep=sample_rows)
    without = n - with_data.size
    if without:
        sample = sample.merge(RowSample(k=layout.sample_k, seed=layout.seed, n=without, n_without_data=without))
    proba = None
    if layout.task == "classification" and layout.classes:
        names = [f"probability_{c}" for c in layout.classes]
        if all(c in frame.columns for c in names):
            p = frame[names].to_numpy(dtype=np.float64)
            proba = p if np.isfinite(p).all() else None
    times = pd.to_datetime(frame["__timestamp"], utc=True)
    timestamps_us = ((times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).astype(np.int64).tolist()
    clients = ClientSums.from_columns(
        client_ids=_column(frame, "__client_id", None), request_ids=request_ids, row_indices=row_indices,
        timestamps_us=timestamps_us, request_types=request_types,
        rows=rows.reindex(columns=[*layout.numeric, *layout.categorical]) if layout.log_data and has_data.all()
        else None,
        proba=proba, k=layout.client_k, seed=layout.seed, max_clients=MAX_CLIENTS, rows_per_client=CLIENT_ROWS_STORED,
        evasion_flags=_column(frame, "__adversarial", None),
    )
    estimation = None if estimator is None else estimator(frame)
    return WindowSummary(model=model, version=version, start=start, end=start + length, layout_id=layout.layout_id,
                         features=features, traffic=traffic, clients=clients, sample=sample, estimation=estimation)


def merge_all(summaries: Sequence[WindowSummary]) -> WindowSummary:
    """One summary of several windows of one version (a day from its hours, say)."""
    if not summaries:
        raise InvalidInput("nothing to merge")
    out = summaries[0]
    for s in summaries[1:]:
        out = out.merge(s)
    return out


def _example_frame() -> pd.DataFrame:
    t = datetime(2026, 1, 5, 10, 15, tzinfo=timezone.utc)
    return pd.DataFrame({
        "x": [-1.0, 0.5, 2.0], "c": ["a", "b", "a"], "prediction": [1.0, 2.0, 3.0],
        "__timestamp": [t, t, t + timedelta(minutes=5)], "__version": [1, 1, 1],
        "__request_id": ["r1", "r1", "r2"], "__row_index": [0, 1, 0], "__client_id": ["c1", "c1", None],
        "__fingerprint_id": ["f", "f", "f"], "__request_type": ["api"] * 3,
        "__request_runtime_ms": [3.0, 3.0, 5.0], "__has_data": [True] * 3,
    })
