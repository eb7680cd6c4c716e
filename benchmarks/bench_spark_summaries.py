"""Window summaries from a Parquet export: the Spark engine on local[2] against the in-process engine.

N events x 20 features (10 numeric, 10 categorical) of a classifier over 24 hourly windows,
written directly as the partitioned export ``loopwatch logs --format parquet --partition-by
date`` writes (model_name=/date=, every event column: request ids, clients, fingerprints,
latencies, ``logged_at``, prediction and class probabilities). Logging 10M events through the
store first would take far longer than summarising them, and the engines read only the export.
Both engines build whole window summaries (features, outputs, traffic, clients, row sample)
with the same job; estimation sums are left out (no registry here to fit an estimator from).

Reports wall time and CPU time (the whole process tree: the driver, Spark's JVM and its
Python workers), rows/s, and rows per CPU-second: the per-core rate that prices a cluster,
which wall time on a shared machine does not.

    python benchmarks/bench_spark_summaries.py                   # 200k events
    python benchmarks/bench_spark_summaries.py --events 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopwatch.engines.job import VersionPlan, run_in_process, window_summaries_job
from loopwatch.engines.spark import run_spark, spark_session
from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.summaries.window import SummaryLayout

NUMERIC = tuple(f"x{i}" for i in range(10))
CATEGORICAL = tuple(f"c{i}" for i in range(10))
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
CHUNK = 1_000_000
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of a process and every live descendant, with the children each has reaped."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(v) for v in stats[pid][11:15])  # utime stime cutime cstime
        todo.extend(children.get(pid, []))
    return total / TICKS


def write_export(root: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logged = int(START.timestamp() * 1e6) + 86_400_000_000
    folder = root / "model_name=bench" / f"date={START.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        seconds = np.sort(rng.integers(0, 24 * 3600, m))
        p1 = rng.uniform(size=m)
        ids = np.arange(lo, lo + m)
        columns: dict[str, Any] = {
            "request_id": pa.array([f"req-{i // 10:09d}" for i in ids]),
            "row_index": pa.array(ids % 10, pa.int32()), "model_version": pa.array(np.ones(m, dtype=np.int32)),
            "timestamp": pa.array((int(START.timestamp()) + seconds) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "logged_at": pa.array(logged + ids, pa.timestamp("us", tz="UTC")),
            "runtime_ms": rng.gamma(2.0, 2.0, m), "row_runtime_ms": rng.gamma(2.0, 0.2, m),
            "request_type": pa.array(np.where(ids % 7 == 0, "batch", "api")),
            "client_id": pa.array([f"client-{c}" for c in rng.integers(0, 300, m)]),
            "fingerprint_id": pa.array(np.full(m, "f" * 16)), "replayed": pa.array(np.zeros(m, dtype=bool)),
            "prediction": pa.array((p1 > 0.5).astype(np.int64)),
            "probability_0": 1 - p1, "probability_1": p1,
        }
        for name in NUMERIC:
            columns[name] = rng.lognormal(size=m)
        for j, name in enumerate(CATEGORICAL):
            columns[name] = pa.array(rng.integers(0, 5 + 20 * j, m))
        pq.write_table(pa.table(columns), folder / f"part-{lo // CHUNK:05d}.parquet", row_group_size=100_000)


def job() -> Any:
    schema = FeatureSchema(
        features=(*(Feature(name=n, kind="numeric", nullable=True) for n in NUMERIC),
                  *(Feature(name=n, kind="categorical", category_type="integer") for n in CATEGORICAL)),
        target="y", task="classification", classes=(0, 1))
    edges = tuple(float(e) for e in np.quantile(np.random.default_rng(1).lognormal(size=10_000),
                                                np.arange(1, 10) / 10))
    layout = SummaryLayout(numeric={n: edges for n in NUMERIC}, categorical=CATEGORICAL, classes=("0", "1"),
                           output_edges={f"probability_{c}": tuple(np.arange(1, 10) / 10) for c in (0, 1)})
    return window_summaries_job({("bench", 1): VersionPlan(layout=layout, schema=schema)})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    cores = int(args.master.removeprefix("local[").removesuffix("]")) if args.master.startswith("local[") else 0
    summary_job = job()
    results: dict[str, Any] = {"events": args.events, "features": len(NUMERIC) + len(CATEGORICAL),
                               "master": args.master, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        t = time.perf_counter()
        write_export(root, args.events, args.seed)
        results["export_s"] = time.perf_counter() - t
        results["export_mb"] = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 1e6

        c, t = tree_cpu_seconds(), time.perf_counter()
        local = run_in_process(summary_job, root)
        results["in_process"] = {"wall_s": time.perf_counter() - t, "cpu_s": tree_cpu_seconds() - c}

        t = time.perf_counter()
        session = spark_session(master=args.master)
        session.range(1).count()
        results["spark_startup_s"] = time.perf_counter() - t
        c, t = tree_cpu_seconds(), time.perf_counter()
        remote = run_spark(summary_job, root, session=session)
        results["spark"] = {"wall_s": time.perf_counter() - t, "cpu_s": tree_cpu_seconds() - c}
        session.stop()
    assert local.keys() == remote.keys()
    windows = [k for k in local if k[0] == "window"]
    assert sum(local[k].n for k in windows) == sum(remote[k].n for k in windows) == args.events
    results["windows"] = len(windows)
    results["load_after"] = os.getloadavg()
    n = args.events
    print(f"events: {n:,} x {results['features']} features, {len(windows)} windows; export "
          f"{results['export_mb']:.0f} MB written in {results['export_s']:.0f} s; load {results['load_before']}")
    for name, label, n_cores in (("in_process", "in-process", 1), ("spark", f"spark {args.master}", cores)):
        r = results[name]
        r["rows_per_s"] = n / r["wall_s"]
        r["rows_per_cpu_s"] = n / r["cpu_s"]
        r["rows_per_s_per_core"] = n / r["wall_s"] / n_cores if n_cores else None
        print(f"{label:16} {r['wall_s']:8.1f} s wall {r['cpu_s']:8.1f} s CPU {r['rows_per_s']:10,.0f} rows/s "
              f"{r['rows_per_cpu_s']:10,.0f} rows/CPU-s")
    print(f"spark start-up (apart): {results['spark_startup_s']:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
