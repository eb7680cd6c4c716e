"""What ``loopwatch.client`` costs the service that logs through it.

    .venv/bin/python benchmarks/bench_client.py            # 3 runs, 20,000 calls per cell
    .venv/bin/python benchmarks/bench_client.py --quick    # 1 run, 5,000 calls
    .venv/bin/python benchmarks/bench_client.py --url http://127.0.0.1:8000 --model NAME

Two measurements, in the caller's own process:

``cpu``
    CPU time of the calling thread (``time.thread_time``) per ``log_prediction`` of a
    20-feature row, with a prediction, probabilities, a model version and a latency: what a
    request handler pays. The background thread's CPU (serialising and sending) is reported
    apart, as the process's CPU per prediction (``time.process_time``) once every batch is
    delivered.

``caller``
    A request loop that does 200 µs of its own work (a stand-in for a model) and then logs,
    timed per call with ``perf_counter``: p50 and p99 with no client at all, with the client
    sending to a service that is up, and with the client pointed at a port where nothing
    listens (loopwatch down). The modes are interleaved in each run so drift in the machine's
    load hits each alike; the median over runs is reported.

"Up" is a small HTTP sink in its own process that answers the events route as the contract
says (only the caller's side is measured here), or a real loopwatch with ``--url``.

Writes ``benchmarks/results/client.json`` and ``benchmarks/results/client.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import RESULTS_DIR, free_port, machine_facts, now_iso, write_json  # noqa: E402

from loopwatch.client import Client  # noqa: E402

FEATURES = 20
WORK_SECONDS = 200e-6

SINK = textwrap.dedent("""
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args):
            pass
        def do_POST(self):
            events = json.loads(self.rfile.read(int(self.headers["Content-Length"]))).get("events", [])
            raw = json.dumps({"model": "m", "accepted": len(events), "duplicates": 0, "versions": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
""")


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{f"f{j}": (rng.randint(1, 9) if j < 5 else round(rng.gauss(0, 1), 6)) for j in range(FEATURES)}
            for _ in range(n)]


def _work(row: dict[str, Any]) -> float:
    """About WORK_SECONDS of the caller's own computation, as a model would spend."""
    until = time.perf_counter() + WORK_SECONDS
    total = 0.0
    while time.perf_counter() < until:
        total += sum(v for v in row.values())
    return total


def measure_cpu(url: str, model: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    client = Client(url=url, max_buffered=len(rows) + 1, flush_interval=0.2)
    process_before = time.process_time()
    thread_before = time.thread_time()
    for i, row in enumerate(rows):
        client.log_prediction(model=model, features=row, prediction=i % 2,
                              probabilities={"0": 0.3, "1": 0.7}, model_version="ext-1", latency_ms=1.25)
    thread_cpu = time.thread_time() - thread_before
    delivered = client.flush(timeout=120)
    process_cpu = time.process_time() - process_before
    stats = client.close(timeout=5)
    return {
        "caller_cpu_us_per_prediction": thread_cpu / len(rows) * 1e6,
        "process_cpu_us_per_prediction": process_cpu / len(rows) * 1e6,
        "delivered": float(delivered and stats.sent == len(rows)),
    }


def measure_caller(mode: str, url: str, model: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    client = None if mode == "no client" else Client(url=url, flush_interval=0.2)
    durations = []
    for i, row in enumerate(rows):
        started = time.perf_counter()
        prediction = _work(row)
        if client is not None:
            client.log_prediction(model=model, features=row, prediction=prediction, latency_ms=0.2)
        durations.append(time.perf_counter() - started)
        if i % 100 == 99:
            time.sleep(0.002)  # gaps between requests, as a live service has, when the sender runs
    dropped = 0
    if client is not None:
        client.flush(timeout=30 if mode == "up" else 0.1)
        dropped = client.close(timeout=1 if mode == "up" else 0.1).dropped
    quantiles = statistics.quantiles(durations, n=100)
    return {"p50_us": quantiles[49] * 1e6, "p99_us": quantiles[98] * 1e6, "dropped": float(dropped)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", default=None, help="A running loopwatch (default: a sink in its own process).")
    parser.add_argument("--model", default="bench-client")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "client.json",
                        help="The JSON results (the Markdown table goes beside it).")
    args = parser.parse_args()
    runs, calls = (1, 5_000) if args.quick else (3, 20_000)
    rows = _rows(calls, seed=0)
    started_at, wall_start = now_iso(), time.monotonic()

    sink = None
    url = args.url
    if url is None:
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
        url = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
    down = f"http://127.0.0.1:{free_port()}"
    results: dict[str, list[dict[str, float]]] = {"cpu": [], "no client": [], "up": [], "down": []}
    try:
        for run in range(runs):
            results["cpu"].append(measure_cpu(url, args.model, rows))
            modes = ["no client", "up", "down"]
            random.Random(run).shuffle(modes)
            for mode in modes:
                results[mode].append(measure_caller(mode, down if mode == "down" else url, args.model, rows))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    summary = {
        "caller_cpu_us_per_prediction": med("cpu", "caller_cpu_us_per_prediction"),
        "process_cpu_us_per_prediction": med("cpu", "process_cpu_us_per_prediction"),
        "caller": {mode: {"p50_us": med(mode, "p50_us"), "p99_us": med(mode, "p99_us"), "dropped": med(mode, "dropped")}
                   for mode in ("no client", "up", "down")},
    }
    data = {"started_at": started_at, "finished_at": now_iso(), "wall_seconds": time.monotonic() - wall_start,
            "machine": machine_facts(), "runs": runs, "calls": calls,
            "features": FEATURES, "target": url if args.url else "sink", "summary": summary, "raw": results}
    write_json(args.out, data)
    lines = [
        f"Caller CPU per logged prediction: **{summary['caller_cpu_us_per_prediction']:.1f} µs** (target ≤ 50); "
        f"the whole process, sending included: {summary['process_cpu_us_per_prediction']:.1f} µs.",
        "",
        "| client | p50 µs | p99 µs | dropped |",
        "| --- | --- | --- | --- |",
        *(f"| {mode} | {c['p50_us']:.0f} | {c['p99_us']:.0f} | {c['dropped']:.0f} |"
          for mode, c in summary["caller"].items()),
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
