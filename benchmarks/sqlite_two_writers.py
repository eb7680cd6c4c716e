"""Two worker processes, one SQLite file: what does the write lock cost the group commit?

    .venv/bin/python benchmarks/sqlite_two_writers.py [--runs 3] [--seconds 3]

With ``--workers 2`` every uvicorn worker has its own GroupCommitWriter, and
both commit to the same SQLite file with ``BEGIN IMMEDIATE``. The one that
finds the lock taken waits in SQLite's busy handler, which sleeps in steps of
1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms, however soon the lock is
released. This script measures that outside the HTTP stack (SQLite FULL, the
writer at service defaults, threads submitting a request and waiting for its
commit, as request handlers do):

``1 process``
    one writer, 32 submitting threads.
``2 processes``
    two processes with a writer and 16 submitting threads each, same file.

The store itself orders writers across processes with an exclusive ``flock``
on a lock file beside the database (``stores/sqlite.py``), which this
benchmark first measured as a patch: a waiting writer sleeps in the kernel and
wakes as soon as the other one commits, instead of in SQLite's back-off.

Writes ``benchmarks/results/sqlite_two_writers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, WORK_DIR, fmt_num, markdown_table, median, now_iso, remove_sqlite, write_json  # noqa: E402

MODES = [("1 process", 1, False), ("2 processes", 2, False)]
TOTAL_THREADS = 32


def worker(db_path: str, threads: int, n_rows: int, seconds: float, flock: bool, start_at: float,
           out: Any) -> None:  # fmt: skip
    from bench_ingest import RequestFactory

    from loopwatch.stores import open_store
    from loopwatch.stores.writer import GroupCommitWriter

    store = open_store(f"sqlite:///{db_path}", sqlite_synchronous="FULL", migrate=False)
    factory = RequestFactory(n_rows, seed=n_rows)
    commits: list[float] = []
    writer = GroupCommitWriter(store, on_commit=lambda n, rows, s: commits.append(s)).start()
    stop = threading.Event()
    waits: list[list[float]] = [[] for _ in range(threads)]

    def submit(k: int) -> None:
        mine = waits[k]
        while not stop.is_set():
            request = factory.one()
            t0 = time.perf_counter()
            writer.write(request, timeout=120)
            mine.append(time.perf_counter() - t0)

    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    pool = [threading.Thread(target=submit, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join(120)
    cpu = time.process_time() - cpu0
    writer.close()
    store.close()
    all_waits = sorted(w for lst in waits for w in lst)
    out.put({
        "requests": len(all_waits), "cpu_s": cpu, "commits": len(commits),
        "commit_ms_median": median(commits) * 1000 if commits else None,
        "waits": all_waits,
    })  # fmt: skip


def run(mode: str, processes: int, flock: bool, n_rows: int, seconds: float, db: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # after every child has imported loopwatch
    procs = [
        ctx.Process(target=worker, args=(str(db), TOTAL_THREADS // processes, n_rows, seconds, flock, start_at, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    parts = [out.get(timeout=seconds + 180) for _ in procs]
    for p in procs:
        p.join(60)
    waits = sorted(w for part in parts for w in part["waits"])
    requests = sum(part["requests"] for part in parts)
    return {
        "mode": mode, "rows": n_rows,
        "requests_per_s": round(requests / seconds, 1),
        "rows_per_s": round(requests * n_rows / seconds, 1),
        "requests_per_commit": round(requests / max(1, sum(p["commits"] for p in parts)), 1),
        "wait_ms_p50": round(waits[len(waits) // 2] * 1000, 2) if waits else None,
        "wait_ms_p99": round(waits[int(len(waits) * 0.99)] * 1000, 2) if waits else None,
        "cpu_ms_per_request": round(sum(p["cpu_s"] for p in parts) * 1000 / requests, 3) if requests else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "sqlite_two_writers.json")
    args = ap.parse_args(argv)
    from loopwatch.stores import open_store

    workdir = WORK_DIR / "two_writers"
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.rows.split(",")]
    dbs = {}
    for mode, _, _ in MODES:
        for n in sizes:
            db = workdir / f"{mode.replace(' ', '_').replace('+', 'plus')}-{n}.db"
            remove_sqlite(db)
            open_store(f"sqlite:///{db}", sqlite_synchronous="FULL").close()
            dbs[(mode, n)] = db
    started = now_iso()
    runs = []
    for r in range(1, args.runs + 1):
        order = MODES[r - 1 :] + MODES[: r - 1]
        for n in sizes:
            for mode, processes, flock in order:
                result = run(mode, processes, flock, n, args.seconds, dbs[(mode, n)])
                result["run"] = r
                runs.append(result)
                print(f"{mode:<20} {n:>3} rows run {r}: {result['requests_per_s']:>8,.0f} req/s  "
                      f"wait p50 {result['wait_ms_p50']} ms p99 {result['wait_ms_p99']} ms  "
                      f"{result['requests_per_commit']} req/commit", flush=True)  # fmt: skip
    for path in workdir.glob("*"):
        path.unlink(missing_ok=True)
    summary = []
    for n in sizes:
        for mode, _, _ in MODES:
            rs = [x for x in runs if x["mode"] == mode and x["rows"] == n]
            summary.append({
                "mode": mode, "rows": n,
                **{f"{k}_median": round(median(x[k] for x in rs), 2)
                   for k in ("requests_per_s", "requests_per_commit", "wait_ms_p50", "wait_ms_p99", "cpu_ms_per_request")},
                "requests_per_s_all": [x["requests_per_s"] for x in rs],
            })  # fmt: skip
    write_json(args.out, {"benchmark": "sqlite_two_writers", "started_at": started, "finished_at": now_iso(),
                          "runs_per_mode": args.runs, "seconds_per_run": args.seconds,
                          "submitting_threads_total": TOTAL_THREADS, "summary": summary, "runs": runs})  # fmt: skip
    md = markdown_table(
        ["rows/request", "mode", "requests/s (median)", "requests per commit", "wait p50 ms", "wait p99 ms",
         "CPU ms/request", "requests/s, all runs"],
        [[e["rows"], e["mode"], fmt_num(e["requests_per_s_median"]), fmt_num(e["requests_per_commit_median"], 1),
          fmt_num(e["wait_ms_p50_median"], 1), fmt_num(e["wait_ms_p99_median"], 1),
          fmt_num(e["cpu_ms_per_request_median"], 3), ", ".join(fmt_num(v) for v in e["requests_per_s_all"])]
         for e in summary],
    )  # fmt: skip
    args.out.with_suffix(".md").write_text(md + "\n")
    print()
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
