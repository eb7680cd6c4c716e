#!/usr/bin/env python
"""Candidate speedups for loopwatch's drift statistics, measured on copies (src/ untouched).

    .venv/bin/python benchmarks/drift_variants.py [--size 1m] [--repeats 3]

Each candidate is a function defined here (or a monkeypatch applied to this
process only) next to the library's current code, timed on the same Parquet
files as benchmarks/drift_speed.py (run that first, or ``drift_speed.py data
1m``), and checked to give the same numbers. Writes
benchmarks/results/drift_variants.json; the findings are summarised in
docs/benchmarks-drift.md.

Candidates:

1. ``pvalue_fast``: when ``n D^2 >= 12`` (``n = round(n_ref n_cur / (n_ref +
   n_cur))``) the p-value is below ``2 exp(-24) = 7.6e-11``
   (Dvoretzky-Kiefer-Wolfowitz-Massart), so the Kolmogorov limit
   ``scipy.special.kolmogorov(sqrt(n) D)`` (constant time, also below that
   bound) differs from scipy's ``kstwo.sf`` by less than 7.6e-11 in absolute
   terms. Up to commit bd7541f loopwatch called ``kstwo.sf``, whose exact
   Smirnov sum takes ~0.4 s per drifted feature at n = 500,000; since commit
   2f5b804 loopwatch sums it vectorised (``_smirnov_sf``, ~17 ms), so what is
   measured here is the gain left over that.
2. ``one_merge_in_compare``: ``compare`` computes ``ks_test`` and then
   ``wasserstein`` on the same sorted arrays, merging them twice;
   ``ks_and_wasserstein`` gives both from one merge.
3. ``argsort_merge``: the merge in ``_merged_cdf_difference`` via a stable
   argsort of the concatenation (timsort merges the two sorted runs in linear
   time) instead of ``searchsorted`` plus scatters.
4. ``threads2``: the per-feature work on a 2-thread pool (numpy's sort and
   searchsorted and scipy's special functions release the GIL).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from scipy import special
from scipy import stats as sps

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import drift_speed  # noqa: E402


def _pin_source() -> None:
    """``--src REV``: re-run this script with that revision of loopwatch first on PYTHONPATH."""
    if "--src" not in sys.argv or os.environ.get("DRIFT_VARIANTS_PINNED"):
        return
    rev = sys.argv[sys.argv.index("--src") + 1]
    if rev == "worktree":
        return
    env, _ = drift_speed.loopwatch_source(rev)
    env["DRIFT_VARIANTS_PINNED"] = rev
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


_pin_source()
from loopwatch.stats import univariate as uni  # noqa: E402
from loopwatch.stats.binned import bin_counts, hellinger, js_distance, kl_divergence, psi  # noqa: E402

OUT = BENCH_DIR / "results" / "drift_variants.json"
FAST_PATH_MIN_ND2 = 12.0


def ks_pvalue_fast(statistic: float, n_reference: int, n_current: int) -> float:
    """``ks_pvalue_asymp`` with a constant-time far tail (candidate 1)."""
    m, n = sorted([float(n_reference), float(n_current)], reverse=True)
    en = float(np.round(m * n / (m + n)))
    if en * statistic * statistic >= FAST_PATH_MIN_ND2:
        return float(np.clip(special.kolmogorov(math.sqrt(en) * statistic), 0.0, 1.0))
    return uni.ks_pvalue_asymp(statistic, n_reference, n_current)


def merged_cdf_difference_argsort(ref: np.ndarray, cur: np.ndarray):
    """Same output as ``univariate._merged_cdf_difference`` (candidate 3)."""
    n, m = ref.size, cur.size
    both = np.concatenate((ref, cur))
    order = np.argsort(both, kind="stable")  # ties: reference first, as searchsorted(side="left") puts them
    merged = both[order]
    is_ref = order < n
    n_ref = np.cumsum(is_ref)
    n_cur = np.arange(1, n + m + 1) - n_ref
    last = np.empty(n + m, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    return merged, n_ref / n - n_cur / m, last


def ks_w_argsort(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    merged, diff, last = merged_cdf_difference_argsort(ref, cur)
    absdiff = np.abs(diff)
    return float(np.max(absdiff, where=last, initial=0.0)), float(np.sum(absdiff[:-1] * np.diff(merged)))


def feature_stats(summary, edges, ref_bins, cur, *, pvalue=uni.ks_pvalue_asymp, ksw=None) -> dict[str, float]:
    if ksw is None:
        ks, w = uni.ks_and_wasserstein(summary, cur)
    else:
        ks, w = ksw(summary.sorted_values, cur)
    p = pvalue(ks, summary.n, cur.size)
    cur_bins = bin_counts(cur, edges)
    return {"ks": ks, "ks_p_value": p, "wasserstein": w, "kl_divergence": kl_divergence(ref_bins, cur_bins),
            "js_distance": js_distance(ref_bins, cur_bins), "psi": psi(ref_bins, cur_bins),
            "hellinger": hellinger(ref_bins, cur_bins)}


def timed(fn, repeats: int) -> tuple[dict[str, Any], Any]:
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "walls": walls, "cpus": cpus}, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", default="worktree", help="'worktree' or a git revision (as drift_speed.py)")
    args = parser.parse_args()
    ref_path, cur_path = drift_speed.ensure_data(args.size)
    reference = drift_speed._lw_reference(ref_path, None)  # exact summaries, as drift_speed's "exact"
    names = list(reference)
    import loopwatch

    out: dict[str, Any] = {"size": args.size, "repeats": args.repeats, "loadavg_start": os.getloadavg(),
                           "src": args.src, "loopwatch_file": loopwatch.__file__}

    def run(pvalue=uni.ks_pvalue_asymp, ksw=None, threads=1):
        table = pq.read_table(cur_path)

        def one(name):
            return name, feature_stats(*reference[name], np.sort(table.column(name).to_numpy()),
                                       pvalue=pvalue, ksw=ksw)

        if threads == 1:
            return dict(map(one, names))
        with ThreadPoolExecutor(threads) as pool:
            return dict(pool.map(one, names))

    variants = {
        "baseline": {},
        "pvalue_fast": {"pvalue": ks_pvalue_fast},
        "argsort_merge": {"ksw": ks_w_argsort},
        "pvalue_fast+argsort_merge": {"pvalue": ks_pvalue_fast, "ksw": ks_w_argsort},
        "threads2": {"threads": 2},
        "pvalue_fast+threads2": {"pvalue": ks_pvalue_fast, "threads": 2},
    }
    timings, values = {}, {}
    # interleave the variants repeat by repeat, so load changes hit all of them
    for _ in range(args.repeats):
        for name, kw in variants.items():
            t, v = timed(lambda kw=kw: run(**kw), 1)
            timings.setdefault(name, {"walls": [], "cpus": []})
            timings[name]["walls"] += t["walls"]
            timings[name]["cpus"] += t["cpus"]
            values[name] = v
    for name, t in timings.items():
        t["wall"], t["cpu"] = statistics.median(t["walls"]), statistics.median(t["cpus"])
    base = values["baseline"]
    diffs = {}
    for name, v in values.items():
        diffs[name] = {k: max(abs(v[f][k] - base[f][k]) for f in names) for k in base[names[0]]}
    out["precomputed_20_features"] = {"timings": timings, "max_abs_diff_vs_baseline": diffs}

    # the p-value alone: per-feature CPU, and agreement with scipy's ks_2samp on every feature
    ks_vals = {f: values["baseline"][f]["ks"] for f in names}
    n = reference[names[0]][0].n
    ncur = pq.ParquetFile(cur_path).metadata.num_rows
    per = []
    for f in names:
        c0 = time.process_time()
        p_old = uni.ks_pvalue_asymp(ks_vals[f], n, ncur)
        c1 = time.process_time()
        p_new = ks_pvalue_fast(ks_vals[f], n, ncur)
        c2 = time.process_time()
        en = round(n * ncur / (n + ncur))
        per.append({"feature": f, "ks": ks_vals[f], "n_d2": en * ks_vals[f] ** 2, "p_scipy_path": p_old,
                    "p_fast": p_new, "cpu_scipy_path_s": c1 - c0, "cpu_fast_s": c2 - c1,
                    "abs_diff": abs(p_old - p_new)})
    out["pvalue_per_feature"] = per
    # worst case of the fast path over a grid of sizes and statistics at and beyond the cut
    grid = []
    for en in (20_000, 50_000, 200_000, 500_000, 1_000_000, 5_000_000):
        for nd2 in (FAST_PATH_MIN_ND2, 13.0, 15.0, 20.0, 50.0, 200.0, 369.0):
            d = math.sqrt(nd2 / en)
            exact = float(sps.kstwo.sf(d, en))
            fast = float(special.kolmogorov(math.sqrt(en) * d))
            grid.append({"n": en, "n_d2": nd2, "scipy": exact, "fast": fast, "abs_diff": abs(exact - fast)})
    out["pvalue_fast_path_grid"] = {"max_abs_diff": max(g["abs_diff"] for g in grid), "points": grid}

    # compare(): its two merges per feature against one, on a copy of _numeric_statistics
    import pandas as pd

    import importlib

    from loopwatch.drift import build_profile, compare

    compare_mod = importlib.import_module("loopwatch.drift.compare")  # the module, not the function

    frame = pd.read_parquet(ref_path)
    profile = build_profile(frame, numeric=list(frame.columns), categorical=[], joint=False)
    del frame
    current = pd.read_parquet(cur_path)
    original = compare_mod._numeric_statistics

    def one_merge(profile_part, name, values, *, pvalue=uni.ks_pvalue_asymp):
        summary = profile_part.numeric[name]
        cur = np.sort(values[~np.isnan(values)])
        edges, ref_bins = profile_part.edges[name], profile_part.bins[name]
        res: dict[str, Any] = {"kind": "numeric", "n_current": int(cur.size), "n_reference": summary.n}
        if cur.size == 0:
            res["empty"] = True
            return res
        d, w = uni.ks_and_wasserstein(summary, cur)
        mode = uni.ks_method(summary.n, cur.size, exact_reference=summary.exact)
        p = pvalue(d, summary.n, cur.size) if mode == "asymp" else uni.ks_test(summary, cur, current_sorted=True).p_value
        cur_bins = bin_counts(cur, edges)
        res["tests"] = {"ks": uni.TestResult(d, p)}
        res["distances"] = {"wasserstein": w, "wasserstein_normed": w / summary.scale,
                            "kl_divergence": kl_divergence(ref_bins, cur_bins),
                            "js_distance": js_distance(ref_bins, cur_bins), "psi": psi(ref_bins, cur_bins),
                            "hellinger": hellinger(ref_bins, cur_bins)}
        res["null"] = profile_part.nulls[name]
        res["distribution"] = {"edges": edges.tolist(), "reference": ref_bins.tolist(),
                               "current": cur_bins.tolist(), "range": [summary.minimum, summary.maximum]}
        return res

    cmp_variants = {
        "compare_baseline": original,
        "compare_one_merge": one_merge,
        "compare_one_merge+pvalue_fast": lambda a, b, c: one_merge(a, b, c, pvalue=ks_pvalue_fast),
    }
    cmp_t: dict[str, Any] = {}
    reports = {}
    try:
        for _ in range(args.repeats):
            for name, fn in cmp_variants.items():
                compare_mod._numeric_statistics = fn
                t, rep = timed(lambda: compare(profile, current, multivariate=False, outliers=False), 1)
                cmp_t.setdefault(name, {"walls": [], "cpus": []})
                cmp_t[name]["walls"] += t["walls"]
                cmp_t[name]["cpus"] += t["cpus"]
                reports[name] = rep
    finally:
        compare_mod._numeric_statistics = original
    for t in cmp_t.values():
        t["wall"], t["cpu"] = statistics.median(t["walls"]), statistics.median(t["cpus"])
    same = {}
    base_rep = reports["compare_baseline"]
    for name, rep in reports.items():
        worst = 0.0
        for f, fd in base_rep.features.items():
            for k, v in fd.statistics.items():
                a = v.statistic if hasattr(v, "statistic") else v
                b = rep.features[f].statistics[k]
                b = b.statistic if hasattr(b, "statistic") else b
                worst = max(worst, abs(a - b))
                if hasattr(v, "p_value"):
                    worst = max(worst, abs(v.p_value - rep.features[f].statistics[k].p_value))
        same[name] = {"max_abs_diff": worst, "same_decisions": rep.drifted_features == base_rep.drifted_features}
    out["compare_1m"] = {"timings": cmp_t, "agreement": same}
    out["loadavg_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, default=float))
    for name, t in timings.items():
        print(f"{name:28s} wall {t['wall']:6.2f} s  cpu {t['cpu']:6.2f} s  max|diff| "
              f"{max(diffs[name].values()):.1e}")
    for name, t in cmp_t.items():
        print(f"{name:28s} wall {t['wall']:6.2f} s  cpu {t['cpu']:6.2f} s  {same[name]}")
    print("fast-path grid max |p - scipy|:", out["pvalue_fast_path_grid"]["max_abs_diff"])
    print(OUT)


if __name__ == "__main__":
    main()
