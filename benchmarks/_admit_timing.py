"""Time ``KeyGuard.admit`` (one authenticated request's key check) in this process.

Run by ``bench_revocation.py`` once per side, with ``PYTHONPATH`` pointing at that side's
``src``, so that "before" and "after" are each measured with their own code:

    python benchmarks/_admit_timing.py DATABASE_URL CALLS REPEATS

Prints one JSON line: the wall-clock and the CPU microseconds (every thread of this process,
the thread pool's included) per call of each repeat, and their medians.
Standard library and loopwatch only.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from datetime import datetime, timezone


def main() -> None:
    url, calls, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from loopwatch.auth.manage import issue_key
    from loopwatch.service.auth import KeyGuard
    from loopwatch.stores import open_store

    store = open_store(url)
    _, token = issue_key(store, name="bench", scopes=["predict"], now=datetime.now(timezone.utc))
    guard = KeyGuard()

    async def run() -> tuple[list[float], list[float]]:
        for _ in range(200):  # the first call looks the key up; the rest is the steady state
            await guard.admit(token, store)
        wall, cpu = [], []
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(calls):
                await guard.admit(token, store)
            wall.append((time.perf_counter() - started) / calls * 1e6)
            cpu.append((time.process_time() - cpu_started) / calls * 1e6)
        return wall, cpu

    try:
        wall, cpu = asyncio.run(run())
    finally:
        store.close()
    print(json.dumps({"us_per_call": [round(v, 2) for v in wall], "cpu_us_per_call": [round(v, 2) for v in cpu],
                      "median_us": round(statistics.median(wall), 2),
                      "median_cpu_us": round(statistics.median(cpu), 2)}))


if __name__ == "__main__":
    main()
