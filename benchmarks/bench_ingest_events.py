"""Ingestion of predictions made elsewhere: from a file (``loopwatch ingest``) and over HTTP.

    .venv/bin/python benchmarks/bench_ingest_events.py                  # 1M rows, 3 runs per cell
    .venv/bin/python benchmarks/bench_ingest_events.py --rows 200000 --no-postgres

``file``
    ``loopwatch ingest FILE`` end to end, as a user runs it (a subprocess): a Parquet
    file of 20 features (14 numeric, 6 integer-coded categorical, drawn from New York's
    2013 departures and the 1980 census mothers, air_time with its real nulls) plus a
    prediction, class probabilities and an event time; read with pyarrow, checked
    column by column, encoded and committed 50,000 rows per transaction. Timed from
    process start to exit, so imports and the file's reading count. Into SQLite at
    ``synchronous=FULL`` (WAL) and a throwaway PostgreSQL with fsync on.

``http``
    ``POST /v1/models/{name}/events`` against the real service (uvicorn, 1 worker), 4
    client threads each sending batches of 500 events, for about 10 s.

Each cell is run 3 times on a fresh database; medians are reported. Writes
``benchmarks/results/ingest_events.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, RESULTS_DIR, WORK_DIR, machine_facts, median, now_iso, remove_sqlite, write_json  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.realdata import fertility, flights  # noqa: E402

N_FEATURES = 20
#: Integer-coded categorical features (the rest are numeric; air_time keeps its real nulls).
CATEGORICAL = ["carrier", "origin", "dest", "weekday", "gender1", "gender2"]


def feature_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """20 features from real columns (sampled with replacement up to ``rows``)."""
    rng = np.random.default_rng(seed)
    f = flights().sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    g = fertility().sample(rows, replace=True, random_state=seed + 1).reset_index(drop=True)
    out = pd.DataFrame({c: f[c] for c in ("carrier", "origin", "dest", "weekday", "sched_hour", "distance",
                                         "air_time")})
    for column in g.columns:
        if len(out.columns) >= N_FEATURES:
            break
        if column in out or column == "morekids":
            continue
        out[column] = g[column]
    i = 0
    while len(out.columns) < N_FEATURES:  # scaled copies of real columns, with noise, to reach 20
        out[f"noise_{i}"] = f["distance"].to_numpy() * rng.uniform(0.5, 1.5, rows)
        i += 1
    return out


def predictions_file(path: Path, rows: int) -> Path:
    frame = feature_table(rows)
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0, 1, rows)
    frame["pred"] = (p1 > 0.5).astype(np.int64)
    frame["proba_0"] = 1 - p1
    frame["proba_1"] = p1
    frame["ts"] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(rows), unit="s")
    frame.to_parquet(path, index=False)
    return path


def env_for(home: Path, database: str) -> dict[str, str]:
    # the log alone, as measured before ingest summarised what it logged (bench_summaries.py has both)
    return {**os.environ, "LOOPWATCH_HOME": str(home), "LOOPWATCH_DATABASE": database,
            "LOOPWATCH_SUMMARIES_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def train_model(home: Path, database: str) -> None:
    table = feature_table(3000, seed=7)
    table["late"] = flights().sample(3000, random_state=7)["late"].to_numpy()
    csv = home / "train.csv"
    table.to_csv(csv, index=False)
    subprocess.run([sys.executable, "-m", "loopwatch", "train", str(csv), "-m", "ext", "-t", "late", "--no-screen",
                    "--categorical", ",".join(CATEGORICAL), "--json"], env=env_for(home, database), check=True, capture_output=True, timeout=900)


MAPPING = ["--map", "prediction=pred", "--map", "timestamp=ts", "--probability-prefix", "proba_"]


def run_file(home: Path, database: str, path: Path) -> dict[str, Any]:
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "loopwatch", "ingest", str(path), "-m", "ext", *MAPPING],
                          env=env_for(home, database), capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    report = json.loads(done.stdout)
    # rows per CPU-second of the command (not of a PostgreSQL server): what a quiet
    # machine would approach, since this shared machine's load changes the wall clock
    return {"rows": report["accepted"], "seconds": seconds, "rows_per_second": report["accepted"] / seconds,
            "inner_rows_per_second": report["rows_per_second"], "cpu_seconds": cpu,
            "rows_per_cpu_second": report["accepted"] / cpu, "loadavg": os.getloadavg()[0]}


def run_http(database: str, home: Path, *, seconds: float = 10.0, threads: int = 4,
             per_batch: int = 500) -> dict[str, Any]:
    """Batches of events POSTed by ``threads`` clients to the real service for ``seconds``."""
    import httpx

    from loopwatch.demo import ServiceProcess

    rows = feature_table(per_batch, seed=3)
    features = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    accepted = [0] * threads
    statuses: dict[int, int] = {}
    stop = [float("inf")]  # set once the service answers: its start-up is not measured

    def client(worker: int) -> None:
        with httpx.Client(base_url=service.url, timeout=60.0) as http:
            i = 0
            while time.monotonic() < stop[0]:
                events = [{"request_id": f"h-{worker}-{i}", "row_index": j, "features": f, "prediction": j % 2,
                           "probabilities": [0.4, 0.6], "timestamp": "2026-03-01T12:00:00Z"}
                          for j, f in enumerate(features)]
                response = http.post("/v1/models/ext/events", json={"events": events})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    accepted[worker] += response.json()["accepted"]
                i += 1

    with ServiceProcess(database, log_path=home / "service.log") as service:
        started = time.perf_counter()
        stop[0] = time.monotonic() + seconds
        workers = [threading.Thread(target=client, args=(w,)) for w in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
    return {"rows": sum(accepted), "seconds": elapsed, "rows_per_second": sum(accepted) / elapsed,
            "threads": threads, "per_batch": per_batch, "statuses": statuses, "loadavg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--http", action="store_true", help="measure POST .../events instead of a file")
    args = parser.parse_args()
    work = WORK_DIR / "ingest_events"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"predictions_{args.rows}.parquet"
    if not path.exists() and not args.http:
        predictions_file(path, args.rows)
    backends: list[tuple[str, Any]] = [("SQLite FULL", None)]
    pg = None
    if not args.no_postgres:
        sys.path.insert(0, str(REPO / "tests"))
        from pgserver import ThrowawayPostgres  # type: ignore[import-not-found]

        pg = ThrowawayPostgres("loopwatch_bench", settings={"fsync": "on", "synchronous_commit": "on",
                                                            "full_page_writes": "on"}, tmp_parent=work)
        pg.start()
        backends.append(("PostgreSQL", pg))
    results: dict[str, Any] = {"started": now_iso(), "mode": "http" if args.http else "file", "rows": args.rows,
                               "features": N_FEATURES, "cells": {}}
    try:
        for run in range(args.runs):
            for name, server in backends:
                home = work / f"home_{name.split()[0]}_{run}"
                home.mkdir(exist_ok=True)
                if server is None:
                    db_path = home / "loopwatch.db"
                    remove_sqlite(db_path)
                    database = f"sqlite:///{db_path}"
                else:
                    database = server.create_database(f"ingest_{run}")
                train_model(home, database)
                measured = run_http(database, home) if args.http else run_file(home, database, path)
                results["cells"].setdefault(name, []).append(measured)
                print(name, run, f"{measured['rows_per_second']:,.0f} rows/s end to end", flush=True)
    finally:
        if pg is not None:
            pg.stop()
    results["medians"] = {name: median(r["rows_per_second"] for r in runs) for name, runs in results["cells"].items()}
    results["finished"] = now_iso()
    results["machine"] = machine_facts()
    write_json(RESULTS_DIR / ("ingest_events_http.json" if args.http else "ingest_events.json"), results)
    print(json.dumps(results["medians"], indent=1))


if __name__ == "__main__":
    main()
