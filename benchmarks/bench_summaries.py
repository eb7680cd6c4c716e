"""Window summaries: how fast the summariser follows the log, and what it costs ingestion.

    .venv/bin/python benchmarks/bench_summaries.py                 # 1M events x 20 features
    .venv/bin/python benchmarks/bench_summaries.py --rows 200000   # a shorter run

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

Writes ``benchmarks/results/summaries.json``.
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

from _common import RESULTS_DIR, WORK_DIR, machine_facts, now_iso, remove_sqlite, write_json  # noqa: E402
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


def fresh(folder: Path) -> tuple[Path, str]:
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    database = str(folder / "summaries.db")
    remove_sqlite(Path(database))
    train_model(home, database)
    return home, database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = WORK_DIR / "summaries"
    folder.mkdir(parents=True, exist_ok=True)
    path = predictions_file(folder / f"events_{args.rows}.parquet", args.rows)
    ingest = ["ingest", str(path), "-m", "ext", *MAPPING]
    cells: dict[str, Any] = {}

    home, database = fresh(folder)
    env = {**env_for(home, database), "LOOPWATCH_SUMMARIES_ENABLED": "1"}
    report, seconds, cpu = timed(ingest, {**env, "LOOPWATCH_SUMMARIES_ENABLED": "0"})
    assert isinstance(report, dict)
    cells["ingest, summaries off"] = {"rows": report["accepted"], "seconds": seconds, "cpu_seconds": cpu,
                                      "rows_per_second": report["accepted"] / seconds}
    runs, seconds, cpu = timed(["summarize", "ext"], env)
    assert isinstance(runs, list)
    events = runs[0]["events"]
    cells["summarize"] = {"rows": events, "windows": runs[0]["windows"], "seconds": seconds, "cpu_seconds": cpu,
                          "rows_per_second": events / seconds, "rows_per_cpu_second": events / cpu}
    size = os.path.getsize(database)

    home, database = fresh(folder)
    report, seconds, cpu = timed(ingest, {**env_for(home, database), "LOOPWATCH_SUMMARIES_ENABLED": "1"})
    assert isinstance(report, dict)
    cells["ingest, summaries on"] = {"rows": report["accepted"], "seconds": seconds, "cpu_seconds": cpu,
                                     "rows_per_second": report["accepted"] / seconds,
                                     "log_rows_per_second": report["rows_per_second"],
                                     "summarised": report["summaries"]["events"]}
    for name, cell in cells.items():
        print(f"{name:24s} {cell['rows']:>9,} rows  {cell['seconds']:7.1f} s  {cell['rows_per_second']:>9,.0f} rows/s"
              f"  (cpu {cell['cpu_seconds']:.1f} s)")
    write_json(RESULTS_DIR / "summaries.json", {
        "generated": now_iso(), "machine": machine_facts(), "rows": args.rows, "features": 20,
        "database_bytes_after_summaries": size, "cells": cells,
    })


if __name__ == "__main__":
    main()
