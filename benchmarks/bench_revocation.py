"""What exact revocation costs: predict with an API key, before vs after, side by side.

    .venv/bin/python benchmarks/bench_revocation.py                 # 5 runs x 10 s per cell and side
    .venv/bin/python benchmarks/bench_revocation.py --before REF    # "before" is REF (default: the merge base with main)
    .venv/bin/python benchmarks/bench_revocation.py --quick         # 1 run x 4 s, a smoke test

Since the key generation came in, every authenticated request reads one row of the store
(``Store.key_generation``) before it trusts a cached key. This measures that read where a
client meets it, against the code before it:

1. "before" is a ``git worktree`` of ``--before`` (default: where this branch left ``main``) under
   ``benchmarks/.work/revocation/``; "after" is this checkout. Each side runs with its own
   ``src`` on ``PYTHONPATH``.
2. **The key check alone**: ``KeyGuard.admit`` (what the auth middleware awaits per request)
   timed in a process of each side, on SQLite and, when the server programs are there, on
   PostgreSQL (``tests/pgserver.py``): medians of 5 x 20,000 calls (2,000 on PostgreSQL).
3. **Predict throughput**: the churn model of ``bench_predict.py`` served by two
   ``loopwatch serve`` processes side by side (before and after), with auth on
   (``LOOPWATCH_AUTH=on``), durable logging on and a predict key sent with every request;
   ``wrk -t2 -c32`` with ``predict.lua`` (1-row requests), ``--runs`` runs per side and
   worker count, the two sides alternating and the order flipping every run. Then the same
   number of runs with both driven *together* (``wrk -t1 -c16`` each, at once): the two
   servers share the cores, and whatever else loads the machine, at the same moments, so the
   ratio of their req/s in a run is the ratio of their cost per request with the machine's
   drift taken out (on a shared machine, alternating runs differ by 10 % and more from one
   to the next). Every run must answer only 2xx (a 401 would mean the key was not accepted).
4. Writes ``benchmarks/results/revocation.json``; the table is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# "after" is this checkout's code, whichever checkout the virtualenv was installed from
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import (  # noqa: E402
    PYTHON,
    REPO,
    RESULTS_DIR,
    WORK_DIR,
    Service,
    machine_facts,
    median,
    now_iso,
    write_json,
)
from bench_predict import copy_database, ensure_wrk, run_wrk, train_template, write_bodies  # noqa: E402

SIDES = ("before", "after")


def before_checkout(ref: str, workdir: Path) -> Path:
    """A detached worktree of ``ref`` (made once, moved to ``ref`` on later runs)."""
    target = workdir / "before"
    if not (target / "src" / "loopwatch").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(target), ref], check=True,
                       capture_output=True)
    else:
        subprocess.run(["git", "-C", str(target), "checkout", "--detach", ref], check=True, capture_output=True)
    return target


def side_env(side: str, before: Path) -> dict[str, str]:
    src = before / "src" if side == "before" else REPO / "src"
    return {"PYTHONPATH": str(src)}


def commit_of(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def issue_predict_key(database: Path) -> str:
    from loopwatch.auth.manage import issue_key
    from loopwatch.stores import open_store

    store = open_store(str(database))
    try:
        return issue_key(store, name="bench", scopes=["predict"], now=datetime.now(timezone.utc))[1]
    finally:
        store.close()


def time_admit(side: str, before: Path, url: str, calls: int, repeats: int) -> dict[str, Any]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}, **side_env(side, before)}
    done = subprocess.run([str(PYTHON), str(Path(__file__).with_name("_admit_timing.py")), url, str(calls),
                           str(repeats)], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"admit timing ({side}) failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_postgres(workdir: Path) -> tuple[Any, str | None]:
    """A throwaway PostgreSQL server (tests/pgserver.py), or None and why not."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from pgserver import ThrowawayPostgres  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)  # tests/ holds packages (logging) that must not shadow the library's
    try:
        (workdir / "pg").mkdir(parents=True, exist_ok=True)
        # durable, as a real server; two services side by side each hold a connection per
        # thread-pool thread (up to 40), more than the default 100 connections allow
        settings = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "max_connections": "300"}
        return ThrowawayPostgres("loopwatch_revocation", settings=settings, tmp_parent=workdir / "pg").start(), None
    except Exception as exc:  # no server programs: say so in the results
        return None, f"{type(exc).__name__}: {exc}"


def admit_timings(before: Path, workdir: Path, pg: Any, *, repeats: int) -> list[dict[str, Any]]:
    out = []
    backends: list[tuple[str, Any, int]] = [("SQLite", None, 20_000)]
    if pg is not None:
        backends.append(("PostgreSQL", pg, 2_000))
    for backend, server, calls in backends:
        entry: dict[str, Any] = {"backend": backend, "calls": calls, "repeats": repeats}
        for round_ in range(2):  # alternate, so that drift in load hits both sides
            for side in SIDES if round_ == 0 else SIDES[::-1]:
                if server is None:
                    url = str(workdir / f"admit-{side}-{round_}.db")
                else:
                    url = server.create_database(f"admit_{side}_{round_}")
                timed = time_admit(side, before, url, calls, repeats)
                entry.setdefault(side, []).extend(timed["us_per_call"])
                entry.setdefault(f"{side}_cpu", []).extend(timed["cpu_us_per_call"])
        for side in SIDES:
            entry[f"{side}_median_us"] = round(median(entry[side]), 2)
            entry[f"{side}_median_cpu_us"] = round(median(entry[f"{side}_cpu"]), 2)
        entry["added_us"] = round(entry["after_median_us"] - entry["before_median_us"], 2)
        entry["added_cpu_us"] = round(entry["after_median_cpu_us"] - entry["before_median_cpu_us"], 2)
        print(f"admit on {backend}: before {entry['before_median_us']} us, after {entry['after_median_us']} us "
              f"per call ({entry['added_us']:+} us); CPU {entry['before_median_cpu_us']} -> "
              f"{entry['after_median_cpu_us']} us", flush=True)
        out.append(entry)
    return out


def databases(backend: str, workers: int, template: Path, workdir: Path, pg: Any) -> dict[str, str]:
    """One database per side holding the churn model: copies of the SQLite template, or the
    same model trained into a fresh PostgreSQL database."""
    out = {}
    for side in SIDES:
        if backend == "SQLite":
            db = workdir / f"w{workers}-{side}.db"
            copy_database(template, db)
            out[side] = str(db)
            continue
        from loopwatch.config import Settings
        from loopwatch.simulate import TARGET, ChurnScenario
        from loopwatch.application.workspace import Workspace

        url = pg.create_database(f"predict_w{workers}_{side}")
        with Workspace(Settings.from_env({}, home=workdir, database=url)) as ws:
            ws.train("churn", ChurnScenario(seed=1).training_data(n=5000), target=TARGET)
        out[side] = url
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=None,
                    help="git ref of the code to compare with (default: where this branch left main; "
                         "name it once the branch is merged)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per cell and side (default 5)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load per server")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma separated (default 1,2)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only (no PostgreSQL cell)")
    ap.add_argument("--quick", action="store_true", help="1 run of 4 s per cell: a smoke test")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "revocation.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 4.0, 1.0
    wrk = ensure_wrk()
    workdir = WORK_DIR / "revocation"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.db*"):
        old.unlink()
    if args.before is None:
        args.before = subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"], capture_output=True,
                                     text=True, check=True).stdout.strip()[:12]
    before = before_checkout(args.before, workdir)
    started, started_iso = time.time(), now_iso()
    facts = machine_facts()
    commits = {"before": f"{args.before} ({commit_of(before)})", "after": commit_of(REPO)}
    print(f"before: {commits['before']}, after: {commits['after']}", flush=True)

    pg, no_pg = (None, "--no-postgres") if args.no_postgres else start_postgres(workdir)
    try:
        admit = admit_timings(before, workdir, pg, repeats=1 if args.quick else 5)
        template, rows = train_template(workdir)
        body = write_bodies(workdir, rows, [1])[1]
        cells = [("SQLite", int(w)) for w in args.workers.split(",")]
        if pg is not None:
            cells.append(("PostgreSQL", 1))
        runs, failures = measure(cells, args, wrk, before, workdir, template, body, pg)
    finally:
        if pg is not None:
            pg.stop()
    summary = summarise(runs)
    write_json(args.out, {
        "benchmark": "revocation", "started_at": started_iso, "finished_at": now_iso(),
        "wall_seconds": round(time.time() - started, 1),
        "params": {"before": args.before, "runs": args.runs, "duration_s": args.duration,
                   "connections": args.connections, "rows_per_request": 1, "commits": commits,
                   "postgresql": "measured" if pg is not None else f"not measured: {no_pg}"},
        "machine": facts, "admit": admit, "runs": runs, "summary": summary, "failures": failures,
    })
    print(f"wrote {args.out}")
    return 1 if failures else 0


def measure(cells: list[tuple[str, int]], args: Any, wrk: str, before: Path, workdir: Path, template: Path,
            body: Path, pg: Any) -> tuple[list[dict[str, Any]], list[str]]:
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    for backend, workers in cells:
        services: dict[str, Service] = {}
        tokens: dict[str, str] = {}
        try:
            for side, database in databases(backend, workers, template, workdir, pg).items():
                tokens[side] = issue_predict_key(database)
                services[side] = Service(
                    database, workers=workers, home=workdir, log_path=workdir / f"{backend}-w{workers}-{side}.log",
                    extra_env={**side_env(side, before), "LOOPWATCH_AUTH": "on"},
                )
                services[side].start()
            for side, svc in services.items():
                headers = {"Authorization": f"Bearer {tokens[side]}"}
                # gently first: each worker loads the model on its first request
                run_wrk(wrk, svc, body, f"gentle-{side}", threads=1, connections=workers, seconds=2, headers=headers)
                run_wrk(wrk, svc, body, f"warm-{side}", threads=2, connections=args.connections,
                        seconds=args.warmup, headers=headers)
            for run in range(1, args.runs + 1):
                for side in SIDES if run % 2 else SIDES[::-1]:
                    prefix = f"r{run}{backend}w{workers}{side}"
                    result, _ = run_wrk(wrk, services[side], body, prefix, threads=2,
                                        connections=args.connections, seconds=args.duration,
                                        headers={"Authorization": f"Bearer {tokens[side]}"})
                    if result.get("non_2xx") or result.get("socket_errors"):
                        failures.append(f"{prefix}: {result.get('non_2xx')} non-2xx, "
                                        f"{result.get('socket_errors')} socket errors")
                    runs.append({"backend": backend, "workers": workers, "side": side, "run": run,
                                 "mode": "alternating", "at": now_iso(), **result})
                    print(f"{backend} w={workers} {side:<6} run {run}: {result['rps']:8.1f} req/s  "
                          f"p50 {result['p50_ms']:7.2f} ms  cpu {result['server_cpu_ms_per_request']} ms/req  "
                          f"other cores {result['other_cpu_cores']}", flush=True)
            # both at once: the two servers share the cores (and whatever else loads the machine)
            # at the same moments, so the ratio of their req/s is the ratio of their cost per
            # request, with the machine's drift taken out
            for run in range(1, args.runs + 1):
                results: dict[str, dict[str, Any]] = {}

                def drive(side: str, run: int = run) -> None:
                    results[side], _ = run_wrk(wrk, services[side], body, f"c{run}{backend}w{workers}{side}",
                                               threads=1, connections=args.connections // 2,
                                               seconds=args.duration,
                                               headers={"Authorization": f"Bearer {tokens[side]}"})

                threads = [threading.Thread(target=drive, args=(side,)) for side in SIDES]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for side in SIDES:
                    result = results[side]
                    if result.get("non_2xx") or result.get("socket_errors"):
                        failures.append(f"c{run}{backend}w{workers}{side}: {result.get('non_2xx')} non-2xx, "
                                        f"{result.get('socket_errors')} socket errors")
                    runs.append({"backend": backend, "workers": workers, "side": side, "run": run,
                                 "mode": "together", "at": now_iso(), **result})
                ratio = results["after"]["rps"] / results["before"]["rps"]
                print(f"{backend} w={workers} together run {run}: before {results['before']['rps']:.1f}, after "
                      f"{results['after']['rps']:.1f} req/s (after/before {ratio:.3f})", flush=True)
        finally:
            for svc in services.values():
                svc.stop()

    return runs, failures


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for backend, workers in dict.fromkeys((r["backend"], r["workers"]) for r in runs):
        entry: dict[str, Any] = {"backend": backend, "workers": workers}
        for side in SIDES:
            mine = [r for r in runs if (r["backend"], r["workers"], r["side"], r["mode"])
                    == (backend, workers, side, "alternating")]
            entry[side] = {
                "runs": len(mine),
                "rps_median": round(median(r["rps"] for r in mine), 1),
                "rps_all": [r["rps"] for r in mine],
                "p50_ms_median": round(median(r["p50_ms"] for r in mine), 2),
                "p99_ms_median": round(median(r["p99_ms"] for r in mine), 2),
                "server_cpu_ms_per_request_median": round(median(r["server_cpu_ms_per_request"] for r in mine), 3),
                "other_cpu_cores_median": round(median(r["other_cpu_cores"] for r in mine), 2),
            }
        b, a = entry["before"]["rps_median"], entry["after"]["rps_median"]
        entry["rps_change_pct"] = round((a / b - 1) * 100, 1) if b else None
        entry["within_2pct"] = entry["rps_change_pct"] is not None and entry["rps_change_pct"] >= -2.0
        cb, ca = (entry[s]["server_cpu_ms_per_request_median"] for s in SIDES)
        entry["cpu_change_pct"] = round((ca / cb - 1) * 100, 1) if cb else None
        together = {side: {r["run"]: r["rps"] for r in runs if (r["backend"], r["workers"], r["side"], r["mode"])
                           == (backend, workers, side, "together")} for side in SIDES}
        ratios = [together["after"][n] / together["before"][n] for n in sorted(together["before"])
                  if together["before"][n] and n in together["after"]]
        entry["together"] = {
            "runs": len(ratios),
            "before_rps": [together["before"][n] for n in sorted(together["before"])],
            "after_rps": [together["after"][n] for n in sorted(together["after"])],
            "ratios": [round(x, 4) for x in ratios],
            "change_pct_median": round((median(ratios) - 1) * 100, 1) if ratios else None,
        }
        entry["within_2pct_together"] = bool(ratios) and entry["together"]["change_pct_median"] >= -2.0
        summary.append(entry)
        print(f"{backend}, {workers} worker(s): alternating: before {b} req/s, after {a} req/s "
              f"({entry['rps_change_pct']:+}%), CPU/request {cb} -> {ca} ms ({entry['cpu_change_pct']:+}%); "
              f"together: after/before {entry['together']['change_pct_median']:+}% (median of "
              f"{entry['together']['ratios']})", flush=True)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
