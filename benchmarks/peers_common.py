"""Shared harness of the peer runners (peers_evidently.py, peers_nannyml.py, peers_alibi.py).

Each runner runs in its peer's own virtualenv (benchmarks/.peers/<name>), so
this module uses only the standard library plus pandas and pyarrow, which
every peer venv has. It never imports loopwatch.

Protocol: ``python peers_X.py REFERENCE.parquet CURRENT.parquet [--variant V]
[--repeats 3] [--budget 600]`` prints exactly one JSON object on its last
stdout line:

* ``inside``: seconds per repeat for reading both Parquet files, preparing
  the reference (whatever the peer calls fitting) and computing the drift
  results for the current data;
* ``precomputed``: seconds per repeat with the reference already read and
  prepared before the timer, so only reading the current file and computing
  are timed (for a peer with no reusable reference object this is "reference
  already in memory");
* ``cpu_times``: process CPU seconds (all threads) of the same timed
  sections -- on a shared, loaded machine wall time also counts waiting for
  a core, CPU time does not;
* ``peak_rss_mib`` of the process (``ru_maxrss``), the peer's version, and a
  few statistics for a sanity check against loopwatch.

Repeats stop early when another one would overrun ``--budget`` seconds; the
JSON says how many ran.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable

import pyarrow.parquet as pq


def parse_args(variants: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("reference")
    parser.add_argument("current")
    parser.add_argument("--variant", default=variants[0], choices=variants)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for all repeats together")
    parser.add_argument("--modes", default="inside,precomputed")
    parser.add_argument("--progress", default="", help="file rewritten with the times so far after every run")
    return parser.parse_args()


def read_frame(path: str):  # -> pandas.DataFrame
    return pq.read_table(path).to_pandas()


def timed_repeats(run: Callable[[], Any], repeats: int) -> tuple[Any, list[float], list[float]]:
    """``run()`` ``repeats`` times: its last result, and the wall and process CPU seconds of each."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return out, walls, cpus


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(
    *,
    peer: str,
    version: str,
    args: argparse.Namespace,
    prepare: Callable[[str], Any],
    compute: Callable[[Any, str], Any],
    summarise: Callable[[Any], dict[str, Any]],
    notes: str = "",
) -> None:
    """Time ``compute(prepare(reference_path), current_path)``.

    ``prepare(path)`` reads the reference and builds whatever the peer keeps
    of it; ``compute(prepared, path)`` reads the current file and returns the
    peer's result, which ``summarise`` turns into JSON-friendly numbers
    (outside any timer).
    """
    modes = [m for m in args.modes.split(",") if m]
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    started = time.perf_counter()
    result: Any = None
    error = None
    try:
        for rep in range(args.repeats):
            for mode in modes:
                gc.collect()
                if mode == "inside":
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = compute(prepare(args.reference), args.current)
                    times[mode].append(time.perf_counter() - t0)
                    cpu[mode].append(time.process_time() - c0)
                else:
                    prepared = prepare(args.reference)
                    gc.collect()
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = compute(prepared, args.current)
                    times[mode].append(time.perf_counter() - t0)
                    cpu[mode].append(time.process_time() - c0)
                    del prepared
                if args.progress:
                    with open(args.progress, "w") as fh:
                        json.dump({"times": times, "cpu_times": cpu, "peak_rss_mib": peak_rss_mib()}, fh)
            spent = time.perf_counter() - started
            per_rep = spent / (rep + 1)
            if rep + 1 < args.repeats and spent + per_rep > args.budget:
                break
    except MemoryError as exc:  # pragma: no cover - reported, not raised
        error = f"MemoryError: {exc}"
    summary = summarise(result) if result is not None else {}
    out = {
        "peer": peer,
        "version": version,
        "variant": args.variant,
        "reference": os.path.abspath(args.reference),
        "current": os.path.abspath(args.current),
        "n_reference": pq.ParquetFile(args.reference).metadata.num_rows,
        "n_current": pq.ParquetFile(args.current).metadata.num_rows,
        "n_features": pq.ParquetFile(args.current).metadata.num_columns,
        "python": platform.python_version(),
        "times": times,
        "median": {m: (statistics.median(v) if v else None) for m, v in times.items()},
        "cpu_times": cpu,
        "cpu_median": {m: (statistics.median(v) if v else None) for m, v in cpu.items()},
        "loadavg_end": os.getloadavg(),
        "repeats_done": min((len(v) for v in times.values()), default=0),
        "peak_rss_mib": peak_rss_mib(),
        "summary": summary,
        "notes": notes,
        "error": error,
    }
    sys.stdout.flush()
    print(json.dumps(out, default=float))
