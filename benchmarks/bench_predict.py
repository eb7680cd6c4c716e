"""Predict throughput and latency: durable logging on vs off, 1-row and 100-row requests, 1 and 2 workers.

    .venv/bin/python benchmarks/bench_predict.py            # 4 runs x 10 s per cell and side
    .venv/bin/python benchmarks/bench_predict.py --quick    # 1 run x 4 s per cell, a smoke test

What it does:

1. trains the demo's churn model once (simulator, 5,000 rows) into a template
   SQLite database, and copies it to one database per server;
2. for each worker count, starts two ``loopwatch serve`` processes side by
   side, one with ``LOOPWATCH_LOGGING_ENABLED=1`` (the default: every request
   is committed, synchronous=FULL, before it is answered) and one with ``=0``;
3. drives them with ``wrk`` (closed loop, ``-t2 -c32`` by default) and
   ``predict.lua``, which POSTs a fixed body of 1 or 100 rows with a unique
   ``X-Request-ID`` per request; on/off runs alternate, and the order flips
   every run, so drift in machine load hits both sides;
4. checks every run: wrk saw no socket errors and no non-2xx answers, and
   after a logging-on run the database holds exactly ``rows`` events for each
   request of that run, and at least as many requests as wrk counted (wrk stops
   with up to ``connections`` requests in flight, which the service still
   commits, so stored - counted is in [0, connections]);
5. writes ``benchmarks/results/predict.json`` (every run and the medians) and
   ``benchmarks/results/predict.md`` (the table).

It also samples the CPU time of each server's process group over each run,
so "server CPU ms per request" can be compared as well as requests/s (the
load generator runs on the same two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CLK_TCK,
    processes_cpu_seconds,
    BENCH_DIR,
    RESULTS_DIR,
    WORK_DIR,
    Service,
    fmt_num,
    machine_facts,
    markdown_table,
    median,
    now_iso,
    parse_duration_ms,
    remove_sqlite,
    write_json,
)

MODEL = "churn"
LUA = BENCH_DIR / "predict.lua"


# --------------------------------------------------------------------------- setup


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing the Debian package", flush=True)
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    return found


def train_template(workdir: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Train the churn model into a template database; return it and 100 request rows."""
    from loopwatch.config import Settings
    from loopwatch.simulate import TARGET, ChurnScenario
    from loopwatch.application.workspace import Workspace

    template = workdir / "template.db"
    remove_sqlite(template)
    frame = ChurnScenario(seed=1).training_data(n=5000)
    settings = Settings.from_env({}, home=workdir, database=str(template))
    with Workspace(settings) as ws:
        version = ws.train(MODEL, frame, target=TARGET)
        print(f"trained {MODEL} v{version.version} ({version.estimator})", flush=True)
    rows_frame = ChurnScenario(seed=2).training_data(n=100).drop(columns=[TARGET])
    rows = json.loads(rows_frame.to_json(orient="records"))
    return template, rows


def copy_database(template: Path, target: Path) -> None:
    remove_sqlite(target)
    src = sqlite3.connect(template)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def write_bodies(workdir: Path, rows: list[dict[str, Any]], sizes: list[int]) -> dict[int, Path]:
    bodies = {}
    for n in sizes:
        if n > len(rows):
            rows = (rows * (n // len(rows) + 1))[:n]
        path = workdir / f"body-{n}.json"
        path.write_text(json.dumps({"rows": rows[:n]}))
        bodies[n] = path
    return bodies


def check_one_request(service: Service, body: Path) -> None:
    import urllib.request

    req = urllib.request.Request(
        f"{service.url}/v1/models/{MODEL}/predict",
        data=body.read_bytes(),
        headers={"Content-Type": "application/json", "X-Request-ID": f"probe-{time.time_ns()}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as answer:
        if answer.status != 200:
            raise SystemExit(f"probe request answered {answer.status}")
        json.loads(answer.read())


# --------------------------------------------------------------------------- measuring


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in the group (the uvicorn parent and its workers)."""
    return processes_cpu_seconds(lambda pid, fields: int(fields[2]) == pgid)


def system_busy_seconds() -> float:
    """CPU seconds spent busy on the whole machine (all cores) since boot, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_WRK_JSON = re.compile(r"^WRK_JSON (\{.*\})$", re.M)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles and errors from wrk's output (and predict.lua's line)."""
    out: dict[str, Any] = {}
    m = _WRK_JSON.search(output)
    if m:
        data = json.loads(m.group(1))
        seconds = data["duration_us"] / 1e6
        out.update(
            requests=data["requests"],
            seconds=round(seconds, 3),
            rps=round(data["requests"] / seconds, 1),
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            p999_ms=data["p999_us"] / 1000,
            mean_ms=round(data["lat_mean_us"] / 1000, 3),
            max_ms=data["lat_max_us"] / 1000,
            socket_errors=data["err_connect"] + data["err_read"] + data["err_write"] + data["err_timeout"],
            non_2xx=data["err_status"],
        )
    # wrk's own text, as printed: the cross-check and the fallback
    m = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if m:
        out["rps_wrk_text"] = float(m.group(1))
        out.setdefault("rps", float(m.group(1)))
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        if m and key not in out:
            out[key] = parse_duration_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    out["non_2xx_text"] = int(m.group(1)) if m else 0
    out.setdefault("non_2xx", out["non_2xx_text"])
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors_text"] = sum(int(g) for g in m.groups()) if m else 0
    out.setdefault("socket_errors", out["socket_errors_text"])
    m = re.search(r"(\d+) requests in", output)
    if m:
        out.setdefault("requests", int(m.group(1)))
    return out


def run_wrk(
    wrk: str, service: Service, body: Path, prefix: str, *, threads: int, connections: int, seconds: float,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    argv = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "30s", *extra,
        "-s", str(LUA), f"{service.url}/v1/models/{MODEL}/predict", "--", str(body), prefix,
    ]  # fmt: skip
    assert service.process is not None
    pgid = service.process.pid
    cpu_before = group_cpu_seconds(pgid)
    busy_before, wrk_before = system_busy_seconds(), children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.perf_counter() - started
    cpu_after = group_cpu_seconds(pgid)
    busy = system_busy_seconds() - busy_before
    wrk_cpu = children_cpu_seconds() - wrk_before
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr}\n{done.stdout}")
    result = parse_wrk(done.stdout)
    result["server_cpu_s"] = round(cpu_after - cpu_before, 2)
    result["server_cpu_ms_per_request"] = (
        round((cpu_after - cpu_before) * 1000 / result["requests"], 3) if result.get("requests") else None
    )
    result["server_cpu_cores"] = round((cpu_after - cpu_before) / wall, 2)
    result["wrk_cpu_cores"] = round(wrk_cpu / wall, 2)
    # everything else on the machine (other users' processes, the kernel's own work)
    result["other_cpu_cores"] = round(max(0.0, busy - (cpu_after - cpu_before) - wrk_cpu) / wall, 2)
    return result, done.stdout


def count_logged(database: Path, prefix: str) -> tuple[int, int]:
    """(requests, events) stored under this run's request-id prefix."""
    lo, hi = f"{prefix}-", f"{prefix}."  # '.' sorts right after '-'
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        n_req = conn.execute(
            "SELECT COUNT(*) FROM requests WHERE request_id >= ? AND request_id < ?", (lo, hi)
        ).fetchone()[0]
        n_ev = conn.execute(
            "SELECT COUNT(*) FROM events WHERE request_id >= ? AND request_id < ?", (lo, hi)
        ).fetchone()[0]
    finally:
        conn.close()
    return int(n_req), int(n_ev)


# --------------------------------------------------------------------------- main


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        cells.setdefault((r["workers"], r["rows"]), {"on": [], "off": []})[
            "on" if r["logging"] else "off"
        ].append(r)
    out = []
    for (workers, rows), sides in sorted(cells.items()):
        entry: dict[str, Any] = {"workers": workers, "rows": rows}
        for side, rs in sides.items():
            entry[side] = {
                "runs": len(rs),
                "rps_median": round(median(r["rps"] for r in rs), 1),
                "rps_all": [r["rps"] for r in rs],
                "rows_per_s_median": round(median(r["rps"] for r in rs) * rows, 1),
                "p50_ms_median": round(median(r["p50_ms"] for r in rs), 2),
                "p90_ms_median": round(median(r["p90_ms"] for r in rs), 2),
                "p99_ms_median": round(median(r["p99_ms"] for r in rs), 2),
                "server_cpu_ms_per_request_median": round(
                    median(r["server_cpu_ms_per_request"] for r in rs), 3
                ),
                "server_cpu_cores_median": round(median(r["server_cpu_cores"] for r in rs), 2),
                "other_cpu_cores_median": round(median(r["other_cpu_cores"] for r in rs), 2),
            }
        if sides["on"] and sides["off"]:
            on, off = entry["on"]["rps_median"], entry["off"]["rps_median"]
            entry["logging_cost_pct"] = round((1 - on / off) * 100, 1) if off else None
            entry["meets_10pct_target"] = entry["logging_cost_pct"] is not None and entry["logging_cost_pct"] <= 10
            entry["cpu_cost_pct"] = round(
                (entry["on"]["server_cpu_ms_per_request_median"]
                 / entry["off"]["server_cpu_ms_per_request_median"] - 1) * 100,
                1,
            )
            entry["cpu_per_request_ratio"] = round(
                entry["on"]["server_cpu_ms_per_request_median"]
                / entry["off"]["server_cpu_ms_per_request_median"],
                2,
            )
        out.append(entry)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    headers = [
        "workers", "rows/request", "logging", "req/s (median)", "rows/s", "p50 ms", "p90 ms",
        "p99 ms", "server CPU ms/req", "req/s, all runs", "logging cost",
    ]  # fmt: skip
    rows = []
    for e in summary:
        for side in ("off", "on"):
            s = e.get(side)
            if not s:
                continue
            cost = ""
            if side == "on" and e.get("logging_cost_pct") is not None:
                cost = f"**{e['logging_cost_pct']:+.1f}%** {'(ok)' if e['meets_10pct_target'] else '(> 10%)'}"
            rows.append(
                [
                    e["workers"], e["rows"], side, fmt_num(s["rps_median"], 1),
                    fmt_num(s["rows_per_s_median"], 0), fmt_num(s["p50_ms_median"], 2),
                    fmt_num(s["p90_ms_median"], 2), fmt_num(s["p99_ms_median"], 2),
                    fmt_num(s["server_cpu_ms_per_request_median"], 2),
                    ", ".join(fmt_num(v, 0) for v in s["rps_all"]), cost,
                ]  # fmt: skip
            )
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4, help="measured runs per cell and side (default 4)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load per server and body")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--rows", default="1,100", help="rows per request, comma separated")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma separated")
    ap.add_argument("--quick", action="store_true", help="1 run of 4 s per cell: a smoke test")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "predict.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 4.0, 1.0
    sizes = [int(x) for x in args.rows.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    wrk = ensure_wrk()

    workdir = WORK_DIR / "predict"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.time()
    started_iso = now_iso()
    facts = machine_facts()
    template, rows = train_template(workdir)
    bodies = write_bodies(workdir, rows, sizes)
    runs: list[dict[str, Any]] = []
    failures: list[str] = []

    for workers in worker_counts:
        services: dict[bool, Service] = {}
        dbs: dict[bool, Path] = {}
        try:
            for logging_on in (True, False):
                db = workdir / f"w{workers}-{'on' if logging_on else 'off'}.db"
                copy_database(template, db)
                dbs[logging_on] = db
                svc = Service(
                    str(db), workers=workers, logging_enabled=logging_on, home=workdir,
                    log_path=workdir / f"w{workers}-{'on' if logging_on else 'off'}.log",
                )  # fmt: skip
                svc.start()
                services[logging_on] = svc
            for logging_on, svc in services.items():
                for n, body in bodies.items():
                    check_one_request(svc, body)
                    # gently first: each worker loads the model on its first request, and
                    # 32 concurrent first requests would each load it (see the docs)
                    run_wrk(wrk, svc, body, f"gentle{n}", threads=1, connections=workers, seconds=2)
                    run_wrk(wrk, svc, body, f"warm{n}", threads=args.threads,
                            connections=args.connections, seconds=args.warmup)  # fmt: skip
            for run in range(1, args.runs + 1):
                for n, body in bodies.items():
                    # alternate which side goes first, so slow drift does not favour one
                    order = (True, False) if (run + n) % 2 else (False, True)
                    for logging_on in order:
                        svc = services[logging_on]
                        prefix = f"r{run}w{workers}n{n}{'on' if logging_on else 'off'}"
                        result, text = run_wrk(
                            wrk, svc, body, prefix, threads=args.threads,
                            connections=args.connections, seconds=args.duration,
                        )  # fmt: skip
                        record: dict[str, Any] = {
                            "workers": workers, "rows": n, "logging": logging_on, "run": run,
                            "at": now_iso(), **result,
                        }  # fmt: skip
                        if result.get("non_2xx") or result.get("socket_errors"):
                            failures.append(
                                f"{prefix}: {result.get('non_2xx')} non-2xx, "
                                f"{result.get('socket_errors')} socket errors"
                            )
                        if logging_on:
                            time.sleep(1.0)  # let requests in flight when wrk stopped commit
                            stored, events = count_logged(dbs[True], prefix)
                            extra = stored - result["requests"]
                            ok = events == stored * n and 0 <= extra <= args.connections
                            record["log_check"] = {
                                "requests_counted_by_wrk": result["requests"],
                                "requests_stored": stored,
                                "events_stored": events,
                                "events_expected": stored * n,
                                "stored_minus_counted": extra,
                                "ok": ok,
                            }
                            if not ok:
                                failures.append(f"{prefix}: log check failed {record['log_check']}")
                        runs.append(record)
                        print(
                            f"w={workers} rows={n:>3} logging={'on ' if logging_on else 'off'} run {run}: "
                            f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                            f"p99 {result['p99_ms']:7.2f} ms  cpu {result['server_cpu_ms_per_request']} ms/req "
                            f"cores srv/wrk/other {result['server_cpu_cores']}/{result['wrk_cpu_cores']}/"
                            f"{result['other_cpu_cores']}"
                            + (f"  log {'ok' if record['log_check']['ok'] else 'MISMATCH'}"
                               f" ({record['log_check']['events_stored']} events)" if logging_on else ""),
                            flush=True,
                        )  # fmt: skip
        finally:
            for svc in services.values():
                svc.stop()

    summary = summarise(runs)
    data = {
        "benchmark": "predict",
        "started_at": started_iso,
        "finished_at": now_iso(),
        "wall_seconds": round(time.time() - started, 1),
        "machine": facts,
        "params": {
            "model": f"{MODEL} (loopwatch.simulate ChurnScenario seed=1, 5000 training rows, default estimator)",
            "features": [k for k in rows[0]],
            "runs": args.runs, "duration_s": args.duration, "warmup_s": args.warmup,
            "wrk_threads": args.threads, "wrk_connections": args.connections,
            "rows": sizes, "workers": worker_counts, "database": "SQLite (WAL, synchronous=FULL)",
        },  # fmt: skip
        "failures": failures,
        "summary": summary,
        "runs": runs,
    }
    write_json(args.out, data)
    md = table(summary)
    args.out.with_suffix(".md").write_text(md + "\n")
    print()
    print(md)
    if failures:
        print("\nFAILURES:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
