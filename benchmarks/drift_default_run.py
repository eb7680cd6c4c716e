#!/usr/bin/env python
"""What a user's `loopwatch drift` costs, in process: `compare()` with its defaults and with
the outlier and multivariate families off, on two tables of 20 normal columns (5 shifted by
0.1 sd in the current one), reference and current of the same size, built in memory.

    .venv/bin/python benchmarks/drift_default_run.py [--sizes 100000,1000000] [--repeats 3] [--src DIR]

``--src`` runs another checkout's ``src`` (an earlier commit in a worktree) in the same way,
so a change is measured before and after in one session. CPU seconds (``process_time``) are
the measure on a shared machine; the median of the repeats is printed, each in a fresh
process so that nothing is cached.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "default": {},
    "no-outliers": {"outliers": False},
    "univariate": {"outliers": False, "multivariate": False},
}


def one_run(size: int, variant: str) -> tuple[float, float]:
    import numpy as np
    import pandas as pd

    from loopwatch.drift import compare

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(20)]
    reference = pd.DataFrame(rng.normal(size=(size, 20)), columns=columns)
    current = pd.DataFrame(rng.normal(size=(size, 20)), columns=columns)
    current.iloc[:, :5] += 0.1
    cpu, wall = time.process_time(), time.perf_counter()
    compare(reference, current, **VARIANTS[variant])
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cpu, wall = one_run(int(args.one[0]), args.one[1])
        print(f"{cpu} {wall}")
        return
    for size in (int(s) for s in args.sizes.split(",")):
        for variant in VARIANTS:
            runs = []
            for _ in range(args.repeats):
                done = subprocess.run([sys.executable, __file__, "--one", str(size), variant], check=True,
                                      capture_output=True, text=True, env={"PYTHONPATH": args.src})
                runs.append(tuple(float(v) for v in done.stdout.split()))
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            print(f"{size:>9,} {variant:<12} CPU {cpu:6.1f} s  wall {wall:6.1f} s  ({args.repeats} runs)")


if __name__ == "__main__":
    main()
