"""Who sent what, how fast: a window's traffic and its clients.

:class:`TrafficSums`
    Events and requests, request latency on fixed log-spaced bins (whole microseconds, so
    counts and sum are exact; p50 and p99 come with the bin that holds them, 4.4% wide:
    :mod:`~loopwatch.summaries.log_bins`), events per request type and per feature
    fingerprint, and rejections per reason. A request's latency is counted once, on its
    first row; an event whose latency was never measured (an ingested event whose sender
    reported none) is counted as missing, not as fast.

:class:`ClientSums`
    The extraction watch's evidence, per client. It names a client from the *set* of its
    queries in a window: its number of rows, its first and last query, the share of its rows
    near the decision boundary, and the geometry of its rows (how far they lie from the
    reference's support, how they spread, whether they form a lattice). The detector reads
    at most ``max_spread_rows`` (500) rows, drawn at random, for spread and support, and at
    most ``max_grid_rows`` (2,000) distinct rows for the lattice. So per client this keeps:

    * for **every** client, exactly: its query count, first and last time, and its rows'
      top-two probability margins on 20 fixed bins of 0.05 (the boundary share at any
      margin that is a multiple of 0.05, exactly);
    * for the clients with the most queries, a **per-client** bottom-k sample of their rows
      (:class:`~loopwatch.summaries.reservoir.RowSample`, the same keyed hash), ``k`` rows
      each: a uniform sample of the client's own queries, which is what the detector draws
      anyway. A window-wide sample would not do: 2,000 queries among a million events leave
      about two rows in a sample of 1,000.

    Samples merge per client (bottom-k of bottom-k, up to ``k`` = 500 rows), so ``merge``
    never drops a client and is exact. What a base window *stores* is smaller
    (:meth:`ClientSums.pruned`): samples for the ``max_clients`` (100) clients with the most
    queries only, each cut to its ``rows_per_client`` (128) rows of smallest priority; every
    count stays. A cut sample is still every row of the client below its threshold, so the
    day's merge of 24 stored hours is a uniform sample of the client's queries that fills up
    to 500 rows for a client that sends more than about 25 an hour, and holds 128 rows of a
    client that sends all its queries in one hour: above the detector's ``min_rows`` (50)
    either way. The sample's ``n`` says how many of the client's queries it covers.

    Why that is enough: a client must send ``min_rows`` queries in the evaluated window to be
    flagged at all, and it is sampled in every base window in which fewer than 100 clients
    out-send it. A client that sends 2,000 queries a day sends 83 an hour; at a million
    events a day from 600 clients of Zipf-skewed sizes and three batch jobs, 41 clients
    out-send it hour by hour (``benchmarks/summaries_window.py``), so it keeps a sample of
    all its queries and is named; ``tests/summaries/test_traffic.py`` shows the same at
    150,000 events. To hide, an attacker has to be out-sent by 100 clients in each of its
    hours, or split itself over client ids, which per-client evidence cannot see anyway.

    Shadow scoring and ingested events are no client's queries (one ingest key would look
    like one huge client) and are left out, as the extraction watch leaves them out.

Size bounds: :class:`TrafficSums`, a few hundred latency bins plus one count per request
type, fingerprint and rejection reason. :class:`ClientSums`, 3 numbers and at most 20 margin
counts per client, plus at most ``max_clients * rows_per_client`` sampled rows once pruned
(12,800 by default; a merged range, at most ``k`` = 500 rows per sampled client).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput
from loopwatch.summaries.part import freeze_fields
from loopwatch.summaries.log_bins import LogHistogram, Quantile
from loopwatch.summaries.reservoir import RowSample, factorize, samples_by_group

#: Request types that are no client's queries (as the extraction watch reads them).
NOT_CLIENT_QUERIES = ("shadow", "ingested")
#: Width of a margin bin: the share of rows within any multiple of it of the boundary is exact.
MARGIN_STEP = 0.05
MARGIN_BINS = 20
#: Rows a client's sample holds at most, merged: the extraction detector reads 500 for spread
#: and support.
CLIENT_SAMPLE_K = 500
#: Clients whose samples a stored (pruned) window keeps, and rows each of them keeps.
MAX_CLIENTS = 100
CLIENT_ROWS_STORED = 128


def _add_counts(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return dict(sorted(out.items(), key=lambda item: (item[0] is None, str(item[0]))))


def _counts(values: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return _add_counts(out, {})


@dataclass(frozen=True, kw_only=True)
class TrafficSums:
    """A window's traffic: events, requests, latency, request types, fingerprints, rejections."""

    n: int = 0
    n_requests: int = 0
    #: Request latency in whole microseconds, one value per request.
    latency_us: LogHistogram = field(default_factory=LogHistogram)
    request_types: Mapping[str, int] = field(default_factory=dict)
    fingerprints: Mapping[str, int] = field(default_factory=dict)
    rejections: Mapping[str, int] = field(default_factory=dict)
    #: Events the evasion score scored, and those it flagged (a version without an
    #: adversarial detector scores none).
    evasion_scored: int = 0
    evasion_flagged: int = 0

    def __post_init__(self) -> None:
        freeze_fields(self, "request_types", "fingerprints", "rejections")
        if not 0 <= self.evasion_flagged <= self.evasion_scored <= self.n:
            raise InvalidInput("flagged events are among the scored ones, and those among the window's")

    @classmethod
    def from_columns(
        cls, *, row_indices: Sequence[int], request_latency_ms: Sequence[float], request_types: Sequence[str],
        fingerprint_ids: Sequence[str], evasion_flags: Sequence[Any] | None = None,
    ) -> TrafficSums:
        """The sums of a batch of events, one entry per event (``request_latency_ms``: the whole
        request's, NaN when it was not measured; ``evasion_flags``: the evasion score's flag, None
        where an event was not scored). A served request is counted at its row 0, so that
        batches merge exactly however a request's rows fall; an ingested event is a prediction
        made elsewhere, counted with its own latency (a file's row index is its place in the
        file, not in a request)."""
        n = len(row_indices)
        if not len(request_latency_ms) == len(request_types) == len(fingerprint_ids) == n:
            raise InvalidInput("every column must have one entry per event")
        scored, flagged = _evasion_counts(evasion_flags, n)
        first = (np.asarray(row_indices, dtype=np.int64) == 0) | (np.asarray(request_types, dtype=object) == "ingested")
        latency = np.asarray(request_latency_ms, dtype=np.float64)[first]
        measured = np.isfinite(latency)
        if (latency[measured] < 0).any():
            raise InvalidInput("a latency cannot be negative")
        return cls(
            n=n, n_requests=int(first.sum()),
            latency_us=LogHistogram.from_values(np.rint(latency[measured] * 1000).astype(np.int64),
                                                missing=int((~measured).sum())),
            request_types=_counts(request_types), fingerprints=_counts(fingerprint_ids),
            evasion_scored=scored, evasion_flagged=flagged,
        )

    @classmethod
    def from_events(cls, events: Sequence[Any]) -> TrafficSums:
        """The sums of :class:`~loopwatch.records.events.PredictionEvent` rows."""
        return cls.from_columns(
            row_indices=[e.row_index for e in events], request_latency_ms=[e.runtime_ms for e in events],
            request_types=[e.request_type for e in events], fingerprint_ids=[e.fingerprint_id for e in events],
            evasion_flags=[e.input_data_summary.get("adversarial") for e in events],
        )

    @classmethod
    def from_rejections(cls, reasons: Iterable[str]) -> TrafficSums:
        """Requests refused before the model, by reason (they are no events)."""
        return cls(rejections=_counts(reasons))

    def merge(self, other: TrafficSums, /) -> TrafficSums:
        return TrafficSums(
            n=self.n + other.n, n_requests=self.n_requests + other.n_requests,
            latency_us=self.latency_us.merge(other.latency_us),
            request_types=_add_counts(self.request_types, other.request_types),
            fingerprints=_add_counts(self.fingerprints, other.fingerprints),
            rejections=_add_counts(self.rejections, other.rejections),
            evasion_scored=self.evasion_scored + other.evasion_scored,
            evasion_flagged=self.evasion_flagged + other.evasion_flagged,
        )

    def latency_ms(self, q: float) -> Quantile:
        """The ``q`` quantile of request latency in milliseconds, with the range the exact one lies in."""
        bound = self.latency_us.quantile(q)
        return Quantile(q, bound.value / 1000, bound.low / 1000, bound.high / 1000)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_requests": self.n_requests, "latency_us": self.latency_us.to_dict(),
            "request_types": dict(self.request_types), "fingerprints": dict(self.fingerprints),
            "rejections": dict(self.rejections), "evasion_scored": self.evasion_scored,
            "evasion_flagged": self.evasion_flagged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficSums:
        return cls(
            n=int(data["n"]), n_requests=int(data["n_requests"]), latency_us=LogHistogram.from_dict(data["latency_us"]),
            request_types={str(k): int(v) for k, v in data["request_types"].items()},
            fingerprints={str(k): int(v) for k, v in data["fingerprints"].items()},
            rejections={str(k): int(v) for k, v in data["rejections"].items()},
            # summaries stored before the evasion counts were kept read as unscored
            evasion_scored=int(data.get("evasion_scored", 0)), evasion_flagged=int(data.get("evasion_flagged", 0)),
        )


def _evasion_counts(flags: Sequence[Any] | None, n: int) -> tuple[int, int]:
    """Events scored by the evasion score (a flag that is not None or NaN), and those flagged."""
    if flags is None:
        return 0, 0
    if len(flags) != n:
        raise InvalidInput("every column must have one entry per event")
    scored = [f for f in flags if f is not None and not (isinstance(f, float) and math.isnan(f))]
    return len(scored), sum(1 for f in scored if bool(f))


@dataclass(frozen=True, kw_only=True)
class ClientActivity:
    """One client's queries in a window, exactly: how many, when, and how near the boundary."""

    n: int
    first_seen_us: int
    last_seen_us: int
    #: Rows per bin of the gap between the two most probable classes (``MARGIN_STEP`` wide).
    margins: Mapping[int, int] = field(default_factory=dict)
    #: The client's queries the evasion score scored, and those it flagged: a client's excess
    #: of flags is tested on its own counts, which sampling would blur.
    evasion_scored: int = 0
    evasion_flagged: int = 0

    def __post_init__(self) -> None:
        freeze_fields(self, "margins")
        if not 0 <= self.evasion_flagged <= self.evasion_scored <= self.n:
            raise InvalidInput("a client's flagged queries are among its scored ones, and those among its queries")

    def merge(self, other: ClientActivity, /) -> ClientActivity:
        return ClientActivity(
            n=self.n + other.n, first_seen_us=min(self.first_seen_us, other.first_seen_us),
            last_seen_us=max(self.last_seen_us, other.last_seen_us), margins=_add_counts(self.margins, other.margins),
            evasion_scored=self.evasion_scored + other.evasion_scored,
            evasion_flagged=self.evasion_flagged + other.evasion_flagged,
        )

    def near_boundary_share(self, margin: float = 0.2) -> float | None:
        """The share of rows with probabilities whose two most probable classes are closer than
        ``margin`` (a multiple of ``MARGIN_STEP``, as the detector's default 0.2 is)."""
        steps = margin / MARGIN_STEP
        if abs(steps - round(steps)) > 1e-9:
            raise InvalidInput(f"the margin must be a multiple of {MARGIN_STEP}, got {margin}")
        total = sum(self.margins.values())
        if total == 0:
            return None
        return sum(c for b, c in self.margins.items() if b < round(steps)) / total


@dataclass(frozen=True, kw_only=True)
class ClientSums:
    """Per-client evidence for the extraction watch (see the module's notes)."""

    k: int = CLIENT_SAMPLE_K
    seed: int = 0
    activity: Mapping[str | None, ClientActivity] = field(default_factory=dict)
    samples: Mapping[str | None, RowSample] = field(default_factory=dict)

    def __post_init__(self) -> None:
        freeze_fields(self, "activity", "samples")

    @property
    def n(self) -> int:
        return sum(a.n for a in self.activity.values())

    @classmethod
    def from_columns(
        cls, *, client_ids: Sequence[str | None], request_ids: Sequence[str], row_indices: Sequence[int],
        timestamps_us: Sequence[int], request_types: Sequence[str], rows: pd.DataFrame | None,
        proba: np.ndarray | None = None, k: int = CLIENT_SAMPLE_K, seed: int = 0, max_clients: int | None = None,
        rows_per_client: int | None = None, evasion_flags: Sequence[Any] | None = None,
    ) -> ClientSums:
        """The evidence of a batch of events, one entry per event (``rows``: their features as a
        table, ``None`` when logged without data; ``proba``: their class probabilities, or ``None``;
        ``evasion_flags``: the evasion score's flag, None where an event was not scored).
        ``max_clients`` and ``rows_per_client``: the same as :meth:`pruned` after, without reading
        the rows it would drop."""
        n = len(client_ids)
        if not (len(request_ids) == len(row_indices) == len(timestamps_us) == len(request_types) == n) or (
            rows is not None and len(rows) != n) or (proba is not None and len(proba) != n) or (
                evasion_flags is not None and len(evasion_flags) != n):
            raise InvalidInput("every column must have one entry per event")
        queries = ~np.isin(np.asarray(request_types, dtype=object), NOT_CLIENT_QUERIES)
        times = np.asarray(timestamps_us, dtype=np.int64)
        margin_bin = None
        if proba is not None and np.ndim(proba) == 2 and np.shape(proba)[1] >= 2:
            top = np.sort(np.asarray(proba, dtype=np.float64), axis=1)[:, -2:]
            margin_bin = np.clip(((top[:, 1] - top[:, 0]) / MARGIN_STEP).astype(np.int64), 0, MARGIN_BINS - 1)
        at_query = [int(i) for i in np.flatnonzero(queries)]
        clients = [client_ids[i] for i in at_query]
        activity: dict[str | None, ClientActivity] = {}
        codes, uniques = factorize(clients)
        order = np.argsort(codes, kind="stable")
        starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]]) if len(order) else np.empty(0, int)
        positions = np.asarray(at_query, dtype=np.int64)
        for lo, hi in zip(starts, np.r_[starts[1:], len(order)].astype(np.int64)):
            at = positions[order[lo:hi]]
            client = uniques[codes[order[lo]]]
            margins = {} if margin_bin is None else _counts(margin_bin[at].tolist())
            scored, flagged = _evasion_counts(None if evasion_flags is None else [evasion_flags[i] for i in at],
                                              len(at))
            activity[client] = ClientActivity(n=len(at), first_seen_us=int(times[at].min()),
                                              last_seen_us=int(times[at].max()), margins=margins,
                                              evasion_scored=scored, evasion_flagged=flagged)
        sampled = at_query
        if max_clients is not None:
            keep = set(_top(activity, max_clients))
            sampled = [i for i in at_query if client_ids[i] in keep]
        values = None
        if rows is not None:
            values = rows.iloc[sampled].reset_index(drop=True)
            if proba is not None:
                values = values.assign(__probability=[list(map(float, p)) for p in np.asarray(proba)[sampled]])
        kept = k if rows_per_client is None else min(k, rows_per_client)
        grouped = samples_by_group([client_ids[i] for i in sampled], [request_ids[i] for i in sampled],
                                   [int(row_indices[i]) for i in sampled], values, k=kept, seed=seed)
        # the bottom-``kept`` rows below their threshold, with ``k`` the cap merges fill up to
        samples = {client: replace(sample, k=k) for client, sample in grouped.items()}
        return cls(k=k, seed=seed, activity=_sorted(activity), samples=_sorted(samples))  # type: ignore[arg-type]

    def merge(self, other: ClientSums, /) -> ClientSums:
        if (self.k, self.seed) != (other.k, other.seed):
            raise InvalidInput("client sums of different k or seed cannot merge")
        activity = dict(self.activity)
        for client, a in other.activity.items():
            activity[client] = activity[client].merge(a) if client in activity else a
        samples = dict(self.samples)
        for client, s in other.samples.items():
            samples[client] = samples[client].merge(s) if client in samples else s
        return ClientSums(k=self.k, seed=self.seed, activity=_sorted(activity), samples=_sorted(samples))

    def without_requests(self, request_ids: Iterable[str], deleted: ClientSums) -> ClientSums:
        """The part after ``logs delete`` removed ``request_ids``, whose events of this window
        ``deleted`` summarises (built from them with :meth:`from_columns` before they went): their
        counts and margins are taken off, and their rows leave every client's sample (which stays
        uniform, only smaller: :mod:`~loopwatch.summaries.reservoir`); the rows a sample covers drop
        by the client's deleted count (exact when it covered all the client's queries). A client's
        first and last query times stay as they were: an envelope of its remaining queries."""
        gone = list(request_ids)
        activity: dict[str | None, ClientActivity] = {}
        for client, a in self.activity.items():
            d = deleted.activity.get(client)
            if d is None:
                activity[client] = a
                continue
            if d.n > a.n or any(m > a.margins.get(b, 0) for b, m in d.margins.items()):
                raise InvalidInput(f"the deleted events of client {client!r} are not in this window")
            if a.n > d.n:
                margins = {b: m - d.margins.get(b, 0) for b, m in a.margins.items() if m > d.margins.get(b, 0)}
                activity[client] = ClientActivity(
                    n=a.n - d.n, first_seen_us=a.first_seen_us, last_seen_us=a.last_seen_us, margins=margins,
                    evasion_scored=a.evasion_scored - d.evasion_scored,
                    evasion_flagged=a.evasion_flagged - d.evasion_flagged)
        samples = {}
        for client, sample in self.samples.items():
            if client not in activity:
                continue
            d = deleted.activity.get(client)
            removed = 0 if d is None else min(d.n, sample.n)
            without_data = 0 if d is None else min(removed, sample.n_without_data,
                                                   deleted.samples[client].n_without_data
                                                   if client in deleted.samples else 0)
            samples[client] = sample.without_requests(gone, n_rows_removed=removed,
                                                      n_without_data_removed=without_data)
        return ClientSums(k=self.k, seed=self.seed, activity=activity, samples=samples)

    def pruned(self, max_clients: int = MAX_CLIENTS, rows_per_client: int = CLIENT_ROWS_STORED) -> ClientSums:
        """What a stored base window keeps: the same counts, with samples only for the
        ``max_clients`` clients with the most queries (ties by client id), each truncated to its
        ``rows_per_client`` rows of smallest priority (:meth:`RowSample.truncated
        <loopwatch.summaries.reservoir.RowSample.truncated>`)."""
        keep = set(_top(self.activity, max_clients))
        return ClientSums(k=self.k, seed=self.seed, activity=self.activity,
                          samples={c: s.truncated(rows_per_client) for c, s in self.samples.items() if c in keep})

    def queries(self, client: str | None) -> tuple[pd.DataFrame, np.ndarray | None, float]:
        """A client's sampled queries (features), their probabilities (``None`` when not logged),
        and the share of the client's queries the sample covers (0 when it has none)."""
        sample = self.samples.get(client)
        total = self.activity[client].n if client in self.activity else 0
        if sample is None or not sample.rows:
            return pd.DataFrame(), None, 0.0
        frame = pd.DataFrame(sample.values())
        proba = None
        if "__probability" in frame.columns:
            proba = np.asarray(frame.pop("__probability").tolist(), dtype=np.float64)
        return frame, proba, (sample.n - sample.n_without_data) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k, "seed": self.seed,
            "clients": [
                {"client_id": c, "n": a.n, "first_seen_us": a.first_seen_us, "last_seen_us": a.last_seen_us,
                 "margins": {str(b): m for b, m in a.margins.items()},
                 "evasion_scored": a.evasion_scored, "evasion_flagged": a.evasion_flagged,
                 "sample": self.samples[c].to_dict() if c in self.samples else None}
                for c, a in self.activity.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientSums:
        activity: dict[str | None, ClientActivity] = {}
        samples: dict[str | None, RowSample] = {}
        for entry in data["clients"]:
            client = entry["client_id"]
            activity[client] = ClientActivity(
                n=int(entry["n"]), first_seen_us=int(entry["first_seen_us"]), last_seen_us=int(entry["last_seen_us"]),
                margins={int(b): int(m) for b, m in entry["margins"].items()},
                # stored before per-client evasion counts were kept: read as unscored
                evasion_scored=int(entry.get("evasion_scored", 0)), evasion_flagged=int(entry.get("evasion_flagged", 0)))
            if entry["sample"] is not None:
                samples[client] = RowSample.from_dict(entry["sample"])
        return cls(k=int(data["k"]), seed=int(data["seed"]), activity=activity, samples=samples)


def _sorted(mapping: Mapping[str | None, Any]) -> dict[str | None, Any]:
    # one order everywhere, so equal parts compare and serialise alike (the anonymous client last)
    return {c: mapping[c] for c in sorted(mapping, key=lambda c: (c is None, str(c)))}



def _top(activity: Mapping[str | None, ClientActivity], count: int) -> list[str | None]:
    """The ``count`` clients with the most queries, ties by client id."""
    return sorted(activity, key=lambda c: (-activity[c].n, c is None, str(c)))[:count]
