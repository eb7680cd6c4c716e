"""Where does a loaded server spend its CPU? py-spy on ``loopwatch serve`` under wrk.

    python3 -m venv benchmarks/.venv-tools && benchmarks/.venv-tools/bin/pip install py-spy
    .venv/bin/python benchmarks/profile_service.py --rows 100 [--seconds 12] [--logging on|off|both]

Starts one single-worker server (same launcher and model as bench_predict.py),
drives it with wrk + predict.lua, and samples it with py-spy (on-CPU samples,
native frames off, 100 Hz, ``--gil``: only the thread holding the GIL is sampled, so shares are shares of the one core a single worker can use for Python). Prints, per logging setting, the share of samples
per thread and the functions with the largest inclusive share, and writes the
collapsed stacks to ``benchmarks/.work/profile/`` (flame-graph input) and a
summary to ``benchmarks/results/profile_service.json``.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, RESULTS_DIR, WORK_DIR, Service, write_json  # noqa: E402
from bench_predict import LUA, MODEL, copy_database, ensure_wrk, train_template, write_bodies  # noqa: E402

PY_SPY = BENCH_DIR / ".venv-tools" / "bin" / "py-spy"

#: Stack substrings that name what a sample was doing, most specific first.
BUCKETS = [
    ("writer: build event rows (JSON per row)", "_event_rows"),
    ("writer: INSERT events (executemany)", "_insert_events"),
    ("writer: COMMIT", "_transaction"),
    ("writer: fingerprint id", "fingerprint.py"),
    ("writer: other", "writer.py"),
    ("model: predict_proba (sklearn)", "predict_proba"),
    ("validate rows", "validate_rows"),
    ("predict: body hash", "body_sha256"),
    ("predict: other", "prediction.py"),
    ("event loop: routing, body parsing, responses (fastapi/pydantic)", "fastapi/"),
    ("HTTP (uvicorn/h11)", "uvicorn/"),
    ("asyncio loop", "asyncio/"),
]


def bucket(stack: str) -> str:
    for name, needle in BUCKETS:
        if needle in stack:
            return name
    return "other"


def analyse(collapsed: Path) -> dict[str, Any]:
    by_thread: collections.Counter[str] = collections.Counter()
    by_bucket: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        by_thread[frames[0]] += count
        by_bucket[bucket(stack)] += count
        for frame in set(f.split(" (")[0] for f in frames[1:]):
            inclusive[frame] += count

    def share(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(v / total * 100, 1)) for k, v in counter.most_common(n)]

    return {
        "samples": total,
        "by_thread_pct": share(by_thread, 8),
        "by_activity_pct": share(by_bucket, 20),
        "top_inclusive_pct": share(inclusive, 25),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--logging", choices=["on", "off", "both"], default="both")
    args = ap.parse_args(argv)
    if not PY_SPY.exists():
        raise SystemExit(f"py-spy not found at {PY_SPY}; see this script's docstring")
    wrk = ensure_wrk()
    workdir = WORK_DIR / "profile"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    template, rows = train_template(workdir)
    body = write_bodies(workdir, rows, [args.rows])[args.rows]
    results = {}
    for side in (["on", "off"] if args.logging == "both" else [args.logging]):
        db = workdir / f"{side}.db"
        copy_database(template, db)
        with Service(str(db), workers=1, logging_enabled=side == "on", home=workdir,
                     log_path=workdir / f"{side}.log") as svc:  # fmt: skip
            assert svc.process is not None
            url = f"{svc.url}/v1/models/{MODEL}/predict"
            wrk_argv = [wrk, "-t2", "-c32", "--timeout", "30s", "-s", str(LUA), url, "--", str(body)]
            # load the model with one request first (32 concurrent first requests would each load it)
            gentle = [wrk, "-t1", "-c1", "-d2s", "--timeout", "30s", "-s", str(LUA), url, "--", str(body)]
            subprocess.run([*gentle, f"gentle{side}"], capture_output=True, check=True)
            subprocess.run([*wrk_argv[:1], "-d3s", *wrk_argv[1:], f"warm{side}"], capture_output=True, check=True)
            load = subprocess.Popen([*wrk_argv[:1], f"-d{args.seconds + 4:g}s", *wrk_argv[1:], f"prof{side}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            time.sleep(1.0)
            collapsed = workdir / f"service-{side}-{args.rows}rows.txt"
            subprocess.run(
                [str(PY_SPY), "record", "--pid", str(svc.process.pid), "--format", "raw", "--rate", "100",
                 "--duration", f"{int(args.seconds)}", "--threads", "--gil", "--output", str(collapsed), "--nonblocking"],
                check=True, capture_output=True,
            )  # fmt: skip
            out, _ = load.communicate(timeout=args.seconds + 60)
        results[side] = analyse(collapsed)
        results[side]["wrk_requests_per_s"] = next(
            (float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec:")), None
        )
        print(f"\n=== logging {side}, {args.rows}-row requests: {results[side]['wrk_requests_per_s']} req/s, "
              f"{results[side]['samples']} samples")  # fmt: skip
        for title in ("by_thread_pct", "by_activity_pct", "top_inclusive_pct"):
            print(f"  {title}:")
            for name, pct in results[side][title]:
                print(f"    {pct:5.1f}%  {name}")
    write_json(RESULTS_DIR / "profile_service.json", {"rows": args.rows, "seconds": args.seconds, **results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
