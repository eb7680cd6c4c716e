"""A scheduled evaluation at 100k, 1M and 10M logged events: window summaries against the log.

    .venv/bin/python benchmarks/bench_monitor_scale.py                          # 100k, 1M, 10M
    .venv/bin/python benchmarks/bench_monitor_scale.py --sizes 100000,1000000   # a shorter run
    .venv/bin/python benchmarks/bench_monitor_scale.py --sizes 10000000 --prepare-only

Issue 14 asks that a scheduled evaluation's time stay within 2x from 100k to 10M logged
events, and its memory under 1 GB. For each N, the events of ``bench_ingest_events.py`` (20
real features, a prediction and class probabilities, logged to a classifier trained on the
same columns) are spread evenly over 30 days, so ``--window 1d`` gives 30 daily windows made
of 720 stored hours whatever N is. Into SQLite at ``synchronous=FULL`` (WAL):

``ingest``
    ``loopwatch ingest FILE`` with ``LOOPWATCH_SUMMARIES_ENABLED=0`` (the log alone), once.
``summarize``
    ``loopwatch summarize ext`` on that database, once, timed separately.
``monitor, summaries``
    ``loopwatch monitor ext --window 1d --json --source summaries``, a fresh process each
    run, ``--runs`` times (median): what a cron job pays. Wall seconds, CPU seconds (user +
    system) and peak RSS of that process alone (``os.wait4`` on it).
``monitor, log``
    The same with ``--source log`` (the whole log read into memory), once, up to
    ``--log-max`` events (10M would need ~30 GB).
``loops, summaries`` and ``loops, log``
    ``loopwatch loops ext --window 1d --json``, the scheduled evaluation (drift, software,
    latency, estimates, clients, labels), with summaries on and off, likewise.

The two sources must agree on each window's start and event count. A database is kept under
``benchmarks/.work/monitor_scale/N`` with what its preparation cost, so an N prepared by an
earlier (or a parallel) run is measured without logging it again. Results are merged by N
into ``benchmarks/results/monitor_scale.json``. The machine is shared: quote CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, WORK_DIR, machine_facts, median, now_iso, remove_sqlite, write_json  # noqa: E402
from bench_ingest_events import MAPPING, env_for, feature_table, train_model  # noqa: E402

DAYS = 30
#: The 30 days before today (UTC): a scheduled evaluation looks at recent windows, whose
#: hourly summaries are still kept (``summary_hourly_days``, 35 by default); older hours are
#: rolled up into days, and a monitor would read 30 daily payloads instead of 720 hourly ones.
START = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=DAYS)
MONITOR = ["monitor", "ext", "--window", "1d", "--json"]
#: The loop engine's evaluation, as the schedule makes it (``loopwatch watch`` runs the same
#: evaluation and then sends alerts): every check of every window, and incidents recorded.
LOOPS = ["loops", "ext", "--window", "1d", "--json"]


#: Events logged and summarised per step: ``loopwatch summarize`` holds the whole backlog it
#: catches up with in memory (~6 GB at 1M events), so a larger N is logged and summarised a
#: slice at a time, as ``loopwatch ingest`` with summaries on does for each file it logs.
SLICE = 1_000_000


def events_files(rows: int) -> list[Path]:
    """``rows`` events of 20 real features, evenly spaced over ``DAYS`` days, in files of at
    most ``SLICE`` events in time order (reused while they start on the same day)."""
    step_ns = DAYS * 86_400 * 10**9 // rows
    paths = []
    for offset in range(0, rows, SLICE):
        path = WORK_DIR / "monitor_scale" / (f"events_{rows}.parquet" if rows <= SLICE
                                              else f"events_{rows}_{offset // SLICE}.parquet")
        paths.append(path)
        if path.exists() and pq.read_schema(path).metadata.get(b"loopwatch_start") == str(START).encode():
            continue
        n = min(SLICE, rows - offset)
        frame = feature_table(n, seed=offset // SLICE)
        p1 = np.random.default_rng(1 + offset // SLICE).uniform(0, 1, n)
        frame["pred"] = (p1 > 0.5).astype(np.int64)
        frame["proba_0"] = 1 - p1
        frame["proba_1"] = p1
        frame["ts"] = START + pd.to_timedelta((offset + np.arange(n)) * step_ns, unit="ns")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**table.schema.metadata, b"loopwatch_start": str(START).encode()})
        pq.write_table(table, path)
    return paths


def measured(args: list[str], env: dict[str, str], *, out: Path | None = None) -> dict[str, Any]:
    """Run ``loopwatch ARGS`` as its own process: wall and CPU seconds, peak RSS, its stdout.

    ``os.wait4`` gives the resource use of that one process, so its peak RSS is its own and
    not the largest of every child this script ever ran.
    """
    out = out or WORK_DIR / "monitor_scale" / "last_stdout.json"
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "loopwatch", *args], env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # monitor exits 1 when a window raises an alarm
        raise RuntimeError(out.with_suffix(".err").read_text()[-2000:])
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_gib": usage.ru_maxrss / 1024 / 1024, "exit": process.returncode,
            "loadavg": os.getloadavg()[0], "output": json.loads(out.read_bytes())}


def prepare(rows: int) -> tuple[Path, str, dict[str, Any]]:
    """The database of ``rows`` events with its summaries, prepared once and kept."""
    folder = WORK_DIR / "monitor_scale" / str(rows)
    home, database, done = folder / "home", str(folder / "loopwatch.db"), folder / "prepared.json"
    if done.exists() and json.loads(done.read_text())["start"] == str(START):
        return home, database, json.loads(done.read_text())
    home.mkdir(parents=True, exist_ok=True)
    remove_sqlite(Path(database))
    started = time.perf_counter()
    paths = events_files(rows)
    print(f"{rows:,}: events files in {time.perf_counter() - started:.0f} s", flush=True)
    train_model(home, database)
    env = env_for(home, database)  # summaries off: the log alone
    steps: list[dict[str, Any]] = []
    for i, path in enumerate(paths):
        ingest = measured(["ingest", str(path), "-m", "ext", *MAPPING], env, out=folder / "ingest.json")
        summarize = measured(["summarize", "ext"], {**env, "LOOPWATCH_SUMMARIES_ENABLED": "1"},
                             out=folder / "summarize.json")
        run = summarize.pop("output")[0]
        steps.append({"ingest": ingest | {"accepted": ingest.pop("output")["accepted"]},
                      "summarize": summarize | {"events": run["events"], "windows": run["windows"]}})
        print(f"{rows:,} [{i + 1}/{len(paths)}]: ingest {ingest['seconds']:.0f} s (cpu {ingest['cpu_seconds']:.0f} s),"
              f" summarize {summarize['seconds']:.0f} s (cpu {summarize['cpu_seconds']:.0f} s, "
              f"{summarize['peak_rss_gib']:.1f} GiB)", flush=True)

    def total(stage: str) -> dict[str, float]:
        return {"seconds": sum(s[stage]["seconds"] for s in steps),
                "cpu_seconds": sum(s[stage]["cpu_seconds"] for s in steps),
                "peak_rss_gib": max(s[stage]["peak_rss_gib"] for s in steps)}

    events = sum(s["summarize"]["events"] for s in steps)
    summarize_total = total("summarize")
    prepared = {
        "rows": sum(s["ingest"]["accepted"] for s in steps), "slices": len(steps), "ingest": total("ingest"),
        "summarize": summarize_total | {"events": events,
                                        "rows_per_second": events / summarize_total["seconds"],
                                        "rows_per_cpu_second": events / summarize_total["cpu_seconds"]},
        "steps": steps, "database_bytes": os.path.getsize(database), "prepared": now_iso(), "start": str(START),
    }
    done.write_text(json.dumps(prepared, indent=1))
    return home, database, prepared


def windows_of(output: dict[str, Any]) -> list[tuple[str, int]]:
    return [(w["start"], w["n_events"]) for w in output["windows"]]


def measure(rows: int, *, runs: int, with_log: bool) -> dict[str, Any]:
    home, database, prepared = prepare(rows)
    # summaries on for both readers, as a user who has them on: the catch-up at the start of
    # the summaries path finds nothing new, and --source picks the reader
    env = {**env_for(home, database), "LOOPWATCH_SUMMARIES_ENABLED": "1"}
    folder = WORK_DIR / "monitor_scale" / str(rows)
    cell: dict[str, Any] = {"rows": prepared["rows"], "prepared": prepared}
    summaries = []
    for i in range(runs):
        summaries.append(measured([*MONITOR, "--source", "summaries"], env, out=folder / "monitor_summaries.json"))
        print(f"{rows:,}: monitor summaries run {i}: {summaries[-1]['seconds']:.1f} s, "
              f"cpu {summaries[-1]['cpu_seconds']:.1f} s, {summaries[-1]['peak_rss_gib']:.2f} GiB", flush=True)
    reference = summaries[0]["output"]
    windows = windows_of(reference)
    cell["windows"] = len(windows)
    cell["events_per_window"] = rows / DAYS
    cell["events_in_windows"] = sum(n for _, n in windows)
    cell["alarmed_windows"] = sum(bool(w["alarm"]) for w in reference["windows"])
    cell["summaries_runs"] = [{k: v for k, v in r.items() if k != "output"} for r in summaries]
    cell["summaries"] = {k: median(r[k] for r in summaries) for k in ("seconds", "cpu_seconds", "peak_rss_gib")}
    loops = []
    for i in range(runs):
        loops.append(measured(LOOPS, env, out=folder / "loops_summaries.json"))
        print(f"{rows:,}: loops summaries run {i}: {loops[-1]['seconds']:.1f} s, "
              f"cpu {loops[-1]['cpu_seconds']:.1f} s, {loops[-1]['peak_rss_gib']:.2f} GiB", flush=True)
    cell["loops_runs"] = [{k: v for k, v in r.items() if k != "output"} for r in loops]
    cell["loops"] = {k: median(r[k] for r in loops) for k in ("seconds", "cpu_seconds", "peak_rss_gib")}
    cell["loops_windows_agree"] = windows_of(loops[0]["output"]) == windows
    cell["loops_incidents"] = sorted(i["kind"] for i in loops[0]["output"]["incidents"])
    if with_log:
        loops_log = measured(LOOPS, {**env, "LOOPWATCH_SUMMARIES_ENABLED": "0"}, out=folder / "loops_log.json")
        print(f"{rows:,}: loops log: {loops_log['seconds']:.1f} s, cpu {loops_log['cpu_seconds']:.1f} s, "
              f"{loops_log['peak_rss_gib']:.2f} GiB", flush=True)
        cell["loops_log"] = {k: v for k, v in loops_log.items() if k != "output"}
        cell["loops_incidents_log"] = sorted(i["kind"] for i in loops_log["output"]["incidents"])
        log = measured([*MONITOR, "--source", "log"], env, out=folder / "monitor_log.json")
        print(f"{rows:,}: monitor log: {log['seconds']:.1f} s, cpu {log['cpu_seconds']:.1f} s, "
              f"{log['peak_rss_gib']:.2f} GiB", flush=True)
        cell["log"] = {k: v for k, v in log.items() if k != "output"}
        cell["sources_agree"] = windows_of(log["output"]) == windows
        cell["alarmed_windows_log"] = sum(bool(w["alarm"]) for w in log["output"]["windows"])
        if not cell["sources_agree"]:
            print(f"{rows:,}: the sources disagree on windows/events!", flush=True)
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log-max", type=int, default=1_000_000, help="largest N also read from the log")
    parser.add_argument("--prepare-only", action="store_true", help="log and summarise, measure nothing")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    (WORK_DIR / "monitor_scale").mkdir(parents=True, exist_ok=True)
    if args.prepare_only:
        for rows in sizes:
            prepare(rows)
        return
    target = RESULTS_DIR / "monitor_scale.json"
    results = json.loads(target.read_text()) if target.exists() else {"cells": {}}
    for rows in sizes:
        results["cells"][str(rows)] = measure(rows, runs=args.runs, with_log=rows <= args.log_max) | {
            "measured": now_iso(), "machine": machine_facts()}
    cells = results["cells"]
    smallest, largest = min(cells, key=int), max(cells, key=int)
    results["ratio"] = {
        "from": int(smallest), "to": int(largest),
        **{k: cells[largest]["summaries"][k] / cells[smallest]["summaries"][k] for k in ("seconds", "cpu_seconds")},
        "peak_rss_gib_largest": cells[largest]["summaries"]["peak_rss_gib"],
    }
    if all("loops" in cells[n] for n in (smallest, largest)):
        results["ratio_loops"] = {
            "from": int(smallest), "to": int(largest),
            **{k: cells[largest]["loops"][k] / cells[smallest]["loops"][k] for k in ("seconds", "cpu_seconds")},
            "peak_rss_gib_largest": cells[largest]["loops"]["peak_rss_gib"],
        }
    results |= {"generated": now_iso(), "days": DAYS, "window": "1d", "features": 20, "runs": args.runs}
    write_json(target, results)
    print(json.dumps({k: results.get(k) for k in ("ratio", "ratio_loops")}, indent=1))


if __name__ == "__main__":
    main()
