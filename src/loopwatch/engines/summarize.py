"""What ``loopwatch summarize --export`` runs: the versions' layouts from the store, the job on an
engine, the window summaries written into the store, where monitoring reads them.

Each version's layout (bin edges, categorical features, outputs) is the summariser's own
(:meth:`~loopwatch.application.summaries.Summariser.layout`, from the version's reference
profile), and so is its estimation hook (CBPE or DLE sums, from the version's fitted
estimator), so the windows written here are the ones the summariser would have built from
the same events.

**An export is a snapshot of the log.** Its windows are written with the model's watermark
set to when the store committed the newest exported event (its request's ``logged_at``), so that the summariser, following
the log afterwards, starts after them and counts none twice. That is right only if the
export holds every event the log committed through then, and if nothing was summarised
before, so :func:`write_export_summaries` refuses, with nothing written:

* a model that already has summaries (or a watermark), unless ``rebuild`` (which replaces
  them with the export's);
* an export that holds fewer of a model's events than the store's log committed through its
  newest ``logged_at`` (an export filtered by time or version, or without the shadow events
  the summariser counts): the summariser would never count the missing ones;
* events of a version with no reference profile (the summariser cannot summarise them either).

The log may hold fewer events than the export (retention expired the older ones): those
windows then hold history the log no longer has, which is what a backfill is for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopwatch.application.summaries import Summariser
from loopwatch.engines.job import ExportExtent, Key, SummaryJob, VersionPlan, run_in_process, window_summaries_job
from loopwatch.errors import Conflict, InvalidInput, NotFound, echo
from loopwatch.stores.base import Store, from_micros
from loopwatch.stores.parquet import export_schemas, layout_of
from loopwatch.summaries.window import WindowSummary

ENGINES = ("in-process", "spark")


def plans_from_store(summariser: Summariser, *, model_name: str | None = None,
                     estimate: bool = True) -> dict[tuple[str, int], VersionPlan]:
    """Each registered version's plan: the summariser's layout and (``estimate``) estimation
    hook. Versions without a reference profile are left out: their events cannot be summarised."""
    out: dict[tuple[str, int], VersionPlan] = {}
    for (name, version), schema in export_schemas(summariser.store, model_name=model_name).items():
        try:
            layout = summariser.layout(name, version)
        except NotFound:
            continue
        hook = summariser.estimator(name, version) if estimate else None
        out[(name, version)] = VersionPlan(layout=layout, schema=schema, estimator=hook)
    if not out:
        raise NotFound("no registered model version with a reference profile to summarise against"
                       + ("" if model_name is None else f" for {echo(model_name)}"))
    return out


def export_job(summariser: Summariser, *, model_name: str | None = None, estimate: bool = True) -> SummaryJob:
    """The window-summaries job for the store's registered versions (of ``model_name``, or all),
    reading the feature columns the store's export writes (``feature_<name>`` where a feature's
    name is taken by an event column)."""
    plans = plans_from_store(summariser, model_name=model_name, estimate=estimate)
    schemas = export_schemas(summariser.store, model_name=model_name)
    columns = {name: column for name, column, _ in layout_of(schemas.values()).features if column != name}
    return window_summaries_job(plans, columns=columns, models=None if model_name is None else (model_name,))


def summarise_export(job: SummaryJob, path: str | Path, *, engine: str, master: str = "local[*]",
                     conf: Mapping[str, str] | None = None) -> dict[Key, Any]:
    """Run ``job`` over the export at ``path`` on ``engine`` (``in-process`` or ``spark``)."""
    if engine == "in-process":
        return run_in_process(job, path)
    if engine != "spark":
        raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, got {echo(engine)}")
    from loopwatch.engines.spark import run_spark, spark_session

    session = spark_session(master=master, conf=conf)
    try:
        return run_spark(job, path, session=session)
    finally:
        session.stop()


@dataclass(frozen=True)
class ExportSummaries:
    """What was written of one model: the export's events, the windows, the watermark set, and
    whether the windows hold estimation sums and replaced earlier summaries."""

    model: str
    events: int
    windows: int
    logged_through: int | None
    estimation: bool
    rebuilt: bool

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "events": self.events, "windows": self.windows,
                "logged_through": None if self.logged_through is None else from_micros(self.logged_through).isoformat(),
                "estimation": self.estimation, "rebuilt": self.rebuilt}


def has_summaries(store: Store, name: str) -> bool:
    return name in store.summarised_models() or store.summary_watermark(name) is not None


def _watermark(store: Store, name: str, extent: ExportExtent, *, rebuild: bool) -> int:
    """The watermark the export's windows are written with (when the store committed its newest
    event's request, or that event's own stamp if the log no longer holds it), after the checks
    of the module's notes."""
    if extent.unplanned:
        versions = ", ".join(f"{v} ({n} events)" for v, n in sorted(extent.unplanned.items()))
        raise InvalidInput(f"the export holds events of {echo(name)} versions without a reference profile to "
                           f"summarise against: {versions}; set their reference, or export without them")
    if not rebuild and has_summaries(store, name):
        raise Conflict(f"{echo(name)} already has summaries: the export's events would be counted twice; "
                       "pass --rebuild to replace them with the export's")
    if extent.logged_through is None:
        raise InvalidInput("the export has no logged_at column: export the log with `loopwatch logs --format "
                           "parquet`, which writes it")
    committed = None if extent.last_request is None else store.request_logged_at(extent.last_request)
    through = extent.logged_through if committed is None else max(committed, extent.logged_through)
    logged = store.count_events_logged(name, through=through)
    if logged > extent.events:
        raise InvalidInput(
            f"the store's log holds {logged} events of {echo(name)} logged through "
            f"{from_micros(through).isoformat()}, the export only {extent.events}: it is not the whole "
            "log up to then (filtered by time or version, or without shadow events?), and the summariser, "
            "starting after it, would never count the rest; export the model's whole log")
    return through


def write_export_summaries(summariser: Summariser, values: Mapping[Key, Any], *, model_name: str | None = None,
                           rebuild: bool = False) -> list[ExportSummaries]:
    """Write an export's windows (``values``: what the job built) into the store, per model in
    one transaction with the model's watermark (see the module's notes for what is refused)."""
    store = summariser.store
    extents: dict[str, ExportExtent] = {}
    windows: dict[str, list[WindowSummary]] = defaultdict(list)
    for key, value in values.items():
        if key[0] == "extent":
            extents[str(key[1])] = value
        else:
            windows[str(key[1])].append(value)
    if not extents:
        raise InvalidInput("the export holds no events" + ("" if model_name is None else f" of {echo(model_name)}"))
    watermarks = {name: _watermark(store, name, extent, rebuild=rebuild) for name, extent in sorted(extents.items())}
    out = []
    for name, extent in sorted(extents.items()):
        mine = sorted(windows[name], key=lambda s: (s.start, s.version))
        replaced = rebuild and has_summaries(store, name)
        if replaced:
            for kind in ("hour", "day"):
                store.delete_window_summaries(name, kind=kind)
            store.set_summary_watermark(name, None)
        try:
            # nothing was summarised (checked above): a summariser that ran since makes this write nothing
            store.merge_window_summaries(name, mine, logged_through=watermarks[name], check_watermark=True,
                                         watermark=None)
        except Conflict as exc:
            raise Conflict(f"the summaries of {echo(name)} moved on while the export was summarised (a summariser "
                           "ran): nothing was written; run again with --rebuild") from exc
        summariser.apply_retention(name)
        out.append(ExportSummaries(model=name, events=extent.events, windows=len(mine),
                                   logged_through=watermarks[name],
                                   estimation=any(s.estimation is not None for s in mine), rebuilt=replaced))
    return out


def summarise_export_into_store(summariser: Summariser, path: str | Path, *, engine: str, master: str = "local[*]",
                                conf: Mapping[str, str] | None = None, model_name: str | None = None,
                                rebuild: bool = False) -> list[ExportSummaries]:
    """Summarise the export at ``path`` on ``engine`` and write its windows into the store."""
    store = summariser.store
    if model_name is not None:
        if not store.model_exists(model_name):
            raise NotFound(f"no model named {echo(model_name)}")
        if not rebuild and has_summaries(store, model_name):  # refused now rather than after the run
            raise Conflict(f"{echo(model_name)} already has summaries: the export's events would be counted twice; "
                           "pass --rebuild to replace them with the export's")
    job = export_job(summariser, model_name=model_name)
    values = summarise_export(job, path, engine=engine, master=master, conf=conf)
    return write_export_summaries(summariser, values, model_name=model_name, rebuild=rebuild)
