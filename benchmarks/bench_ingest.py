"""Bulk ingestion through the store's own write path, at the service's durability setting.

    .venv/bin/python benchmarks/bench_ingest.py             # 3 runs x ~2.5 s per cell
    .venv/bin/python benchmarks/bench_ingest.py --quick     # 1 run x ~1.5 s per cell
    .venv/bin/python benchmarks/bench_ingest.py --no-postgres

Two measurements:

``store``
    ``store.write_requests(batch)``: exactly what the group-commit writer calls
    once per transaction. Each batch holds :class:`LoggedRequest` records built
    like the service builds them (20 numeric features in ``data``, a
    prediction and class probabilities per row, per-row and per-request
    summaries, the JSON response, a fresh ``uuid4().hex`` request id), so the
    measured cost includes turning them into rows (JSON encoding) as well as
    the database's. Shapes: group commits of 512 x 100-row requests (the
    writer's largest batch), 32 x 100-row requests (what 32 busy connections
    feed it), 50 x 1,000-row requests, and 512 x 1-row requests.

``writer``
    The :class:`GroupCommitWriter` itself, with 8 or 32 threads each submitting
    a request and waiting for its commit (as the service's request handlers
    do), so batches form the way they form in production.

Backends: SQLite in WAL mode with ``synchronous=FULL`` (the service's default;
NORMAL is also run for comparison) on the project's own disk, and a throwaway
PostgreSQL 15 started with ``fsync=on, synchronous_commit=on,
full_page_writes=on`` (tests/pgserver.py's class, with its durability
switched back on). Every (backend, shape) gets a fresh database; the runs of
all backends are interleaved so drift in machine load hits each alike.

With ``--profile`` (on by default) one SQLite FULL batch of the main shape is
run under cProfile and the top costs are written to the results.

Writes ``benchmarks/results/ingest.json`` and ``benchmarks/results/ingest.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    processes_cpu_seconds,
    REPO,
    RESULTS_DIR,
    WORK_DIR,
    fmt_num,
    machine_facts,
    markdown_table,
    median,
    now_iso,
    remove_sqlite,
    write_json,
)

from loopwatch.records import LoggedRequest, software_fingerprint  # noqa: E402
from loopwatch.records.jsonutil import dumps  # noqa: E402
from loopwatch.stores import open_store  # noqa: E402
from loopwatch.stores.base import Store  # noqa: E402
from loopwatch.stores.writer import GroupCommitWriter  # noqa: E402

N_FEATURES = 20
FEATURES = [f"f{i:02d}" for i in range(N_FEATURES)]
#: (name, requests per transaction, rows per request)
STORE_SHAPES = [
    ("512 x 100 rows", 512, 100),
    ("32 x 100 rows", 32, 100),
    ("50 x 1000 rows", 50, 1000),
    ("512 x 1 row", 512, 1),
]
#: (name, submitting threads, rows per request)
WRITER_SHAPES = [
    ("8 threads x 100 rows", 8, 100),
    ("32 threads x 100 rows", 32, 100),
    ("32 threads x 1 row", 32, 1),
]
PG_DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


# --------------------------------------------------------------------------- records


class RequestFactory:
    """LoggedRequests shaped like the service's, with a fresh request id each time.

    A few templates with different random data are built once; each request is
    a template with a new ``uuid4().hex`` id (the service's id when a client
    sends none), so no two requests collide and building one costs microseconds.
    """

    def __init__(self, n_rows: int, *, templates: int = 8, seed: int = 0) -> None:
        rng = random.Random(seed)
        artifact = "%064x" % rng.getrandbits(256)
        fingerprint = software_fingerprint(artifact, None)
        self.n_rows = n_rows
        self.templates: list[LoggedRequest] = []
        for _ in range(templates):
            data = [
                {name: round(rng.gauss(50.0, 20.0), 4) for name in FEATURES} for _ in range(n_rows)
            ]
            p1 = [round(rng.random(), 6) for _ in range(n_rows)]
            probabilities = [[round(1 - p, 6), p] for p in p1]
            predictions = [[int(p > 0.5)] for p in p1]
            shape = [n_rows, N_FEATURES]
            request_id = uuid.uuid4().hex
            response = dumps(
                {
                    "request_id": request_id,
                    "model": "bench",
                    "version": 1,
                    "predictions": predictions,
                    "probabilities": probabilities,
                    "classes": [0, 1],
                }
            )
            self.templates.append(
                LoggedRequest(
                    request_id=request_id,
                    model_name="bench",
                    model_version=1,
                    request_type="api",
                    client_id="bench-client",
                    fingerprint=fingerprint,
                    body_sha256="%064x" % rng.getrandbits(256),
                    response=response,
                    runtime_ms=round(rng.uniform(1, 10), 3),
                    received_at=datetime.now(timezone.utc),
                    replayed=False,
                    predictions=predictions,
                    probabilities=probabilities,
                    request_summary={
                        "shape": shape,
                        "n_missing": 0,
                        "missing_by_feature": {},
                    },
                    row_summaries=[{"shape": shape, "n_missing": 0, "missing": []} for _ in range(n_rows)],
                    data=data,
                )
            )
        self._i = 0
        self._lock = threading.Lock()

    def one(self) -> LoggedRequest:
        with self._lock:
            self._i += 1
            template = self.templates[self._i % len(self.templates)]
        return replace(template, request_id=uuid.uuid4().hex, received_at=datetime.now(timezone.utc))

    def batch(self, n: int) -> list[LoggedRequest]:
        return [self.one() for _ in range(n)]


# --------------------------------------------------------------------------- backends


class Backend:
    def __init__(
        self,
        name: str,
        open_fresh: Callable[[str], Store],
        setting: str,
        server_cpu: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self.open_fresh = open_fresh  # tag -> a migrated, empty store
        self.setting = setting
        #: CPU seconds used so far by a database server process tree (PostgreSQL), if any
        self.server_cpu = server_cpu


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds of ``root_pid`` and its direct children (a postmaster and its backends)."""
    return processes_cpu_seconds(lambda pid, fields: pid == root_pid or int(fields[1]) == root_pid)


def sqlite_backend(synchronous: str, workdir: Path) -> Backend:
    def open_fresh(tag: str) -> Store:
        path = workdir / f"ingest-{synchronous.lower()}-{tag}.db"
        remove_sqlite(path)
        return open_store(f"sqlite:///{path}", sqlite_synchronous=synchronous)

    return Backend(
        f"SQLite {synchronous}", open_fresh, f"journal_mode=WAL, synchronous={synchronous}"
    )


def postgres_backend(pg: Any) -> Backend:
    def open_fresh(tag: str) -> Store:
        name = "ingest_" + "".join(c if c.isalnum() else "_" for c in tag)
        pg.drop_database(name)
        return open_store(pg.create_database(name))

    postmaster = pg._postmaster_pid()

    def server_cpu() -> float:
        return process_tree_cpu(postmaster) if postmaster else 0.0

    return Backend(
        "PostgreSQL", open_fresh, "fsync=on, synchronous_commit=on, full_page_writes=on", server_cpu
    )


def start_postgres(workdir: Path) -> tuple[Any, dict[str, str]]:
    sys.path.insert(0, str(REPO / "tests"))
    from pgserver import ThrowawayPostgres  # type: ignore[import-not-found]

    pg_parent = workdir / "pg"
    pg_parent.mkdir(parents=True, exist_ok=True)
    pg = ThrowawayPostgres("loopwatch_bench", settings=PG_DURABLE, tmp_parent=pg_parent)
    pg.start()
    shown = {}
    for setting in ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level",
                    "shared_buffers", "max_wal_size", "wal_sync_method"):  # fmt: skip
        shown[setting] = pg.execute(f"SHOW {setting}").strip()
    return pg, shown


# --------------------------------------------------------------------------- measurements


def run_store(
    store: Store,
    factory: RequestFactory,
    per_batch: int,
    seconds: float,
    server_cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Write batches for about ``seconds``; time only ``write_requests``."""
    server_before = server_cpu() if server_cpu else 0.0
    written_rows = written_requests = batches = 0
    busy = cpu = 0.0
    commit_times = []
    while busy < seconds or batches < 2:
        batch = factory.batch(per_batch)  # built outside the timed part, as the service does
        cpu_started = time.thread_time()
        started = time.perf_counter()
        outcomes = store.write_requests(batch)
        elapsed = time.perf_counter() - started
        cpu += time.thread_time() - cpu_started
        if any(o.status != "stored" for o in outcomes):
            raise RuntimeError("a fresh request was not stored")
        busy += elapsed
        commit_times.append(elapsed)
        batches += 1
        written_requests += per_batch
        written_rows += per_batch * factory.n_rows
    if server_cpu:
        cpu += server_cpu() - server_before  # the database server's share of the work
    return {
        "rows": written_rows,
        "requests": written_requests,
        "batches": batches,
        "seconds": round(busy, 3),
        "cpu_seconds": round(cpu, 3),
        "rows_per_s": round(written_rows / busy, 1),
        # CPU time of the writing thread (Python, SQLite's own work, the kernel's write
        # calls; not fsync waits, not time taken by other processes), plus the
        # PostgreSQL server's processes for that backend: a noise-robust view
        "rows_per_cpu_s": round(written_rows / cpu, 1) if cpu else None,
        "requests_per_s": round(written_requests / busy, 1),
        "ms_per_transaction_median": round(median(commit_times) * 1000, 2),
    }


def run_writer(
    store: Store,
    factory: RequestFactory,
    threads: int,
    seconds: float,
    server_cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Submitting threads against a GroupCommitWriter (service defaults: 512 / 2 ms / 4096)."""
    server_before = server_cpu() if server_cpu else 0.0
    commits: list[tuple[int, int, float]] = []
    writer = GroupCommitWriter(
        store, on_commit=lambda n, rows, s: commits.append((n, rows, s))
    ).start()
    stop = threading.Event()
    errors: list[BaseException] = []
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def submitter(k: int) -> None:
        mine = latencies[k]
        try:
            while not stop.is_set():
                request = factory.one()
                t0 = time.perf_counter()
                outcome = writer.write(request, timeout=60)
                mine.append(time.perf_counter() - t0)
                if outcome.status != "stored":
                    raise RuntimeError(outcome.status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=submitter, args=(k,), daemon=True) for k in range(threads)]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join(60)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if server_cpu:
        cpu += server_cpu() - server_before
    writer.close()
    if errors:
        raise RuntimeError(f"writer benchmark failed: {errors[0]!r}")
    done_requests = sum(len(x) for x in latencies)
    rows = done_requests * factory.n_rows
    all_lat = sorted(x for lst in latencies for x in lst)
    return {
        "rows": rows,
        "requests": done_requests,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed, 1),
        # CPU of the whole benchmark process (writer thread, submitters, SQLite / libpq)
        # plus the PostgreSQL server's processes for that backend
        "rows_per_cpu_s": round(rows / cpu, 1) if cpu else None,
        "requests_per_s": round(done_requests / elapsed, 1),
        "commits": len(commits),
        "requests_per_commit_mean": round(sum(c[0] for c in commits) / len(commits), 1) if commits else 0,
        "ms_per_commit_median": round(median(c[2] for c in commits) * 1000, 2) if commits else None,
        "wait_ms_p50": round(all_lat[len(all_lat) // 2] * 1000, 2) if all_lat else None,
        "wait_ms_p99": round(all_lat[int(len(all_lat) * 0.99)] * 1000, 2) if all_lat else None,
    }


def profile_sqlite(workdir: Path, synchronous: str, per_batch: int, n_rows: int, batches: int) -> dict[str, Any]:
    """cProfile of ``write_requests`` on SQLite: where a transaction's time goes."""
    path = workdir / f"profile-{synchronous.lower()}.db"
    remove_sqlite(path)
    store = open_store(f"sqlite:///{path}", sqlite_synchronous=synchronous)
    factory = RequestFactory(n_rows, seed=99)
    try:
        store.write_requests(factory.batch(per_batch))  # warm: connection, fingerprint row
        prepared = [factory.batch(per_batch) for _ in range(batches)]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for batch in prepared:
            store.write_requests(batch)
        profiler.disable()
        wall = time.perf_counter() - started
    finally:
        store.close()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    top = []
    for (filename, line, func), (cc, nc, tottime, cumtime, _) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][2], reverse=True  # type: ignore[attr-defined]
    )[:15]:
        where = filename.replace(str(REPO) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        top.append({
            "function": f"{where}:{line}({func})" if line else func,
            "calls": nc,
            "tottime_s": round(tottime, 3),
            "share_pct": round(tottime / total * 100, 1) if total else None,
        })  # fmt: skip
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    rows = per_batch * n_rows * batches
    return {
        "synchronous": synchronous,
        "shape": f"{per_batch} x {n_rows} rows",
        "batches": batches,
        "rows": rows,
        "wall_s_under_profiler": round(wall, 3),
        "rows_per_s_under_profiler": round(rows / wall, 1),
        "top_by_own_time": top,
        "pstats_text": text.getvalue(),
    }


def breakdown_sqlite(workdir: Path, synchronous: str, per_batch: int, n_rows: int, batches: int) -> dict[str, Any]:
    """Split one transaction into its parts without a profiler's overhead.

    Runs the same steps as ``SqlLogMixin._write_requests`` by hand on a store of
    its own: building the event tuples (JSON encoding per row), the requests
    INSERTs, the events ``executemany``, and the COMMIT (the fsync).
    """
    from loopwatch.stores.base import to_micros
    from loopwatch.stores.sql import EVENT_COLUMNS, _EVENT_PLACEHOLDERS, _event_rows, utcnow

    path = workdir / f"breakdown-{synchronous.lower()}.db"
    remove_sqlite(path)
    store = open_store(f"sqlite:///{path}", sqlite_synchronous=synchronous)
    factory = RequestFactory(n_rows, seed=7)
    parts = {"build_event_rows": 0.0, "insert_requests": 0.0, "insert_events": 0.0, "commit": 0.0}
    try:
        store.write_requests(factory.batch(1))
        conn = store._conn()  # type: ignore[attr-defined]
        fp_id = factory.templates[0].fingerprint.id
        insert_events = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({_EVENT_PLACEHOLDERS})"
        insert_request = (
            "INSERT INTO requests (request_id, model_name, model_version, ts, logged_at, n_rows, "
            "runtime_ms, request_type, client_id, fingerprint_id, body_sha256, request_summary, "
            "response, replayed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        for _ in range(batches):
            batch = factory.batch(per_batch)
            now = to_micros(utcnow())
            t0 = time.perf_counter()
            rows: list[tuple[Any, ...]] = []
            for r in batch:
                rows.extend(_event_rows(r, fp_id, now))
            t1 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.cursor()
            for r in batch:
                cur.execute(insert_request, (
                    r.request_id, r.model_name, r.model_version, to_micros(r.received_at), now,
                    r.n_rows, r.runtime_ms, r.request_type, r.client_id, fp_id, r.body_sha256,
                    dumps(r.request_summary).decode(), r.response, int(r.replayed),
                ))  # fmt: skip
            t2 = time.perf_counter()
            cur.executemany(insert_events, rows)
            t3 = time.perf_counter()
            conn.commit()
            t4 = time.perf_counter()
            parts["build_event_rows"] += t1 - t0
            parts["insert_requests"] += t2 - t1
            parts["insert_events"] += t3 - t2
            parts["commit"] += t4 - t3
    finally:
        store.close()
    total = sum(parts.values())
    rows_total = per_batch * n_rows * batches
    return {
        "synchronous": synchronous,
        "shape": f"{per_batch} x {n_rows} rows",
        "rows": rows_total,
        "rows_per_s": round(rows_total / total, 1),
        "parts": {
            k: {"seconds": round(v, 3), "share_pct": round(v / total * 100, 1),
                "us_per_row": round(v / rows_total * 1e6, 2)}
            for k, v in parts.items()
        },  # fmt: skip
    }


# --------------------------------------------------------------------------- main


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["kind"], r["shape"], r["backend"]), []).append(r)
    out = []
    for (kind, shape, backend), rs in cells.items():
        entry = {
            "kind": kind,
            "shape": shape,
            "backend": backend,
            "runs": len(rs),
            "rows_per_s_median": round(median(r["rows_per_s"] for r in rs), 1),
            "rows_per_s_all": [r["rows_per_s"] for r in rs],
            "rows_per_cpu_s_median": round(median(r["rows_per_cpu_s"] for r in rs), 1),
            "requests_per_s_median": round(median(r["requests_per_s"] for r in rs), 1),
        }
        if kind == "store":
            entry["ms_per_transaction_median"] = round(median(r["ms_per_transaction_median"] for r in rs), 2)
        else:
            entry["requests_per_commit_mean"] = round(median(r["requests_per_commit_mean"] for r in rs), 1)
            entry["wait_ms_p50_median"] = round(median(r["wait_ms_p50"] for r in rs), 2)
            entry["wait_ms_p99_median"] = round(median(r["wait_ms_p99"] for r in rs), 2)
        out.append(entry)
    return out


def tables(summary: list[dict[str, Any]]) -> str:
    store_rows = [
        [e["backend"], e["shape"], f"**{fmt_num(e['rows_per_s_median'])}**", fmt_num(e["rows_per_cpu_s_median"]),
         fmt_num(e["requests_per_s_median"]), fmt_num(e["ms_per_transaction_median"], 1),
         ", ".join(fmt_num(v) for v in e["rows_per_s_all"])]
        for e in summary if e["kind"] == "store"
    ]  # fmt: skip
    writer_rows = [
        [e["backend"], e["shape"], f"**{fmt_num(e['rows_per_s_median'])}**", fmt_num(e["requests_per_s_median"]),
         fmt_num(e["requests_per_commit_mean"], 1), fmt_num(e["wait_ms_p50_median"], 2),
         fmt_num(e["wait_ms_p99_median"], 2), ", ".join(fmt_num(v) for v in e["rows_per_s_all"])]
        for e in summary if e["kind"] == "writer"
    ]  # fmt: skip
    parts = [
        "`store.write_requests(batch)`, one transaction per batch:\n",
        markdown_table(
            ["backend", "requests x rows per transaction", "rows/s (median)", "rows per CPU-s", "requests/s",
             "ms per transaction", "rows/s, all runs"],
            store_rows,
        ),
    ]
    if writer_rows:
        parts += [
            "\n\n`GroupCommitWriter`, threads each submitting one request and waiting for its commit:\n",
            markdown_table(
                ["backend", "submitters x rows per request", "rows/s (median)", "requests/s",
                 "requests per commit", "wait p50 ms", "wait p99 ms", "rows/s, all runs"],
                writer_rows,
            ),  # fmt: skip
        ]
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.5, help="timed seconds per store run")
    ap.add_argument("--writer-seconds", type=float, default=2.5, help="seconds per writer run")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 run, short cells: a smoke test")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "ingest.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.writer_seconds = 1, 1.5, 1.5

    workdir = WORK_DIR / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    started_iso = now_iso()
    facts = machine_facts()
    pg = None
    pg_settings: dict[str, str] = {}
    backends = [sqlite_backend("FULL", workdir), sqlite_backend("NORMAL", workdir)]
    notes: list[str] = []
    if not args.no_postgres:
        try:
            pg, pg_settings = start_postgres(workdir)
            backends.append(postgres_backend(pg))
            print(f"PostgreSQL: {pg_settings}", flush=True)
        except Exception as exc:  # no server here: say so in the results, run the rest
            notes.append(f"PostgreSQL not measured: {exc}")
            print(notes[-1], flush=True)

    factories: dict[int, RequestFactory] = {}

    def factory(n_rows: int) -> RequestFactory:
        if n_rows not in factories:
            factories[n_rows] = RequestFactory(n_rows, seed=n_rows)
        return factories[n_rows]

    runs: list[dict[str, Any]] = []
    try:
        stores: dict[tuple[str, str], Store] = {}
        for b in backends:
            for shape, _, _ in STORE_SHAPES:
                stores[(b.name, shape)] = b.open_fresh(f"store-{shape}")
            for shape, _, _ in WRITER_SHAPES:
                stores[(b.name, shape)] = b.open_fresh(f"writer-{shape}")
        for run in range(1, args.runs + 1):
            order = backends[run - 1 :] + backends[: run - 1]  # rotate who goes first
            for shape, per_batch, n_rows in STORE_SHAPES:
                for b in order:
                    result = run_store(
                        stores[(b.name, shape)], factory(n_rows), per_batch, args.seconds, b.server_cpu
                    )
                    runs.append({"kind": "store", "shape": shape, "backend": b.name, "run": run,
                                 "at": now_iso(), **result})  # fmt: skip
                    print(f"store  {b.name:<13} {shape:<16} run {run}: {result['rows_per_s']:>9,.0f} rows/s "
                          f"({result['rows_per_cpu_s']:>9,.0f} per CPU-s) "
                          f"{result['requests_per_s']:>9,.0f} req/s  {result['ms_per_transaction_median']} ms/txn",
                          flush=True)  # fmt: skip
            for shape, threads, n_rows in WRITER_SHAPES:
                for b in order:
                    if b.name == "SQLite NORMAL" and n_rows == 1:
                        continue  # FULL vs PostgreSQL is the question here; keep the run short
                    result = run_writer(
                        stores[(b.name, shape)], factory(n_rows), threads, args.writer_seconds, b.server_cpu
                    )
                    runs.append({"kind": "writer", "shape": shape, "backend": b.name, "run": run,
                                 "at": now_iso(), **result})  # fmt: skip
                    print(f"writer {b.name:<13} {shape:<22} run {run}: {result['rows_per_s']:>9,.0f} rows/s "
                          f"({result['rows_per_cpu_s']:>9,.0f} per CPU-s) "
                          f"{result['requests_per_s']:>9,.0f} req/s  {result['requests_per_commit_mean']} req/commit",
                          flush=True)  # fmt: skip
        for s in stores.values():
            s.close()
    finally:
        if pg is not None:
            pg.stop()

    profile = breakdown = None
    if not args.no_profile:
        shape_batches = 2 if args.quick else 6
        breakdown = {
            "FULL": breakdown_sqlite(workdir, "FULL", 512, 100, shape_batches),
            "NORMAL": breakdown_sqlite(workdir, "NORMAL", 512, 100, shape_batches),
        }
        profile = profile_sqlite(workdir, "FULL", 512, 100, shape_batches)
    for path in workdir.glob("*.db*"):
        path.unlink(missing_ok=True)  # the databases are scratch; keep the disk tidy

    summary = summarise(runs)
    data = {
        "benchmark": "ingest",
        "started_at": started_iso,
        "finished_at": now_iso(),
        "wall_seconds": round(time.time() - started, 1),
        "machine": facts,
        "params": {
            "runs": args.runs,
            "seconds_per_store_run": args.seconds,
            "seconds_per_writer_run": args.writer_seconds,
            "features": N_FEATURES,
            "store_shapes": STORE_SHAPES,
            "writer_shapes": WRITER_SHAPES,
            "writer_settings": "service defaults: batch_max_requests=512, batch_max_wait_ms=2, queue 4096",
            "backends": {b.name: b.setting for b in backends},
            "postgresql_settings": pg_settings,
        },
        "notes": notes,
        "summary": summary,
        "breakdown": breakdown,
        "profile": profile,
        "runs": runs,
    }
    write_json(args.out, data)
    md = tables(summary)
    args.out.with_suffix(".md").write_text(md + "\n")
    print()
    print(md)
    if breakdown:
        print("\nwhere a 512 x 100-row SQLite transaction goes (us per row):")
        for sync, b in breakdown.items():
            print(f"  {sync:<6} {b['rows_per_s']:>10,.0f} rows/s  " + "  ".join(
                f"{k} {v['us_per_row']} ({v['share_pct']}%)" for k, v in b["parts"].items()))
    if profile:
        print("\ncProfile, SQLite FULL, 512 x 100 rows, top by own time:")
        for t in profile["top_by_own_time"][:10]:
            print(f"  {t['share_pct']:>5}%  {t['tottime_s']:>7.3f}s  {t['calls']:>9}  {t['function']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
