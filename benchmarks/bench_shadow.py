"""Shadow scoring and the caller: predict with no candidate vs with a candidate being shadowed.

    .venv/bin/python benchmarks/bench_shadow.py            # 3 runs x 10 s per cell and side
    .venv/bin/python benchmarks/bench_shadow.py --quick    # 1 run x 3 s per cell, a smoke test

What it does:

1. trains the demo's churn model (simulator, 5,000 rows, the default logistic
   regression) as v1 into a template database, as ``bench_predict.py`` does; a
   second template adds v2, a random forest of ``--trees`` trees (100 by
   default) trained on the same rows, under the ``candidate`` alias: a heavier
   model, so that the shadow work is visible;
2. starts two ``loopwatch serve`` processes side by side, one worker each,
   durable logging on (synchronous=FULL), on copies of the two templates:
   ``none`` (v1 only: predict answers and logs, nothing else) and
   ``candidate`` (v1 answers; every stored request is then queued for v2 in the
   service's shadow thread and logged as request type ``shadow``);
3. drives each with ``wrk`` and ``predict.lua`` (``-t2 -c32``, a fixed body of
   1 or 100 rows, a unique request id per request); the two sides alternate
   and the order flips every run;
4. after every run of the candidate side, waits until the shadow thread has
   caught up (no new shadow request for 2 s, or every request shadowed), then
   counts from the database: served requests, shadow requests and events
   (fewer shadow requests than served ones = shadow work dropped: the queue of
   1,000 requests was full), how long after its request each shadow was
   committed (the shadow's lag), and the two models' own request runtimes;
5. writes ``benchmarks/results/shadow.json``.

What "never slows the caller" means here: the request path never waits for
shadow work (the answer is sent once the request's own events are committed;
the shadow is queued after that, and dropped when the queue is full). It does
not mean the shadow costs nothing: on a machine of two cores, shared with wrk,
the shadow thread's CPU time is taken from the same cores (and the same
interpreter lock) as the request path, so throughput falls by about the
candidate's share of the work. The benchmark reports both.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    Service,
    machine_facts,
    median,
    now_iso,
    write_json,
)
from bench_predict import (  # noqa: E402
    MODEL,
    check_one_request,
    copy_database,
    ensure_wrk,
    run_wrk,
    train_template,
    write_bodies,
)

SIDES = ("none", "candidate")
SHADOW_SUFFIX = ":shadow"
#: The shadow thread has caught up when no shadow request was committed for this long.
SETTLE_S = 2.0


def add_candidate(template: Path, target: Path, workdir: Path, *, trees: int) -> str:
    """``target``: ``template`` plus v2, a random forest of ``trees`` trees, as the candidate."""
    from loopwatch.config import Settings
    from loopwatch.simulate import TARGET, ChurnScenario
    from loopwatch.application.workspace import Workspace

    copy_database(template, target)
    frame = ChurnScenario(seed=1).training_data(n=5000)
    with Workspace(Settings.from_env({}, home=workdir, database=str(target))) as ws:
        version = ws.train(MODEL, frame, target=TARGET, estimator="random_forest", alias="candidate",
                           estimator_params={"n_estimators": trees})
        aliases = ws.store.get_aliases(MODEL)
    if aliases != {"production": 1, "candidate": version.version}:
        raise SystemExit(f"unexpected aliases {aliases}")
    return f"v{version.version} {version.estimator} ({trees} trees)"


def _range(prefix: str) -> tuple[str, str]:
    return f"{prefix}-", f"{prefix}."  # '.' sorts right after '-'


def _by_type(conn: sqlite3.Connection, prefix: str) -> dict[str, tuple[int, int]]:
    """request type -> (events, requests) of one run (a range scan of the primary key)."""
    lo, hi = _range(prefix)
    return {
        kind: (int(n_events), int(n_requests))
        for kind, n_events, n_requests in conn.execute(
            "SELECT request_type, COUNT(*), COUNT(DISTINCT request_id) FROM events "
            "WHERE request_id >= ? AND request_id < ? GROUP BY request_type",
            (lo, hi),
        )
    }


def _read(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)


def shadow_counts(database: Path, prefix: str) -> dict[str, Any]:
    """Served and shadow requests and events of one run, and the shadow's lag and runtimes."""
    lo, hi = _range(prefix)
    conn = _read(database)
    try:
        by_type = _by_type(conn, prefix)
        # row 0 of each shadow against row 0 of its request (found by primary key):
        # how long after its request the shadow was committed, and both runtimes
        pairs = conn.execute(
            "SELECT s.logged_at - e.logged_at, e.runtime_ms, s.runtime_ms FROM events s "
            "JOIN events e ON e.request_id = substr(s.request_id, 1, length(s.request_id) - ?) "
            "AND e.row_index = 0 "
            "WHERE s.request_id >= ? AND s.request_id < ? AND s.row_index = 0 AND s.request_type = 'shadow'",
            (len(SHADOW_SUFFIX), lo, hi),
        ).fetchall()
    finally:
        conn.close()
    served_events, served = by_type.get("api", (0, 0))
    shadow_events, shadowed = by_type.get("shadow", (0, 0))
    lags = sorted(p[0] / 1000 for p in pairs)
    return {
        "served_requests": served,
        "served_events": served_events,
        "shadow_requests": shadowed,
        "shadow_events": shadow_events,
        "shadow_dropped": served - shadowed,
        "shadowed_share": round(shadowed / served, 4) if served else None,
        "shadow_lag_ms_p50": round(median(lags), 1) if lags else None,
        "shadow_lag_ms_max": round(lags[-1], 1) if lags else None,
        "served_runtime_ms_p50": round(median(p[1] for p in pairs), 3) if pairs else None,
        "shadow_runtime_ms_p50": round(median(p[2] for p in pairs), 3) if pairs else None,
    }


def wait_for_shadow(database: Path, prefix: str, *, limit_s: float) -> float:
    """Seconds until the shadow thread caught up with ``prefix``'s requests (see SETTLE_S)."""
    started = time.monotonic()
    last, last_change = -1, started
    while time.monotonic() - started < limit_s:
        conn = _read(database)
        try:
            by_type = _by_type(conn, prefix)
        finally:
            conn.close()
        served, shadowed = by_type.get("api", (0, 0))[1], by_type.get("shadow", (0, 0))[1]
        if shadowed != last:
            last, last_change = shadowed, time.monotonic()
        if served and shadowed >= served:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - last_change >= SETTLE_S:
            return round(last_change - started, 1)
        time.sleep(0.25)
    raise SystemExit(f"{prefix}: the shadow thread did not catch up in {limit_s:.0f} s")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rows in sorted({r["rows"] for r in runs}):
        entry: dict[str, Any] = {"rows": rows}
        for side in SIDES:
            rs = [r for r in runs if r["rows"] == rows and r["side"] == side]
            if not rs:
                continue
            cell: dict[str, Any] = {
                "runs": len(rs),
                "rps_median": round(median(r["rps"] for r in rs), 1),
                "rps_all": [r["rps"] for r in rs],
                "p50_ms_median": round(median(r["p50_ms"] for r in rs), 2),
                "p90_ms_median": round(median(r["p90_ms"] for r in rs), 2),
                "p99_ms_median": round(median(r["p99_ms"] for r in rs), 2),
                "server_cpu_ms_per_request_median": round(median(r["server_cpu_ms_per_request"] for r in rs), 3),
                "other_cpu_cores_median": round(median(r["other_cpu_cores"] for r in rs), 2),
            }
            if side == "candidate":
                shadow = [r["shadow"] for r in rs]
                cell.update(
                    served_requests=sum(s["served_requests"] for s in shadow),
                    shadow_requests=sum(s["shadow_requests"] for s in shadow),
                    shadow_events=sum(s["shadow_events"] for s in shadow),
                    shadow_dropped=sum(s["shadow_dropped"] for s in shadow),
                    shadow_lag_ms_p50_median=median(s["shadow_lag_ms_p50"] for s in shadow),
                    shadow_lag_ms_max=max((s["shadow_lag_ms_max"] or 0) for s in shadow),
                    served_runtime_ms_p50_median=median(s["served_runtime_ms_p50"] for s in shadow),
                    shadow_runtime_ms_p50_median=median(s["shadow_runtime_ms_p50"] for s in shadow),
                    drain_s_median=median(r["drain_s"] for r in rs),
                )
            entry[side] = cell
        if "none" in entry and "candidate" in entry:
            base, cand = entry["none"], entry["candidate"]
            entry["rps_change_pct"] = round((cand["rps_median"] / base["rps_median"] - 1) * 100, 1)
            entry["p50_change_pct"] = round((cand["p50_ms_median"] / base["p50_ms_median"] - 1) * 100, 1)
            entry["p99_change_pct"] = round((cand["p99_ms_median"] / base["p99_ms_median"] - 1) * 100, 1)
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="measured runs per cell and side (default 3)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load per server and body")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--rows", default="1,100", help="rows per request, comma separated")
    ap.add_argument("--trees", type=int, default=100, help="trees of the random-forest candidate (default 100)")
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s per cell: a smoke test")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "shadow.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 3.0, 1.0
    sizes = [int(x) for x in args.rows.split(",")]
    wrk = ensure_wrk()

    workdir = WORK_DIR / "shadow"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started, started_iso = time.time(), now_iso()
    facts = machine_facts()
    template, rows = train_template(workdir)
    candidate_template = workdir / "template-candidate.db"
    candidate_model = add_candidate(template, candidate_template, workdir, trees=args.trees)
    print(f"candidate: {candidate_model}", flush=True)
    bodies = write_bodies(workdir, rows, sizes)
    dbs = {"none": workdir / "none.db", "candidate": workdir / "candidate.db"}
    copy_database(template, dbs["none"])
    copy_database(candidate_template, dbs["candidate"])
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    services: dict[str, Service] = {}
    try:
        for side in SIDES:
            services[side] = Service(
                str(dbs[side]), workers=1, logging_enabled=True, home=workdir, log_path=workdir / f"{side}.log",
                extra_env={"LOOPWATCH_SCHEDULE_ENABLED": "0"},
            )
            services[side].start()
        for side, svc in services.items():
            for n, body in bodies.items():
                check_one_request(svc, body)
                run_wrk(wrk, svc, body, f"gentle{n}", threads=1, connections=1, seconds=2)
                run_wrk(wrk, svc, body, f"warm{n}", threads=args.threads, connections=args.connections,
                        seconds=args.warmup)
                if side == "candidate":  # no backlog of warm-up shadows may leak into a measured run
                    wait_for_shadow(dbs[side], f"warm{n}", limit_s=300)
        for run in range(1, args.runs + 1):
            for n, body in bodies.items():
                order = SIDES if (run + n) % 2 else SIDES[::-1]
                for side in order:
                    prefix = f"r{run}n{n}{side}"
                    result, _ = run_wrk(wrk, services[side], body, prefix, threads=args.threads,
                                        connections=args.connections, seconds=args.duration)
                    record: dict[str, Any] = {"rows": n, "side": side, "run": run, "at": now_iso(), **result}
                    if result.get("non_2xx") or result.get("socket_errors"):
                        failures.append(f"{prefix}: {result.get('non_2xx')} non-2xx, "
                                        f"{result.get('socket_errors')} socket errors")
                    if side == "candidate":
                        record["drain_s"] = wait_for_shadow(dbs[side], prefix, limit_s=300)
                        record["shadow"] = shadow_counts(dbs[side], prefix)
                        if record["shadow"]["shadow_events"] != record["shadow"]["shadow_requests"] * n:
                            failures.append(f"{prefix}: shadow events do not cover their requests {record['shadow']}")
                    else:
                        time.sleep(1.0)  # let requests in flight when wrk stopped commit
                        record["shadow"] = shadow_counts(dbs[side], prefix)
                        if record["shadow"]["shadow_requests"]:
                            failures.append(f"{prefix}: shadow events without a candidate")
                    runs.append(record)
                    s = record["shadow"]
                    print(
                        f"rows={n:>3} {side:>9} run {run}: {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms"
                        f"  p99 {result['p99_ms']:7.2f} ms  cpu {result['server_cpu_ms_per_request']} ms/req"
                        f"  other cores {result['other_cpu_cores']}"
                        + (f"  shadowed {s['shadow_requests']}/{s['served_requests']}"
                           f" lag p50 {s['shadow_lag_ms_p50']} ms  drain {record['drain_s']} s"
                           if side == "candidate" else ""),
                        flush=True,
                    )
    finally:
        for svc in services.values():
            svc.stop()

    data = {
        "benchmark": "shadow",
        "started_at": started_iso,
        "finished_at": now_iso(),
        "wall_seconds": round(time.time() - started, 1),
        "machine": facts,
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "params": {
            "production": f"{MODEL} v1 (ChurnScenario seed=1, 5000 rows, logistic_regression)",
            "candidate": candidate_model,
            "runs": args.runs, "duration_s": args.duration, "warmup_s": args.warmup,
            "wrk_threads": args.threads, "wrk_connections": args.connections, "rows": sizes, "workers": 1,
            "database": "SQLite (WAL, synchronous=FULL)", "shadow_queue": 1000,
        },  # fmt: skip
        "failures": failures,
        "summary": summarise(runs),
        "runs": runs,
    }
    write_json(args.out, data)
    for entry in data["summary"]:
        print(entry)
    if failures:
        print("\nFAILURES:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
