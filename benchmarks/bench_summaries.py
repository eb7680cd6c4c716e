"""Window summaries: how fast the summariser follows the log, and what it costs ingestion.

    .venv/bin/python benchmarks/bench_summaries.py                 # 1M events x 20 features
    .venv/bin/python benchmarks/bench_summaries.py --rows 200000   # a shorter run
    .venv/bin/python benchmarks/bench_summaries.py --compare ../older-worktree   # before and after, one run
    .venv/bin/python benchmarks/bench_summaries.py --postgres      # into a throwaway PostgreSQL

The events are those of ``bench_ingest_events.py``: a Parquet file of 20 features (14
numeric, 6 integer-coded categorical, from New York's 2013 departures and the 1980 census
mothers) with a prediction, class probabilities and an event time one second apart (so 1M
events fill 278 hourly windows), logged to a classifier trained on the same columns. Into
SQLite at ``synchronous=FULL`` (WAL), each cell on a fresh database, one run each:

``ingest, summaries off``
    ``loopwatch ingest FILE`` with ``LOOPWATCH_SUMMARIES_ENABLED=0``: the log alone.
``summarize``
    ``loopwatch summarize ext`` on that database: the summariser reading every event from
    the store and building, merging and writing the windows (features, outputs, traffic,
    clients, row sample, CBPE sums). Timed from process start to exit.
``ingest, summaries on``
    ``loopwatch ingest FILE`` as it runs by default: the file logged, then summarised by the
    same command before it exits. The rate is of the whole command.

The CPU seconds are the command's own (a PostgreSQL server's are not counted). ``on / off``
is the ratio of the two ingest cells: what turning summaries on costs a bulk load.

Writes ``benchmarks/results/summaries[_postgres][_compare].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, RESULTS_DIR, WORK_DIR, machine_facts, now_iso, remove_sqlite, write_json  # noqa: E402
from bench_ingest_events import MAPPING, env_for, predictions_file, train_model  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any] | list[Any], float, float]:
    """Run ``loopwatch ARGS``; its JSON output, wall seconds and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args], env=env, capture_output=True, text=True,
                          timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout), seconds, cpu


def fresh(folder: Path, pg: Any = None, tag: str = "") -> tuple[Path, str]:
    home = folder / f"home{tag}"
    home.mkdir(parents=True, exist_ok=True)
    if pg is None:
        database = str(folder / f"summaries{tag}.db")
        remove_sqlite(Path(database))
    else:
        database = pg.create_database(f"summaries{tag}".replace("-", "_"))
    train_model(home, database)
    return home, database


def cells_of(checkout: Path, path: Path, folder: Path, pg: Any = None, tag: str = "") -> dict[str, Any]:
    """The three cells (module notes) with ``checkout``'s loopwatch, each on a fresh database."""
    ingest = ["ingest", str(path), "-m", "ext", *MAPPING]
    # PostgreSQL's runs stay summary_settle_seconds behind the newest commit (concurrent writers
    # may commit out of order); a bulk load has no other writer, and ingest's own run must see it
    src = {"PYTHONPATH": str(checkout / "src"), "LOOPWATCH_SUMMARY_SETTLE_SECONDS": "0"}
    cells: dict[str, Any] = {}
    home, database = fresh(folder, pg, f"{tag}a")
    env = {**env_for(home, database), **src}
    report, seconds, cpu = timed(ingest, {**env, "LOOPWATCH_SUMMARIES_ENABLED": "0"})
    assert isinstance(report, dict)
    cells["ingest, summaries off"] = {"rows": report["accepted"], "seconds": seconds, "cpu_seconds": cpu,
                                      "rows_per_second": report["accepted"] / seconds,
                                      "rows_per_cpu_second": report["accepted"] / cpu}
    runs, seconds, cpu = timed(["summarize", "ext"], {**env, "LOOPWATCH_SUMMARIES_ENABLED": "1"})
    assert isinstance(runs, list)
    events = runs[0]["events"]
    assert events == cells["ingest, summaries off"]["rows"], runs
    cells["summarize"] = {"rows": events, "windows": runs[0]["windows"], "seconds": seconds, "cpu_seconds": cpu,
                          "rows_per_second": events / seconds, "rows_per_cpu_second": events / cpu}
    if pg is None:
        cells["summarize"]["database_bytes"] = os.path.getsize(database)
    home, database = fresh(folder, pg, f"{tag}b")
    report, seconds, cpu = timed(ingest, {**env_for(home, database), **src, "LOOPWATCH_SUMMARIES_ENABLED": "1"})
    assert isinstance(report, dict) and report["summaries"]["events"] == report["accepted"]
    cells["ingest, summaries on"] = {"rows": report["accepted"], "seconds": seconds, "cpu_seconds": cpu,
                                     "rows_per_second": report["accepted"] / seconds,
                                     "rows_per_cpu_second": report["accepted"] / cpu,
                                     "log_rows_per_second": report["rows_per_second"],
                                     "summarised": report["summaries"]["events"]}
    off, on = cells["ingest, summaries off"], cells["ingest, summaries on"]
    cells["on / off"] = {"cpu": on["cpu_seconds"] / off["cpu_seconds"], "seconds": on["seconds"] / off["seconds"]}
    for name, cell in cells.items():
        if "rows" in cell:
            print(f"{tag or 'this':8s} {name:24s} {cell['rows']:>9,} rows  {cell['seconds']:7.1f} s  "
                  f"{cell['rows_per_second']:>9,.0f} rows/s  (cpu {cell['cpu_seconds']:.1f} s, "
                  f"{cell['rows_per_cpu_second']:,.0f} rows per cpu s)", flush=True)
    print(f"{tag or 'this':8s} on / off: cpu x{cells['on / off']['cpu']:.2f}, wall x{cells['on / off']['seconds']:.2f}",
          flush=True)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--compare", type=Path, default=None, metavar="CHECKOUT",
                        help="also measure another checkout's loopwatch (e.g. a worktree of an older commit), "
                             "its cells run before this checkout's")
    parser.add_argument("--postgres", action="store_true",
                        help="into a throwaway PostgreSQL (fsync on) instead of SQLite")
    args = parser.parse_args()
    folder = WORK_DIR / "summaries"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events_{args.rows}.parquet"
    if not path.exists():
        predictions_file(path, args.rows)
    pg = None
    if args.postgres:
        sys.path.insert(0, str(REPO / "tests"))
        from pgserver import ThrowawayPostgres  # type: ignore[import-not-found]

        pg = ThrowawayPostgres("loopwatch_bench", settings={"fsync": "on", "synchronous_commit": "on",
                                                            "full_page_writes": "on"}, tmp_parent=folder)
        pg.start()
    started = now_iso()
    checkouts: dict[str, Any] = {}
    try:
        if args.compare is not None:
            checkouts["compared"] = {"checkout": str(args.compare.resolve()),
                                     "cells": cells_of(args.compare.resolve(), path, folder, pg, "before")}
        checkouts["this"] = {"checkout": str(REPO), "cells": cells_of(REPO, path, folder, pg, "")}
    finally:
        if pg is not None:
            pg.stop()
    name = "summaries" + ("_postgres" if args.postgres else "") + ("_compare" if args.compare else "")
    write_json(RESULTS_DIR / f"{name}.json", {
        "started": started, "finished": now_iso(), "machine": machine_facts(), "rows": args.rows, "features": 20,
        "backend": "PostgreSQL" if args.postgres else "SQLite FULL", "checkouts": checkouts,
    })


if __name__ == "__main__":
    main()
