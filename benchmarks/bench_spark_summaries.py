"""Window summaries from a Parquet export: the Spark engine on local[2] against the in-process engine.

N events x 20 features (10 numeric, 10 categorical) over 24 hourly windows, written as the
partitioned export (model_name=/date=), summarised per (version, hour, feature) by both
engines with the same build and merge. Reports rows/s and rows/s per core (in-process: one
core; Spark: the master's cores), and Spark's start-up apart from its work.

    python benchmarks/bench_spark_summaries.py                 # 200k events: a few minutes here
    python benchmarks/bench_spark_summaries.py --events 10000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from loopwatch.engines.job import PartsLayout, feature_parts_job, run_in_process
from loopwatch.engines.spark import run_spark, spark_session

NUMERIC = tuple(f"x{i}" for i in range(10))
CATEGORICAL = tuple(f"c{i}" for i in range(10))
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def write_export(root: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        seconds = np.sort(rng.integers(0, 24 * 3600, m))
        frame = pd.DataFrame({"model_version": np.ones(m, dtype=np.int32),
                              "timestamp": pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s")})
        for name in NUMERIC:
            frame[name] = rng.lognormal(size=m)
        for j, name in enumerate(CATEGORICAL):
            frame[name] = rng.integers(0, 5 + 20 * j, m)
        folder = root / "model_name=bench" / f"date={START.date().isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / f"part-{lo // chunk:05d}.parquet", index=False, row_group_size=100_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    cores = int(args.master.removeprefix("local[").removesuffix("]")) if args.master.startswith("local[") else 0
    edges = tuple(float(e) for e in np.quantile(np.random.default_rng(1).lognormal(size=10_000), np.arange(1, 10) / 10))
    job = feature_parts_job({("bench", 1): PartsLayout(numeric={n: edges for n in NUMERIC}, categorical=CATEGORICAL)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        write_export(root, args.events, args.seed)
        t = time.perf_counter()
        local = run_in_process(job, root)
        in_process = time.perf_counter() - t
        t = time.perf_counter()
        session = spark_session(master=args.master)
        session.range(1).count()
        startup = time.perf_counter() - t
        t = time.perf_counter()
        remote = run_spark(job, root, session=session)
        spark = time.perf_counter() - t
        session.stop()
    assert set(local) == set(remote)
    n = args.events
    print(f"events: {n:,} x {len(NUMERIC) + len(CATEGORICAL)} features, {len(local)} parts")
    print(f"in-process: {in_process:8.1f} s  {n / in_process:12,.0f} rows/s  {n / in_process:12,.0f} rows/s/core")
    per_core = f"{n / spark / cores:12,.0f}" if cores else "           ?"
    print(f"spark {args.master}: {spark:8.1f} s  {n / spark:12,.0f} rows/s  {per_core} rows/s/core"
          f"  (start-up {startup:.1f} s apart)")


if __name__ == "__main__":
    main()
