"""What ``loopwatch summarize`` runs: a version's layout from the store, the job on an engine, the output.

The layouts (each numeric feature's bin edges, the categorical features) come from each
version's reference profile, as the monitors read it, so that the parts computed here are
on the same bins as the reference's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from loopwatch.engines.job import Key, PartsLayout, SummaryJob, feature_parts_job, run_in_process
from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.registry.registry import Registry
from loopwatch.stores.base import Store
from loopwatch.stores.parquet import export_schemas, layout_of

ENGINES = ("in-process", "spark")


def layouts_from_store(store: Store, registry: Registry, *, model_name: str | None = None) -> dict[tuple[str, int], PartsLayout]:
    """Each registered version's parts layout, from its reference profile (versions without one
    are left out: their events cannot be summarised on reference bins)."""
    schemas = export_schemas(store, model_name=model_name)
    columns = {name: column for name, column, _ in layout_of(schemas.values()).features if column != name}
    out: dict[tuple[str, int], PartsLayout] = {}
    for (name, version) in schemas:
        try:
            profile = registry.profile(name, version).univariate
        except NotFound:
            continue
        out[(name, version)] = PartsLayout(
            numeric={f: tuple(float(e) for e in edges) for f, edges in profile.edges.items()},
            categorical=tuple(profile.categorical),
            columns={f: c for f, c in columns.items() if f in profile.edges or f in profile.categorical},
        )
    if not out:
        raise NotFound("no registered model version with a reference profile to summarise against"
                       + ("" if model_name is None else f" for {echo(model_name)}"))
    return out


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


def write_parts_ndjson(parts: Mapping[Key, Any], out: IO[bytes]) -> int:
    """One line per part, sorted by key: ``{"key": [...], "part": {...}}``."""
    for key in sorted(parts, key=lambda k: tuple(str(v) for v in k)):
        out.write(json.dumps({"key": list(key), "part": parts[key].to_dict()}, separators=(",", ":")).encode()
                  + b"\n")
    return len(parts)


def summarise_to_file(store: Store, registry: Registry, path: str | Path, out: Path, *, engine: str,
                      master: str, conf: Mapping[str, str] | None = None, model_name: str | None = None) -> int:
    """Layouts from the store, the job on ``engine``, the merged parts written to ``out``."""
    job = feature_parts_job(layouts_from_store(store, registry, model_name=model_name))
    parts = summarise_export(job, path, engine=engine, master=master, conf=conf)
    with out.open("wb") as handle:
        return write_parts_ndjson(parts, handle)
