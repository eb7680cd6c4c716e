"""What would make SQLite ingestion faster? Candidate fixes, measured on the side.

    .venv/bin/python benchmarks/ingest_variants.py [--runs 3] [--seconds 1.5]

Nothing in ``src/`` is edited: each variant patches the running process only
(and undoes it), then ``store.write_requests`` is timed exactly as in
``bench_ingest.py``, by wall clock and by the writing thread's CPU time (the
machine is shared, so CPU time is the steadier comparison) (SQLite, WAL, synchronous=FULL, fresh database per
variant, runs interleaved). Variants:

``baseline``
    the code as it is.
``fp-id-cached``
    ``Fingerprint.id`` computed once per fingerprint object
    (``functools.cached_property``) instead of hashing ``asdict()`` twice per
    request in ``SqlLogMixin._write_requests``.
``fast-rows``
    ``_event_rows`` that calls ``orjson.dumps`` directly (no wrapper call per
    value) and encodes the per-row input summary once when it is the common
    "nothing missing" value.
``cache-64m``
    ``PRAGMA cache_size=-65536`` (64 MiB page cache instead of SQLite's 2 MiB
    default) on each connection.
``all``
    the three together.
``no-autocheckpoint``
    (a measure, not a fix as it stands) ``PRAGMA wal_autocheckpoint=0``: the
    WAL is never copied back into the database by the committing thread, which
    shows what the checkpoints cost the writer; a real fix would checkpoint from
    another thread.
``no-version-index``
    (a measure, not a proposal) the ``events_by_version_time`` index dropped:
    what one secondary index costs.

Writes ``benchmarks/results/ingest_variants.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402

from _common import RESULTS_DIR, WORK_DIR, fmt_num, markdown_table, median, now_iso, remove_sqlite, write_json  # noqa: E402
from bench_ingest import RequestFactory, run_store  # noqa: E402

import loopwatch.stores.sql as sql_module  # noqa: E402
from loopwatch.records import LoggedRequest  # noqa: E402
from loopwatch.records.fingerprint import Fingerprint  # noqa: E402
from loopwatch.records.jsonutil import _OPTIONS, _default  # noqa: E402
from loopwatch.stores import open_store  # noqa: E402
from loopwatch.stores.base import to_micros  # noqa: E402
from loopwatch.stores.sqlite import SQLiteStore  # noqa: E402

VARIANTS = ["baseline", "fp-id-cached", "fast-rows", "cache-64m", "all", "no-autocheckpoint", "no-version-index"]
SHAPES = [("512 x 100 rows", 512, 100), ("32 x 100 rows", 32, 100), ("512 x 1 row", 512, 1)]


def fast_event_rows(request: LoggedRequest, fp_id: str, logged_at: int) -> list[tuple[Any, ...]]:
    """Same rows as ``loopwatch.stores.sql._event_rows``, fewer Python calls per row."""
    enc = orjson.dumps
    opt = _OPTIONS
    default = _default

    def j(value: Any) -> str:
        return enc(value, default=default, option=opt).decode()

    n = request.n_rows
    rid = request.request_id
    name = request.model_name
    version = request.model_version
    runtime = request.runtime_ms
    row_runtime = runtime / n
    base_ts = to_micros(request.received_at)
    stamps = request.timestamps
    probabilities = request.probabilities
    data = request.data
    rtype = request.request_type
    client = request.client_id
    replayed = int(request.replayed)
    common_summary: str | None = None
    summaries = []
    for s in request.row_summaries:
        if not s.get("missing") and s.get("n_missing") == 0 and len(s) == 3:
            if common_summary is None:
                common_summary = j(s)
            summaries.append(common_summary)
        else:
            summaries.append(j(s))
    preds = [j(p) for p in request.predictions]
    probs = [j(p) for p in probabilities] if probabilities is not None else [None] * n
    datas = [j(d) for d in data] if data is not None else [None] * n
    return [
        (
            rid, i, name, version,
            to_micros(stamps[i]) if stamps is not None else base_ts,
            logged_at, runtime, row_runtime, preds[i], probs[i], summaries[i], datas[i],
            rtype, client, fp_id, replayed,
        )  # fmt: skip
        for i in range(n)
    ]


@contextlib.contextmanager
def patched(variant: str) -> Iterator[None]:
    undo: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, attr: str, value: Any) -> None:
        undo.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    wanted = {variant} if variant != "all" else {"fp-id-cached", "fast-rows", "cache-64m"}
    if "fp-id-cached" in wanted:
        cached = functools.cached_property(Fingerprint.id.fget)  # type: ignore[attr-defined]
        cached.__set_name__(Fingerprint, "id")
        patch(Fingerprint, "id", cached)
    if "fast-rows" in wanted:
        patch(sql_module, "_event_rows", fast_event_rows)
    pragmas = []
    if "cache-64m" in wanted:
        pragmas.append("PRAGMA cache_size=-65536")
    if "no-autocheckpoint" in wanted:
        pragmas.append("PRAGMA wal_autocheckpoint=0")
    if pragmas:
        original = SQLiteStore._connect

        def connect(self: SQLiteStore) -> Any:
            conn = original(self)
            for pragma in pragmas:
                conn.execute(pragma)
            return conn

        patch(SQLiteStore, "_connect", connect)
    try:
        yield
    finally:
        for owner, attr, value in reversed(undo):
            setattr(owner, attr, value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "ingest_variants.json")
    args = ap.parse_args(argv)
    # the fast row builder must produce exactly the rows the store builds today
    for n in (1, 100):
        sample = RequestFactory(n, seed=3).one()
        if fast_event_rows(sample, "fp", 123) != sql_module._event_rows(sample, "fp", 123):
            raise SystemExit("fast_event_rows differs from loopwatch.stores.sql._event_rows")
    workdir = WORK_DIR / "variants"
    workdir.mkdir(parents=True, exist_ok=True)
    factories = {n: RequestFactory(n, seed=n) for n in {s[2] for s in SHAPES}}
    stores = {}
    for variant in VARIANTS:
        for shape, _, _ in SHAPES:
            path = workdir / f"{variant}-{shape.replace(' ', '')}.db"
            remove_sqlite(path)
            with patched(variant):
                store = open_store(f"sqlite:///{path}", sqlite_synchronous="FULL")
                if variant == "no-version-index":
                    store._execute("DROP INDEX events_by_version_time")  # type: ignore[attr-defined]
            stores[(variant, shape)] = store
    runs = []
    started = time.time()
    started_iso = now_iso()
    for run in range(1, args.runs + 1):
        order = VARIANTS[run - 1 :] + VARIANTS[: run - 1]
        for shape, per_batch, n_rows in SHAPES:
            for variant in order:
                with patched(variant):
                    result = run_store(stores[(variant, shape)], factories[n_rows], per_batch, args.seconds)
                runs.append({"variant": variant, "shape": shape, "run": run, **result})
                print(f"{variant:<17} {shape:<15} run {run}: {result['rows_per_s']:>10,.0f} rows/s "
                      f"{result['rows_per_cpu_s']:>10,.0f} rows per CPU-s", flush=True)
    for s in stores.values():
        s.close()
    for path in workdir.glob("*.db*"):
        path.unlink(missing_ok=True)
    summary = []
    for shape, _, _ in SHAPES:
        mine = [r for r in runs if r["shape"] == shape]
        base = median(r["rows_per_s"] for r in mine if r["variant"] == "baseline")
        base_cpu = median(r["rows_per_cpu_s"] for r in mine if r["variant"] == "baseline")
        for variant in VARIANTS:
            values = [r["rows_per_s"] for r in mine if r["variant"] == variant]
            cpu_values = [r["rows_per_cpu_s"] for r in mine if r["variant"] == variant]
            med, med_cpu = median(values), median(cpu_values)
            summary.append({
                "shape": shape, "variant": variant, "rows_per_s_median": round(med, 1),
                "rows_per_s_all": values, "vs_baseline_pct": round((med / base - 1) * 100, 1),
                "rows_per_cpu_s_median": round(med_cpu, 1), "rows_per_cpu_s_all": cpu_values,
                "cpu_vs_baseline_pct": round((med_cpu / base_cpu - 1) * 100, 1),
            })  # fmt: skip
    write_json(args.out, {"benchmark": "ingest_variants", "started_at": started_iso, "finished_at": now_iso(),
                          "wall_seconds": round(time.time() - started, 1), "runs_per_variant": args.runs,
                          "seconds_per_run": args.seconds, "summary": summary, "runs": runs})  # fmt: skip
    md = markdown_table(
        ["shape", "variant", "rows per CPU-s (median)", "vs baseline", "rows/s wall (median)", "vs baseline",
         "rows per CPU-s, all runs"],
        [[e["shape"], e["variant"], fmt_num(e["rows_per_cpu_s_median"]), f"{e['cpu_vs_baseline_pct']:+.1f}%",
          fmt_num(e["rows_per_s_median"]), f"{e['vs_baseline_pct']:+.1f}%",
          ", ".join(fmt_num(v) for v in e["rows_per_cpu_s_all"])] for e in summary],
    )  # fmt: skip
    args.out.with_suffix(".md").write_text(md + "\n")
    print()
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
