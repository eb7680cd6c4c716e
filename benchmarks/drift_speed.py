#!/usr/bin/env python
"""Drift statistics speed: loopwatch against Evidently, NannyML and Alibi Detect.

    .venv/bin/python benchmarks/drift_speed.py            # full run (~30 min), results + docs
    .venv/bin/python benchmarks/drift_speed.py --quick    # smoke test: 100k rows, 1 repeat, no doc
    .venv/bin/python benchmarks/drift_speed.py --report   # rewrite docs/benchmarks-drift.md from the JSON
    .venv/bin/python benchmarks/drift_speed.py data 1m    # only write the Parquet files of one size

What is timed (all from Parquet files on disk, 20 float64 columns, reference
and current of the same size; see docs/benchmarks-drift.md for the numbers):

* loopwatch, the five statistics per feature -- KS (statistic and p-value),
  Wasserstein, KL, Jensen-Shannon and PSI (plus Hellinger and the normed
  Wasserstein, which cost nothing extra) -- straight from ``loopwatch.stats``:
  the reference summary is ``NumericSummary.from_values`` (sorted values),
  ``quantile_edges`` and ``bin_counts``; the current file is read and each
  column sorted inside the timer, then ``ks_and_wasserstein`` (one merge),
  the asymptotic KS p-value, ``bin_counts`` and the histogram distances.
  ``precomputed``: reference summaries built before the timer; ``inside``:
  reading the reference file and building its summaries is timed too.
  ``exact`` summaries keep every reference value (what scipy agreement to
  1e-9 needs); ``summary100k`` uses the library default ``max_points=100_000``.
* loopwatch end to end: ``loopwatch.drift.compare(profile, current,
  multivariate=False, outliers=False)`` (thresholds from the stored bootstrap
  nulls included), and ``build_profile`` separately, with its per-feature
  bootstrap cost broken out.
* 10M x 20: the loopwatch statistics in a subprocess, peak RSS from
  ``/usr/bin/time -v`` and ``getrusage``.
* peers, each from its own virtualenv made by ``benchmarks/peers_setup.sh``
  (never loopwatch's): ``peers_evidently.py``, ``peers_nannyml.py``,
  ``peers_alibi.py``; one at a time, on the same files, 100k rows first, then
  1M when the 100k time says it fits the per-run budget (otherwise the 1M time
  is extrapolated linearly from 100k and marked so).

Each timed configuration runs 3 times (fewer where a peer is too slow, said in
the JSON) and the median is quoted. Results: benchmarks/results/drift_speed.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"
#: Generated data, logs and exported sources. Under .peers/ (git-ignored with it), not .work/, which other
#: benchmark runs clear.
WORK = PEERS_DIR / "_data"
RESULTS = BENCH_DIR / "results" / "drift_speed.json"
DOC = REPO / "docs" / "benchmarks-drift.md"
PYTHON = REPO / ".venv" / "bin" / "python"
if not PYTHON.exists():  # pragma: no cover
    PYTHON = Path(sys.executable)

SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
N_FEATURES = 20
DATA_TAG = b"drift-bench-v1"
SLICE = 1_000_000  # rows generated and written at a time (also the Parquet row group)

#: (peer, venv, runner, variant, run at 1M?) in the order they run. The Evidently
#: variants marked False take minutes per run at 1M (all5: ~70 s per run at 100k
#: already); to keep the whole benchmark near 35 minutes their 1M time is
#: extrapolated from 100k, as is any variant whose 100k time predicts more than
#: half the per-run timeout.
PEER_PLAN = [
    ("evidently", "evidently", "peers_evidently.py", "default", True),
    ("evidently", "evidently", "peers_evidently.py", "ks", True),
    ("evidently", "evidently", "peers_evidently.py", "wasserstein", False),
    ("evidently", "evidently", "peers_evidently.py", "all5", False),
    ("evidently", "evidently", "peers_evidently.py", "stattests", True),
    ("nannyml", "nannyml", "peers_nannyml.py", "default", True),
    ("nannyml", "nannyml", "peers_nannyml.py", "exact", True),
    ("alibi-detect", "alibi", "peers_alibi.py", "default", True),
]


# --------------------------------------------------------------------------- data


def _feature(rng: Any, i: int, n: int, current: bool) -> Any:
    """Column ``i``: five shapes (normal, lognormal, uniform, gamma, normal
    rounded to 0.01 -- ties), drifted in the current data for a third of the
    columns (location shift of ~0.05 sd on i % 3 == 0, scale x1.1 on i == 7, 13)."""
    import numpy as np

    kind = i % 5
    if kind == 0:
        x = rng.normal(0.0, 1.0, n)
    elif kind == 1:
        x = rng.lognormal(0.0, 0.75, n)
    elif kind == 2:
        x = rng.uniform(-3.0, 3.0, n)
    elif kind == 3:
        x = rng.gamma(2.0, 1.5, n)
    else:
        x = rng.normal(0.0, 1.0, n)
    if current and i % 3 == 0:
        x = x + 0.05 * (x.std() if x.size > 1 else 1.0)
    if current and i in (7, 13):
        x = (x - x.mean()) * 1.1 + x.mean()
    if kind == 4:
        x = np.round(x, 2)
    return x.astype(np.float64)


def data_paths(label: str) -> tuple[Path, Path]:
    return WORK / f"reference_{label}.parquet", WORK / f"current_{label}.parquet"


def _valid(path: Path, n: int) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:
        return False
    kv = meta.metadata or {}
    return meta.num_rows == n and meta.num_columns == N_FEATURES and kv.get(b"bench") == DATA_TAG


def ensure_data(label: str) -> tuple[Path, Path]:
    """Write reference and current Parquet files of ``label`` rows (kept between runs)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = SIZES[label]
    WORK.mkdir(parents=True, exist_ok=True)
    paths = data_paths(label)
    for side, path in zip(("reference", "current"), paths):
        if _valid(path, n):
            continue
        t0 = time.perf_counter()
        names = [f"f{i:02d}" for i in range(N_FEATURES)]
        schema = pa.schema([(c, pa.float64()) for c in names], metadata={b"bench": DATA_TAG})
        tmp = path.with_suffix(".tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, n, SLICE):
                rows = min(SLICE, n - start)
                cols = []
                for i in range(N_FEATURES):
                    # one independent stream per (size, side, column, slice): reproducible, any size
                    seed = [n, side == "current", i, start // SLICE]
                    cols.append(_feature(np.random.default_rng(seed), i, rows, side == "current"))
                writer.write_table(pa.table(dict(zip(names, cols)), schema=schema), row_group_size=SLICE)
        tmp.replace(path)
        print(f"  wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s",
              flush=True)
    return paths


# --------------------------------------------------------------------------- helpers


def median(values: list[float]) -> float | None:
    data = [v for v in values if v is not None]
    return float(statistics.median(data)) if data else None


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_json(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` under ``/usr/bin/time -v``; its last stdout line is JSON.

    Returns that JSON plus ``wall_s``, ``max_rss_mib`` (from time -v) and, on
    failure, ``error`` with the tail of stderr.
    """
    timer = shutil.which("time") or "/usr/bin/time"
    use_time = Path(timer).exists()
    full = ([timer, "-v"] if use_time else []) + argv
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env, cwd=BENCH_DIR)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timeout after {timeout:.0f} s", "timed_out": True,
                "wall_s": time.perf_counter() - t0, "stderr_tail": _tail(exc.stderr)}
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {}
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if lines:
        try:
            out = json.loads(lines[-1])
        except json.JSONDecodeError:
            out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr or "")
    if m:
        out["max_rss_mib"] = int(m.group(1)) / 1024.0
    out["wall_s"] = wall
    if proc.returncode != 0 or not lines:
        out["error"] = f"exit {proc.returncode}"
        out["stderr_tail"] = _tail(proc.stderr)
    return out


def _tail(text: Any, n: int = 1500) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text or ""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("\t", "Command being")))
    return text[-n:]


# --------------------------------------------------------------------------- which loopwatch


def _git(*argv: str) -> str:
    try:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def loopwatch_source(src: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Environment for the loopwatch workers and a record of which code they ran.

    ``worktree``: the checkout as it is (the project's editable install), with
    the list of files under src/loopwatch/stats and src/loopwatch/drift that
    differ from HEAD. Any other value is a git revision, exported to
    ``.peers/_data/src-<rev>`` and put first on PYTHONPATH, so a benchmark can
    pin the code while others edit the working tree.
    """
    env = dict(os.environ)
    info: dict[str, Any] = {"mode": src, "head": _git("rev-parse", "HEAD")}
    watched = ["src/loopwatch/stats", "src/loopwatch/drift"]
    if src == "worktree":
        info["dirty_files"] = [line for line in _git("status", "--porcelain", "--", *watched).splitlines()]
        return env, info
    commit = _git("rev-parse", src)
    if not commit:
        raise SystemExit(f"unknown git revision {src!r}")
    dest = WORK / f"src-{commit[:12]}"
    if not (dest / "src" / "loopwatch" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "src/loopwatch"], cwd=REPO, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    env["PYTHONPATH"] = str(dest / "src") + os.pathsep + env.get("PYTHONPATH", "")
    info.update({"commit": commit, "path": str(dest / "src")})
    return env, info


LW_ENV: dict[str, str] | None = None


# --------------------------------------------------------------------------- loopwatch worker


def _lw_reference(path: Path, max_points: int | None) -> dict[str, tuple[Any, Any, Any]]:
    """Per column: (NumericSummary, quantile edges, reference bin counts), as a profile keeps them."""
    import pyarrow.parquet as pq

    from loopwatch.stats.binned import bin_counts, quantile_edges
    from loopwatch.stats.sketch import NumericSummary

    table = pq.read_table(path)
    out = {}
    for name in table.column_names:
        values = table.column(name).to_numpy()
        summary = NumericSummary.from_values(values, max_points=max_points or max(2, values.size))
        edges = quantile_edges(summary, n_bins=10)
        out[name] = (summary, edges, bin_counts(summary.sorted_values, edges))
        del values
    del table
    return out


def _lw_statistics(summary: Any, edges: Any, ref_bins: Any, current_sorted: Any) -> dict[str, float]:
    """The statistics of one feature, as ``compare`` computes them but with one merge."""
    from loopwatch.stats.binned import bin_counts, hellinger, js_distance, kl_divergence, psi
    from loopwatch.stats.univariate import ks_and_wasserstein, ks_method, ks_pvalue_asymp, ks_test

    ks, w = ks_and_wasserstein(summary, current_sorted)
    if ks_method(summary.n, current_sorted.size, exact_reference=summary.exact) == "asymp":
        p = ks_pvalue_asymp(ks, summary.n, current_sorted.size)
    else:
        p = ks_test(summary, current_sorted, current_sorted=True).p_value
    cur_bins = bin_counts(current_sorted, edges)
    return {
        "ks": ks,
        "ks_p_value": p,
        "wasserstein": w,
        "wasserstein_normed": w / summary.scale,
        "kl_divergence": kl_divergence(ref_bins, cur_bins),
        "js_distance": js_distance(ref_bins, cur_bins),
        "psi": psi(ref_bins, cur_bins),
        "hellinger": hellinger(ref_bins, cur_bins),
    }


def _lw_current(reference: dict[str, tuple[Any, Any, Any]], path: Path) -> dict[str, dict[str, float]]:
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out = {}
    for name in table.column_names:
        current = np.sort(table.column(name).to_numpy())
        out[name] = _lw_statistics(*reference[name], current)
        del current
    del table
    return out


def _lw_breakdown(reference: dict[str, tuple[Any, Any, Any]], path: Path) -> dict[str, float]:
    """One extra precomputed pass, CPU seconds phase by phase (not part of the medians)."""
    import numpy as np
    import pyarrow.parquet as pq

    from loopwatch.stats.binned import bin_counts, js_distance, kl_divergence, psi
    from loopwatch.stats.univariate import ks_and_wasserstein, ks_pvalue_asymp

    phases = dict.fromkeys(("read_parquet", "to_numpy", "sort_current", "ks_wasserstein_merge", "ks_p_value",
                            "bin_counts", "histogram_distances"), 0.0)
    t = time.process_time()
    table = pq.read_table(path)
    phases["read_parquet"] = time.process_time() - t
    for name in table.column_names:
        summary, edges, ref_bins = reference[name]
        t = time.process_time()
        values = table.column(name).to_numpy()
        phases["to_numpy"] += time.process_time() - t
        t = time.process_time()
        current = np.sort(values)
        phases["sort_current"] += time.process_time() - t
        t = time.process_time()
        ks, _ = ks_and_wasserstein(summary, current)
        phases["ks_wasserstein_merge"] += time.process_time() - t
        t = time.process_time()
        ks_pvalue_asymp(ks, summary.n, current.size)
        phases["ks_p_value"] += time.process_time() - t
        t = time.process_time()
        cur_bins = bin_counts(current, edges)
        phases["bin_counts"] += time.process_time() - t
        t = time.process_time()
        kl_divergence(ref_bins, cur_bins), js_distance(ref_bins, cur_bins), psi(ref_bins, cur_bins)
        phases["histogram_distances"] += time.process_time() - t
    return phases


def _scipy_check(ref_path: Path, cur_path: Path, results: dict[str, dict[str, float]], n_features: int
                 ) -> dict[str, Any]:
    """KS statistic / p-value and Wasserstein against scipy on the raw columns (outside any timer)."""
    import pyarrow.parquet as pq
    import scipy
    from scipy import stats

    names = list(results)[:n_features]
    ref_t = pq.read_table(ref_path, columns=names)
    cur_t = pq.read_table(cur_path, columns=names)
    rows = []
    for name in names:
        ref, cur = ref_t.column(name).to_numpy(), cur_t.column(name).to_numpy()
        ks = stats.ks_2samp(ref, cur)  # method="auto": asymptotic at these sizes, as loopwatch
        w = stats.wasserstein_distance(ref, cur)
        mine = results[name]
        rows.append({
            "feature": name,
            "ks_scipy": float(ks.statistic), "ks_loopwatch": mine["ks"],
            "p_scipy": float(ks.pvalue), "p_loopwatch": mine["ks_p_value"],
            "w_scipy": float(w), "w_loopwatch": mine["wasserstein"],
            "ks_abs_diff": abs(float(ks.statistic) - mine["ks"]),
            "p_abs_diff": abs(float(ks.pvalue) - mine["ks_p_value"]),
            "w_abs_diff": abs(float(w) - mine["wasserstein"]),
            "w_rel_diff": abs(float(w) - mine["wasserstein"]) / max(abs(float(w)), 1e-300),
        })
    worst = {k: max(r[k] for r in rows) for k in ("ks_abs_diff", "p_abs_diff", "w_abs_diff", "w_rel_diff")}
    return {"scipy": scipy.__version__, "features": rows, "max": worst,
            "within_1e-9": all(v <= 1e-9 for v in worst.values())}


def _warm_up() -> None:
    """Import everything and run each code path once on small data, outside the timers."""
    import numpy as np

    from loopwatch.stats.binned import bin_counts, quantile_edges
    from loopwatch.stats.sketch import NumericSummary

    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=20_000), rng.normal(0.3, 1.0, 20_000)
    summary = NumericSummary.from_values(ref, max_points=ref.size)
    edges = quantile_edges(summary, n_bins=10)
    _lw_statistics(summary, edges, bin_counts(summary.sorted_values, edges), np.sort(cur))


def worker_loopwatch(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    import loopwatch

    ref_path, cur_path = Path(args.reference), Path(args.current)
    max_points = None if args.max_points == "exact" else int(args.max_points)
    _warm_up()
    modes = [m for m in args.modes.split(",") if m]
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    results: dict[str, dict[str, float]] = {}
    reference = None
    started = time.perf_counter()
    for rep in range(args.repeats):
        for mode in modes:
            gc.collect()
            if mode == "inside":
                reference = None
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                reference = _lw_reference(ref_path, max_points)
                results = _lw_current(reference, cur_path)
                times[mode].append(time.perf_counter() - t0)
                cpu[mode].append(time.process_time() - c0)
            else:
                if reference is None:
                    reference = _lw_reference(ref_path, max_points)
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                results = _lw_current(reference, cur_path)
                times[mode].append(time.perf_counter() - t0)
                cpu[mode].append(time.process_time() - c0)
        if rep + 1 < args.repeats and (time.perf_counter() - started) * (rep + 2) / (rep + 1) > args.budget:
            break
    out: dict[str, Any] = {
        "tool": "loopwatch",
        "loopwatch_file": loopwatch.__file__,
        "max_points": args.max_points,
        "n_reference": None, "n_current": None,
        "times": times,
        "median": {m: median(v) for m, v in times.items()},
        "cpu_times": cpu,
        "cpu_median": {m: median(v) for m, v in cpu.items()},
        "loadavg_end": os.getloadavg(),
        "peak_rss_mib_timed": peak_rss_mib(),
    }
    if reference is not None:
        any_summary = next(iter(reference.values()))[0]
        out["n_reference"] = any_summary.n
        out["summary_points"] = int(any_summary.sorted_values.size)
        out["rank_error"] = any_summary.rank_error
        out["reference_summaries_mib"] = sum(s.sorted_values.nbytes for s, _, _ in reference.values()) / 2**20
    import pyarrow.parquet as pq

    out["n_current"] = pq.ParquetFile(cur_path).metadata.num_rows
    out["n_features"] = len(results)
    out["sample"] = {name: results[name] for name in list(results)[:3]}
    if args.breakdown and reference is not None:
        out["breakdown_precomputed"] = _lw_breakdown(reference, cur_path)
    if args.scipy_features:
        out["scipy_check"] = _scipy_check(ref_path, cur_path, results, args.scipy_features)
    out["all_finite"] = bool(all(np.isfinite(list(r.values())).all() for r in results.values()))
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def worker_compare(args: argparse.Namespace) -> dict[str, Any]:
    """``build_profile`` (with its bootstrap broken out) and ``compare`` end to end."""
    import numpy as np
    import pandas as pd

    from loopwatch.drift import build_profile, compare
    from loopwatch.drift.profile import DISTANCES, NULL_SAMPLE_SIZE, numeric_values
    from loopwatch.stats.binned import bin_counts, quantile_edges
    from loopwatch.stats.calibration import bootstrap_null
    from loopwatch.stats.sketch import NumericSummary

    ref_path, cur_path = Path(args.reference), Path(args.current)
    import loopwatch

    out: dict[str, Any] = {"tool": "loopwatch.drift", "loopwatch_file": loopwatch.__file__}

    # build_profile, as compare(reference_table, ...) would run it (joint=False: no multivariate/outliers)
    build_times, build_cpu, profile = [], [], None
    for _ in range(args.repeats):
        profile = None
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        frame = pd.read_parquet(ref_path)
        numeric = [str(c) for c in frame.columns]
        profile = build_profile(frame, numeric=numeric, categorical=[], joint=False)
        build_times.append(time.perf_counter() - t0)
        build_cpu.append(time.process_time() - c0)
        del frame
    out["build_profile"] = {"times": build_times, "median": median(build_times),
                            "cpu_times": build_cpu, "cpu_median": median(build_cpu),
                            "config": profile.config if profile else None}

    # the same work split in two: summaries/edges/bins, then the per-feature bootstrap nulls
    frame = pd.read_parquet(ref_path)
    n_boot, n_bins, max_points = 100, 10, 100_000
    rng = np.random.default_rng(0)
    t_sum = t_boot = 0.0
    for name in frame.columns:
        t = time.process_time()
        summary = NumericSummary.from_values(numeric_values(frame, name), max_points=max_points)
        edges = quantile_edges(summary.sorted_values, n_bins=n_bins)
        bin_counts(summary.sorted_values, edges)
        t_sum += time.process_time() - t
        t = time.process_time()
        bootstrap_null(summary, min(summary.n, NULL_SAMPLE_SIZE), DISTANCES, rng=rng, n_boot=n_boot, n_bins=n_bins)
        t_boot += time.process_time() - t
    out["build_profile"]["breakdown_cpu"] = {"summaries_edges_bins_s": t_sum, "bootstrap_nulls_s": t_boot,
                                         "n_boot": n_boot, "null_sample_size": NULL_SAMPLE_SIZE}
    del frame

    # compare(profile, current): read the current file and compare, timed together
    cmp_times, cmp_cpu, report = [], [], None
    for _ in range(args.repeats):
        report = None
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        current = pd.read_parquet(cur_path)
        report = compare(profile, current, multivariate=False, outliers=False)
        cmp_times.append(time.perf_counter() - t0)
        cmp_cpu.append(time.process_time() - c0)
        del current
    out["compare_precomputed"] = {"times": cmp_times, "median": median(cmp_times),
                                  "cpu_times": cmp_cpu, "cpu_median": median(cmp_cpu)}

    # compare(reference_table, current): profile built inside compare (reading both files timed)
    inside_times, inside_cpu = [], []
    for _ in range(max(1, args.repeats)):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        compare(reference, current, multivariate=False, outliers=False)
        inside_times.append(time.perf_counter() - t0)
        inside_cpu.append(time.process_time() - c0)
        del reference, current
    out["compare_inside"] = {"times": inside_times, "median": median(inside_times),
                             "cpu_times": inside_cpu, "cpu_median": median(inside_cpu)}
    if report is not None:
        out["report"] = {"dataset_drift": report.dataset_drift, "drifted_features": report.drifted_features,
                         "n_reference": report.n_reference, "n_current": report.n_current}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# --------------------------------------------------------------------------- machine facts


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for key in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache", "L3 cache"):
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.M)
            if m:
                facts[key.lower().replace(" ", "_").replace("(s)", "s")] = m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    facts["nproc"] = os.cpu_count()
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
        facts["ram_gib"] = round(kb / 2**20, 1)
    except (OSError, AttributeError):
        pass
    try:
        facts["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return facts


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("loopwatch", "numpy", "scipy", "pandas", "pyarrow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def peer_versions() -> dict[str, dict[str, str]]:
    wanted = {"evidently": ("evidently", "numpy", "scipy", "pandas", "pyarrow"),
              "nannyml": ("nannyml", "numpy", "scipy", "pandas", "pyarrow", "statsmodels"),
              "alibi": ("alibi-detect", "numpy", "scipy", "pandas", "pyarrow")}
    out: dict[str, dict[str, str]] = {}
    for venv, names in wanted.items():
        freeze = PEERS_DIR / venv / "freeze.txt"
        python = PEERS_DIR / venv / "bin" / "python"
        if not python.exists():
            continue
        try:
            text = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True,
                                  timeout=120).stdout
        except (OSError, subprocess.SubprocessError):
            text = freeze.read_text() if freeze.exists() else ""
        pins = dict(line.split("==", 1) for line in text.splitlines() if "==" in line)
        lower = {k.lower().replace("_", "-"): v for k, v in pins.items()}
        out[venv] = {n: lower.get(n, "-") for n in names}
        out[venv]["torch_or_tensorflow"] = ", ".join(
            k for k in lower if k in ("torch", "tensorflow", "tensorflow-cpu", "jax")) or "none"
    return out


# --------------------------------------------------------------------------- orchestration


def lw_run(label: str, max_points: str, *, repeats: int, scipy_features: int = 0, breakdown: bool = False,
           modes: str = "inside,precomputed", timeout: float = 1200) -> dict[str, Any]:
    ref, cur = data_paths(label)
    argv = [str(PYTHON), str(Path(__file__).resolve()), "worker-loopwatch", str(ref), str(cur),
            "--max-points", max_points, "--repeats", str(repeats), "--modes", modes,
            "--scipy-features", str(scipy_features)] + (["--breakdown"] if breakdown else [])
    out = run_json(argv, timeout=timeout, env=LW_ENV)
    out["size"] = label
    return out


def peer_run(label: str, venv: str, runner: str, variant: str, *, repeats: int, budget: float,
             timeout: float, modes: str = "inside,precomputed") -> dict[str, Any]:
    ref, cur = data_paths(label)
    python = PEERS_DIR / venv / "bin" / "python"
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1", PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    progress = WORK / f"progress-{venv}-{variant}-{label}.json"
    progress.unlink(missing_ok=True)
    argv = [str(python), str(BENCH_DIR / runner), str(ref), str(cur), "--variant", variant,
            "--repeats", str(repeats), "--budget", str(budget), "--modes", modes, "--progress", str(progress)]
    out = run_json(argv, timeout=timeout, env=env)
    out["size"] = label
    if out.get("timed_out") and progress.exists():
        # keep the runs that finished before the timeout
        done = json.loads(progress.read_text())
        out["times"], out["cpu_times"] = done["times"], done["cpu_times"]
        out["median"] = {m: median(v) for m, v in done["times"].items()}
        out["cpu_median"] = {m: median(v) for m, v in done["cpu_times"].items()}
        out["repeats_done"] = min(len(v) for v in done["times"].values())
        out["peak_rss_mib"] = done.get("peak_rss_mib")
        out["partial"] = True
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _fmt_med(d: dict[str, Any]) -> str:
    med = d.get("median") or {}
    parts = [f"{m} {v:.2f}s" for m, v in med.items() if v is not None]
    if d.get("error"):
        parts.append(f"ERROR {d['error']}")
    return ", ".join(parts) + (f", rss {d.get('max_rss_mib', 0):.0f} MiB" if d.get("max_rss_mib") else "")


def run_peers(results: dict[str, Any], sizes: list[str], *, repeats: int, run_budget: float,
              timeout: float, only: set[str] | None, args_all_1m: bool = False,
              keys: set[str] | None = None) -> None:
    peers = results.setdefault("peers", {})
    for label in sizes:
        n = SIZES[label]
        for peer, venv, runner, variant, at_1m in PEER_PLAN:
            if only and venv not in only:
                continue
            key = f"{peer}:{variant}"
            if keys and key not in keys:
                continue
            if keys and label == "100k":
                peers.pop(key, None)  # a redo starts from scratch
            if not (PEERS_DIR / venv / "bin" / "python").exists():
                peers.setdefault(key, {})[label] = {"error": "peer venv missing (run peers_setup.sh)"}
                continue
            plan_repeats, modes, skip_reason = repeats, "inside,precomputed", None
            smaller = peers.get(key, {}).get("100k")
            if label != "100k" and smaller and smaller.get("median"):
                # predict this size from 100k, linearly (optimistic for the peer: n log n work grows faster)
                per_run = max(v for v in smaller["median"].values() if v is not None) * n / SIZES["100k"]
                if smaller.get("error") or per_run > timeout / 2:
                    skip_reason = (f"predicted {per_run:.0f} s per run at {label} from 100k "
                                   f"(> {timeout / 2:.0f} s): not run, extrapolated")
                elif 2 * per_run * repeats > run_budget:
                    plan_repeats = max(1, int(run_budget // (2 * per_run)))
            if label != "100k" and not at_1m and not args_all_1m:
                skip_reason = "not run at this size to bound the benchmark's time: extrapolated"
            if skip_reason:
                peers.setdefault(key, {})[label] = {"skipped": skip_reason, "size": label}
                log(f"{key} {label}: {skip_reason}")
                continue
            log(f"{key} {label}: running ({plan_repeats} repeat(s))")
            res = peer_run(label, venv, runner, variant, repeats=plan_repeats, budget=run_budget,
                           timeout=timeout, modes=modes)
            peers.setdefault(key, {})[label] = res
            log(f"{key} {label}: {_fmt_med(res)}")
            save(results)


def extrapolate(results: dict[str, Any], label: str = "1m") -> None:
    """Fill ``extrapolated`` medians at ``label`` from 100k for peers that did not run there."""
    for key, by_size in results.get("peers", {}).items():
        got = by_size.get(label) or {}
        small = by_size.get("100k") or {}
        med = got.get("median") or {}
        if med and all(v is not None for v in med.values()) and (not got.get("error") or got.get("partial")):
            continue
        if small.get("median"):
            factor = SIZES[label] / SIZES["100k"]
            by_size.setdefault(label, {})["extrapolated"] = {
                m: (v * factor if v is not None else None) for m, v in small["median"].items()}
            by_size[label]["extrapolation"] = f"linear from 100k (x{factor:.0f}); a lower bound for n log n work"


def rerun_loopwatch(results: dict[str, Any], *, repeats: int = 3) -> None:
    """loopwatch 1M exact once more, after the peers: the machine's load drifts over a run of
    half an hour, so the report pools these runs with the first ones (``1m:exact:after_peers``)."""
    log("loopwatch 1m:exact again, after the peers")
    res = lw_run("1m", "exact", repeats=repeats)
    results["loopwatch"]["1m:exact:after_peers"] = res
    log(f"loopwatch 1m:exact after peers: {_fmt_med(res)}")
    save(results)


def save(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    tmp.replace(RESULTS)


def main_run(args: argparse.Namespace) -> None:
    global LW_ENV
    t_start = time.perf_counter()
    quick = args.quick
    LW_ENV, source = loopwatch_source(args.src)
    repeats = 1 if quick else args.repeats
    sizes_peers = ["100k"] if quick else ["100k", "1m"]
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "quick": quick,
        "machine": machine_facts(),
        "versions": library_versions(),
        "n_features": N_FEATURES,
        "sizes": SIZES,
        "loopwatch_source": source,
        "loopwatch": {},
    }
    if not args.no_setup and not args.no_peers:
        log("peers: benchmarks/peers_setup.sh")
        t = time.perf_counter()
        subprocess.run(["bash", str(BENCH_DIR / "peers_setup.sh")], check=True)
        results["peers_setup_s"] = time.perf_counter() - t
    results["peer_versions"] = peer_versions()

    log("data")
    for label in (["100k"] if quick else ["100k", "1m"] + ([] if args.no_10m else ["10m"])):
        ensure_data(label)

    lw = results["loopwatch"]
    for label in (["100k"] if quick else ["100k", "1m"]):
        for mp in ("exact", "100000"):
            key = f"{label}:{'exact' if mp == 'exact' else 'summary100k'}"
            log(f"loopwatch {key}")
            lw[key] = lw_run(label, mp, repeats=repeats, scipy_features=(N_FEATURES if mp == "exact" else 3),
                             breakdown=(mp == "exact"))
            log(f"loopwatch {key}: {_fmt_med(lw[key])}")
            save(results)
    label = "100k" if quick else "1m"
    log(f"loopwatch compare()/build_profile {label}")
    ref, cur = data_paths(label)
    results["loopwatch_compare"] = run_json(
        [str(PYTHON), str(Path(__file__).resolve()), "worker-compare", str(ref), str(cur),
         "--repeats", str(repeats)], timeout=1800, env=LW_ENV)
    c = results["loopwatch_compare"]
    log("compare: " + ", ".join(f"{k} {c[k]['median']:.2f}s" for k in ("build_profile", "compare_precomputed",
                                                                          "compare_inside") if k in c))
    save(results)
    if not quick and not args.no_10m:
        for mode in ("inside", "precomputed"):
            log(f"loopwatch 10m exact, {mode}")
            lw[f"10m:exact:{mode}"] = lw_run("10m", "exact", repeats=1, modes=mode, timeout=1800)
            log(f"loopwatch 10m {mode}: {_fmt_med(lw[f'10m:exact:{mode}'])}")
            save(results)

    if not args.no_peers:
        only = set(args.peers.split(",")) if args.peers else None
        run_peers(results, sizes_peers, repeats=repeats, run_budget=args.peer_budget,
                  timeout=args.peer_timeout, only=only, args_all_1m=args.all_1m)
        if not quick:
            extrapolate(results)
            rerun_loopwatch(results, repeats=repeats)
    results["total_wall_s"] = time.perf_counter() - t_start
    results["finished"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    save(results)
    log(f"results: {RESULTS.relative_to(REPO)} ({results['total_wall_s'] / 60:.1f} min)")
    if not quick:
        import drift_report

        drift_report.write(results, DOC)
        log(f"report: {DOC.relative_to(REPO)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("worker-loopwatch", "worker-compare"):
        p = argparse.ArgumentParser()
        p.add_argument("kind")
        p.add_argument("reference")
        p.add_argument("current")
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--max-points", default="exact")
        p.add_argument("--modes", default="inside,precomputed")
        p.add_argument("--scipy-features", type=int, default=0)
        p.add_argument("--breakdown", action="store_true")
        p.add_argument("--budget", type=float, default=600.0)
        a = p.parse_args()
        out = worker_loopwatch(a) if a.kind == "worker-loopwatch" else worker_compare(a)
        print(json.dumps(out, default=float))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "data":
        for label in sys.argv[2:] or ["100k", "1m"]:
            ensure_data(label)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100k rows only, 1 repeat, no doc")
    p.add_argument("--report", action="store_true", help="only rewrite the doc from the JSON")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--no-setup", action="store_true", help="do not run peers_setup.sh")
    p.add_argument("--no-10m", action="store_true")
    p.add_argument("--peers", default="", help="comma list of peer venvs to run (evidently,nannyml,alibi)")
    p.add_argument("--peer-timeout", type=float, default=600.0, help="seconds for one peer subprocess")
    p.add_argument("--peer-budget", type=float, default=300.0, help="seconds of repeats per peer run")
    p.add_argument("--all-1m", action="store_true", help="run every peer variant at 1M (adds ~30 min)")
    p.add_argument("--src", default="worktree",
                   help="loopwatch code to time: 'worktree' (default) or a git revision such as HEAD")
    p.add_argument("--rerun-loopwatch", action="store_true",
                   help="add the after-peers loopwatch 1M runs to an existing JSON, then rewrite the doc")
    p.add_argument("--redo-peers", default="",
                   help="comma list of peer:variant (e.g. nannyml:exact) to run again into the existing JSON")
    a = p.parse_args()
    if a.redo_peers:
        results = json.loads(RESULTS.read_text())
        keys = set(a.redo_peers.split(","))
        run_peers(results, ["100k", "1m"], repeats=a.repeats, run_budget=a.peer_budget, timeout=a.peer_timeout,
                  only=None, args_all_1m=a.all_1m, keys=keys)
        extrapolate(results)
        results.setdefault("redone", []).append({"peers": sorted(keys), "at": datetime.now(timezone.utc)
                                                 .replace(microsecond=0).isoformat()})
        save(results)
        import drift_report

        drift_report.write(results, DOC)
        return
    if a.rerun_loopwatch:
        global LW_ENV
        results = json.loads(RESULTS.read_text())
        src = results.get("loopwatch_source", {})
        LW_ENV, _ = loopwatch_source(src.get("commit") or src.get("mode") or a.src)
        rerun_loopwatch(results, repeats=a.repeats)
        import drift_report

        drift_report.write(results, DOC)
        return
    if a.report:
        import drift_report

        drift_report.write(json.loads(RESULTS.read_text()), DOC)
        print(DOC)
        return
    main_run(a)


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    main()
