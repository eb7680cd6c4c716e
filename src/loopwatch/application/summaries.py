"""The summariser: follows each model's log from its watermark and keeps its window summaries.

Events are read in the order the store committed them (``logged_at``, which the store sets
at commit), not by event time: a backfilled or late event lands in whatever window its event
time names, closed or not, and merging adds it there (:class:`~loopwatch.summaries.window.
WindowSummary` merges are exact for counts, bins and sums). The watermark moves in the same
transaction as the summaries it covers, so a crash never counts an event twice or never.

It runs where events land, off the request path: a thread of ``loopwatch serve``
(:class:`SummariserThread`), after ``loopwatch ingest``, and from ``loopwatch summarize``.

* A rebaseline gives a version new bin edges (a new layout): that version's summaries are
  rebuilt from the log on the next run.
* ``logs delete`` removes a request: the windows it was in are rebuilt from the rest of the
  log, so their rows, counts and samples no longer hold it (:meth:`Summariser.forget_request`).
* A model set to ``--no-log-data`` keeps every count and sum, and no row sample.
* Retention (:meth:`Summariser.apply_retention`): hourly windows older than
  ``summary_hourly_days`` are rolled up into daily ones, kept ``summary_daily_days``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.application.collector import collector_paused
from loopwatch.application.label_join import join_labels
from loopwatch.application.monitoring.windows import columns_frame, events_frame
from loopwatch.config import Settings
from loopwatch.errors import Conflict, LoopwatchError
from loopwatch.records import EventColumns, ModelVersion, PredictionEvent
from loopwatch.registry import Registry
from loopwatch.stores.base import EventQuery, Store, from_micros, to_micros
from loopwatch.summaries.labels import LabelSums
from loopwatch.summaries.outcomes import ConfidenceSums, LossSums
from loopwatch.summaries.window import (
    BASE_WINDOW,
    EPOCH_MONDAY,
    HOUR_SAMPLE_ROWS,
    EstimatorHook,
    SummaryLayout,
    WindowSummary,
    merge_all,
    summarise_frame,
    window_start,
)

_log = logging.getLogger("loopwatch.summaries")


@dataclass(frozen=True)
class SummaryRun:
    """What one run of the summariser did for a model."""

    model: str
    events: int
    windows: int
    rebuilt_versions: tuple[int, ...]
    logged_through: int | None
    #: Windows whose label part was rebuilt from the join.
    labelled_windows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "events": self.events, "windows": self.windows,
                "rebuilt_versions": list(self.rebuilt_versions), "labelled_windows": self.labelled_windows,
                "logged_through": None if self.logged_through is None else
                from_micros(self.logged_through).isoformat()}


def layout_of(version: ModelVersion, profile: Any, *, log_data: bool) -> SummaryLayout:
    """A version's layout from its current reference profile (``drift.profile.ReferenceProfile``):
    the reference's bin edges for numeric features and outputs, its categorical features."""
    uni = profile.univariate
    outputs = profile.outputs
    output_edges = {} if outputs is None else {name: tuple(float(e) for e in edges)
                                               for name, edges in outputs.edges.items()}
    return SummaryLayout(
        numeric={name: tuple(float(e) for e in uni.edges[name]) for name in uni.numeric},
        categorical=tuple(uni.categorical), task=version.task,
        classes=tuple(str(c) for c in version.schema.classes), output_edges=output_edges, log_data=log_data,
    )


class Summariser:
    """Keeps window summaries of a store's models (see the module's notes). One per process is
    enough: runs for one model take turns on a lock."""

    def __init__(self, store: Store, registry: Registry, *, settings: Settings | None = None,
                 length: timedelta = BASE_WINDOW, batch_requests: int = 2000) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings or Settings()
        self.length = length
        self.batch_requests = batch_requests
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    @property
    def settle_seconds(self) -> float:
        """How far behind the newest commit a run stops. SQLite commits one transaction at a time
        and stamps ``logged_at`` under its write lock, so what is committed is all there is up to
        the newest ``logged_at``: no wait. PostgreSQL commits concurrently: a transaction stamped
        earlier may commit later, so runs stay ``summary_settle_seconds`` behind."""
        return self.settings.summary_settle_seconds if self.store.dialect == "postgresql" else 0.0

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks[name]

    # -- what a version's parts are built on --------------------------------------------------

    def layout(self, name: str, version: int) -> SummaryLayout:
        meta = self.store.get_model_version(name, version)
        log_data = self.store.get_model_settings(name).log_data
        return layout_of(meta, self.registry.profile(name, version), log_data=log_data)

    def estimator(self, name: str, version: int) -> EstimatorHook | None:
        """Builds a batch's CBPE or DLE sums with the version's fitted estimator (fitted once per
        reference, kept on the registry), or ``None`` when the reference holds no holdout."""
        from loopwatch.performance import fit_estimator, performance_reference_of

        meta = self.store.get_model_version(name, version)
        profile = self.registry.profile(name, version)
        reference = performance_reference_of(profile)
        if reference is None:
            return None
        classes = [str(c) for c in meta.schema.classes]
        rebaselines = [r for r in self.store.list_rebaselines(name) if r.model_version == version]
        profile_sha = rebaselines[-1].profile_sha256 if rebaselines else meta.profile_sha256
        try:
            estimator = self.registry.derived(
                ("summary-estimator", name, version, profile_sha),
                lambda: fit_estimator(reference, task=meta.task, classes=list(meta.schema.classes), seed=0))
        except LoopwatchError as exc:
            _log.info("no estimation sums for %s v%s: %s", name, version, exc)
            return None
        if meta.task == "classification":
            columns = [f"probability_{c}" for c in classes]

            def confidence(frame: pd.DataFrame) -> ConfidenceSums | None:
                if not all(c in frame.columns for c in columns):
                    return None
                proba = frame[columns].to_numpy(dtype=np.float64)
                if not np.isfinite(proba).all():
                    return None  # some events were logged without probabilities
                return ConfidenceSums.from_rows(proba, estimator.calibrate(proba), estimator.predict_indices(proba),
                                                positive=estimator.positive_index_)

            return confidence
        features = list(meta.schema.names)

        def losses(frame: pd.DataFrame) -> LossSums | None:
            if not features or not all(f in frame.columns for f in features) or not frame["__has_data"].all():
                return None  # DLE reads each row's features
            return LossSums.from_losses(*estimator.row_losses(frame[features], frame["prediction"].to_numpy()))

        return losses

    # -- following the log ---------------------------------------------------------------------

    def catch_up(self, name: str, *, now: datetime | None = None) -> SummaryRun:
        """Summarise what the model logged since its watermark (rebuilding first any version whose
        reference changed since its summaries were built)."""
        with self._lock(name):
            moment = now or datetime.now(timezone.utc)
            latest = self.store.latest_logged_at(name)
            through = to_micros(moment - timedelta(seconds=self.settle_seconds))
            if latest is not None:
                through = min(through, latest)
            rebuilt = self._rebuild_changed_layouts(name)
            after = self.store.summary_watermark(name)
            layouts: dict[int, SummaryLayout] = {}
            estimators: dict[int, EstimatorHook | None] = {}
            n_events = n_windows = 0
            touched: set[tuple[int, datetime]] = set()
            if latest is not None and (after is None or through > after):
                batches = self.store.iter_event_columns_logged(name, after=after, through=through,
                                                               batch_requests=self.batch_requests)
                while True:
                    with collector_paused():
                        batch = next(batches, None)
                        if batch is None:
                            break
                        events, reached = batch
                        built = self._summarise_columns(name, events, layouts, estimators)
                    try:
                        self.store.merge_window_summaries(name, list(built.values()), logged_through=reached,
                                                          check_watermark=True, watermark=after)
                    except Conflict:
                        _log.info("summaries of %s: another summariser is ahead; this run stops", name)
                        break
                    after = reached
                    n_events += len(events)
                    n_windows += len(built)
                    touched.update(built)
            labelled = self._refresh_labels(name, touched)
            return SummaryRun(name, n_events, n_windows, rebuilt, self.store.summary_watermark(name), labelled)

    # -- the label join ------------------------------------------------------------------------

    def _refresh_labels(self, name: str, touched: set[tuple[int, datetime]]) -> int:
        """Rebuild the label part of every window that labels (or corrections) arrived for since the
        label watermark, and of every window new events reached that already has labels: rebuilt
        from the join, so a label counted once stays counted once however often it is rebuilt."""
        wm = self.store.summary_watermark(name)
        if wm is None:
            return 0
        received = self.store.latest_label_received(name)
        keys = {key for key in touched
                if self.store.count_labels_between(name, start=key[1], end=key[1] + self.length)}
        if received is not None:
            after = self.store.label_watermark(name)
            if after is None or received > after:
                for version, start_us in self.store.labelled_windows(
                        name, received_after=after, received_through=received,
                        length_us=int(self.length / timedelta(microseconds=1)), origin_us=to_micros(EPOCH_MONDAY)):
                    keys.add((version, from_micros(start_us)))
        updated, updated_days = [], []
        days_seen: set[tuple[int, datetime]] = set()
        for version, start in sorted(keys):
            stored = self.store.window_summaries(name, start=start, end=start + self.length, version=version)
            if stored:
                labels = self.label_part(name, version, start, logged_through=wm)
                if labels != stored[0].labels:
                    updated.append(stored[0].with_labels(labels))
                continue
            day = window_start(start, timedelta(days=1))
            if (version, day) in days_seen:
                continue
            days_seen.add((version, day))
            rolled = self._rolled_up_labels(name, version, day, logged_through=wm)
            if rolled is not None:
                updated_days.append(rolled)
            # otherwise its events are not summarised yet: the run that summarises them joins them
        if updated:
            self.store.put_window_summaries(name, updated)
        if updated_days:
            self.store.put_window_summaries(name, updated_days, kind="day")
        if received is not None:
            self.store.set_label_watermark(name, received)
        return len(updated)

    def _rolled_up_labels(self, name: str, version: int, day: datetime, *, logged_through: int) -> WindowSummary | None:
        """A rolled-up day with its label join rebuilt, or ``None`` when there is no such day or
        its join did not change. The day holds the events of its hours that were rolled up, not
        of hours still stored as hours (events that arrived for it since): those hours' events
        are left out, as each hour's own label part joins them."""
        found = self.store.window_summaries(name, kind="day", start=day, end=day + timedelta(days=1),
                                            version=version)
        if not found:
            return None
        hours = {s.start for s in self.store.window_summaries(name, start=day, end=day + timedelta(days=1),
                                                              version=version)}
        labels = self.label_part(name, version, day, logged_through=logged_through, length=timedelta(days=1),
                                 skip_hours=hours)
        return None if labels == found[0].labels else found[0].with_labels(labels)

    def label_part(self, name: str, version: int, start: datetime, *, logged_through: int,
                   length: timedelta | None = None, skip_hours: set[datetime] | None = None) -> LabelSums | None:
        """The label join of one stored window (of ``length``, the base window's by default): its
        summarised events with their current labels, less the events of ``skip_hours``
        (:func:`~loopwatch.application.label_join.join_labels`)."""
        return join_labels(self.store, name, version, start, start + (length or self.length),
                           logged_through=logged_through, base_length=self.length, skip_hours=skip_hours)

    def _summarise(self, name: str, events: Sequence[PredictionEvent], layouts: dict[int, SummaryLayout],
                   estimators: dict[int, EstimatorHook | None]) -> dict[tuple[int, datetime], WindowSummary]:
        by_version: dict[int, list[PredictionEvent]] = defaultdict(list)
        for e in events:
            by_version[e.model_version].append(e)
        frames = {}
        for version, mine in sorted(by_version.items()):
            meta = self.store.get_model_version(name, version)
            frames[version] = events_frame(mine, meta.schema.classes, schema=meta.schema)
        return self._summarise_frames(name, frames, layouts, estimators)

    def _summarise_columns(self, name: str, events: EventColumns, layouts: dict[int, SummaryLayout],
                           estimators: dict[int, EstimatorHook | None]) -> dict[tuple[int, datetime], WindowSummary]:
        """:meth:`_summarise` of a batch read column by column: the same summaries, several times faster."""
        versions = sorted(set(events.model_version))
        frames = {}
        for version in versions:
            mine = events if len(versions) == 1 else \
                events.take([i for i, v in enumerate(events.model_version) if v == version])
            meta = self.store.get_model_version(name, version)
            frames[version] = columns_frame(mine, meta.schema.classes, schema=meta.schema)
        return self._summarise_frames(name, frames, layouts, estimators)

    def _summarise_frames(self, name: str, frames: dict[int, pd.DataFrame], layouts: dict[int, SummaryLayout],
                          estimators: dict[int, EstimatorHook | None]) -> dict[tuple[int, datetime], WindowSummary]:
        out: dict[tuple[int, datetime], WindowSummary] = {}
        for version, frame in sorted(frames.items()):
            if version not in layouts:
                layouts[version] = self.layout(name, version)
                estimators[version] = self.estimator(name, version)
            hook = estimators[version]
            # every summary built here is stored as a base window at once: build its sample as stored
            out.update(summarise_frame(frame, model=name, layouts={version: layouts[version]}, length=self.length,
                                       estimators=None if hook is None else {version: hook},
                                       sample_rows=HOUR_SAMPLE_ROWS))
        return out

    def _rebuild_changed_layouts(self, name: str) -> tuple[int, ...]:
        """Versions whose stored summaries were built on another layout (a rebaseline moved the
        reference's edges, or the model's log-data setting changed): rebuilt from the log."""
        wm = self.store.summary_watermark(name)
        if wm is None:
            return ()
        stored = self.store.summary_layouts(name)
        changed = []
        for version, ids in sorted(stored.items()):
            if ids != {self.layout(name, version).layout_id}:
                changed.append(version)
                self._rebuild_version(name, version, wm)
        return tuple(changed)

    def _rebuild_version(self, name: str, version: int, logged_through: int) -> None:
        self.store.delete_window_summaries(name, version=version)
        self.store.delete_window_summaries(name, kind="day", version=version)
        layouts: dict[int, SummaryLayout] = {}
        estimators: dict[int, EstimatorHook | None] = {}
        for events, _ in self.store.iter_event_columns_logged(name, after=None, through=logged_through,
                                                              batch_requests=self.batch_requests):
            mine = [i for i, v in enumerate(events.model_version) if v == version]
            if mine:
                built = self._summarise_columns(name, events.take(mine), layouts, estimators)
                self.store.merge_window_summaries(name, list(built.values()))
        labelled = []
        for window in self.store.window_summaries(name, version=version):
            if self.store.count_labels_between(name, start=window.start, end=window.end):
                labelled.append(window.with_labels(self.label_part(name, version, window.start,
                                                                   logged_through=logged_through)))
        if labelled:
            self.store.put_window_summaries(name, labelled)

    def rebuild(self, name: str, *, now: datetime | None = None) -> SummaryRun:
        """Forget the model's summaries and summarise its whole log again."""
        with self._lock(name):
            for kind in ("hour", "day"):
                self.store.delete_window_summaries(name, kind=kind)
            self.store.set_summary_watermark(name, None)  # the label watermark goes with it
        return self.catch_up(name, now=now)

    def forget_request(self, name: str, request_id: str, events: Iterable[PredictionEvent]) -> int:
        """After ``logs delete`` erased ``request_id`` (whose ``events`` were read before), rebuild
        the windows it was in from the rest of the log; returns the windows rebuilt."""
        with self._lock(name):
            wm = self.store.summary_watermark(name)
            if wm is None:
                return 0
            keys = sorted({(e.model_version, window_start(e.timestamp, self.length)) for e in events
                           if e.request_id == request_id})
            layouts: dict[int, SummaryLayout] = {}
            estimators: dict[int, EstimatorHook | None] = {}
            rebuilt = []
            rolled_up: set[tuple[int, datetime]] = set()
            for version, start in keys:
                old = self.store.window_summaries(name, start=start, end=start + self.length, version=version)
                if not old:  # not summarised yet, or rolled up into its day
                    rolled_up.add((version, window_start(start, timedelta(days=1))))
                    continue
                rest = self.store.iter_window_events(name, version=version, start=start, end=start + self.length,
                                                     logged_through=wm)
                built = self._summarise(name, rest, layouts, estimators).get((version, start))
                if built is None:  # the request was the window's only one
                    self.store.delete_window_summaries(name, since=start, before=start + self.length,
                                                       version=version)
                    continue
                rebuilt.append(built.with_labels(self.label_part(name, version, start, logged_through=wm)))
            if rebuilt:
                self.store.put_window_summaries(name, rebuilt)
            for version, day in sorted(rolled_up):
                self._forget_in_day(name, request_id, [e for e in events if e.request_id == request_id
                                                       and e.model_version == version], version=version, day=day)
            return len(keys)

    def _forget_in_day(self, name: str, request_id: str, events: Sequence[PredictionEvent], *, version: int,
                       day: datetime) -> None:
        """Take a deleted request's rows out of a rolled-up day: out of its row sample and its
        clients' samples, with their counts off the clients' activity. The day's other aggregates
        (counts, bins, sketches) keep the request's share: its hours, which the rest of the log
        could rebuild them from, are gone, and they hold no row."""
        found = self.store.window_summaries(name, kind="day", start=day, end=day + timedelta(days=1), version=version)
        mine = [e for e in events if day <= e.timestamp < day + timedelta(days=1)]
        if not found or not mine:
            return
        stored = found[0]
        deleted = merge_all(list(self._summarise(name, mine, {}, {}).values()))
        try:
            sample = stored.sample.without_requests(
                [request_id], n_rows_removed=len(mine), n_without_data_removed=sum(e.data is None for e in mine))
            clients = stored.clients.without_requests([request_id], deleted.clients)
        except LoopwatchError as exc:  # a day built before these events were logged: nothing of them to take out
            _log.warning("day %s of %s v%s kept as it was after deleting %s: %s", day.date(), name, version,
                         request_id, exc)
            return
        self.store.put_window_summaries(name, [replace(stored, sample=sample, clients=clients)], kind="day")

    # -- retention ----------------------------------------------------------------------------

    def apply_retention(self, name: str, *, now: datetime | None = None) -> dict[str, int]:
        """Roll hourly windows older than ``summary_hourly_days`` up into daily ones, and delete
        daily ones older than ``summary_daily_days``."""
        moment = now or datetime.now(timezone.utc)
        day = timedelta(days=1)
        hourly_cutoff = window_start(moment - timedelta(days=self.settings.summary_hourly_days), day)
        daily_cutoff = window_start(moment - timedelta(days=self.settings.summary_daily_days), day)
        with self._lock(name):
            old = self.store.window_summaries(name, end=hourly_cutoff)
            groups: dict[tuple[int, datetime], list[WindowSummary]] = defaultdict(list)
            for s in old:
                groups[(s.version, window_start(s.start, day))].append(s)
            days = []
            for (version, start), hours in sorted(groups.items()):
                merged = merge_all(hours)
                days.append(replace(merged, start=start, end=start + day))
            # the days written and the hours they hold deleted at once: a monitor reading
            # meanwhile sees every hour once (and an hour another process summarised after the
            # read above stays, to be rolled up next time)
            rolled = self.store.roll_up_hours(name, days, [(s.version, s.start) for s in old])
            expired = self.store.delete_window_summaries(name, kind="day", before=daily_cutoff)
        return {"rolled_up_hours": rolled, "days_written": len(days), "expired_days": expired}

    def run_all(self, *, now: datetime | None = None) -> list[SummaryRun]:
        """Catch every model up (a model whose versions cannot be summarised is logged and skipped)."""
        runs = []
        for info in self.store.list_models():
            if self.store.latest_logged_at(info.name) is None:
                continue  # nothing logged: nothing to summarise
            try:
                runs.append(self.catch_up(info.name, now=now))
                self.apply_retention(info.name, now=now)
            except LoopwatchError as exc:
                _log.warning("summaries of %s not updated: %s", info.name, exc)
        return runs


def request_events(store: Store, request_id: str) -> list[PredictionEvent]:
    """A request's events (read before ``logs delete`` erases them)."""
    return list(store.iter_events(EventQuery(request_id=request_id, limit=10_000)))


def delete_request(store: Store, summariser: Summariser | None, request_id: str) -> int:
    """``logs delete``: erase a request (its events, labels and the request) and rebuild the
    summary windows it was in, so that no summary keeps its rows. Returns the events deleted."""
    events = request_events(store, request_id) if summariser is not None else []
    deleted = store.delete_request(request_id)
    if deleted and summariser is not None:
        for name in sorted({e.model_name for e in events}):
            summariser.forget_request(name, request_id, events)
    return deleted


class SummariserThread:
    """Runs :meth:`Summariser.run_all` every ``summary_tick_seconds`` in a daemon thread of the
    service, off the request path (:meth:`nudge` wakes it sooner)."""

    def __init__(self, summariser: Summariser, *, tick_seconds: float) -> None:
        self.summariser = summariser
        self.tick = tick_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopwatch-summariser", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def nudge(self, *_: Any) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        # the first run waits a tick, so that starting the service stays light
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.summariser.run_all()
            except Exception:  # a broken run must not end the thread: the next tick tries again
                _log.exception("the summariser's run failed")

