"""Micro-benchmark of the drift statistics core (not a test).

KS (statistic and asymptotic p-value), Wasserstein, KL, Jensen-Shannon and PSI
for ``--features`` numeric features of ``--rows`` reference and ``--rows``
current rows each. The reference side is a profile built beforehand, as in
production (a NumericSummary, its quantile edges and bin counts; not timed);
the timed part sorts each current column once and computes all five
statistics from it. Prints the median wall time of ``--runs`` runs, and checks
one feature's KS and Wasserstein against scipy on the same arrays.

    .venv/bin/python benchmarks/bench_stats_core.py                   # 1M x 20, default summaries
    .venv/bin/python benchmarks/bench_stats_core.py --max-points 1000000   # exact references
    .venv/bin/python benchmarks/bench_stats_core.py --threads 2            # features in parallel
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import stats

from loopwatch.stats.binned import bin_counts, js_distance, kl_divergence, psi, quantile_edges
from loopwatch.stats.sketch import NumericSummary
from loopwatch.stats.univariate import ks_and_wasserstein, ks_pvalue


def make_feature(rng: np.random.Generator, j: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    kind = j % 4
    if kind == 0:
        return rng.normal(size=n), rng.normal(0.01, 1.0, size=n)
    if kind == 1:
        return rng.lognormal(size=n), rng.lognormal(0.0, 1.02, size=n)
    if kind == 2:
        return rng.uniform(size=n), rng.uniform(size=n)
    return rng.poisson(5.0, size=n).astype(float), rng.poisson(5.1, size=n).astype(float)


Profile = tuple[NumericSummary, np.ndarray, np.ndarray]


def one_feature(profile: Profile, current: np.ndarray) -> dict[str, float]:
    summary, edges, ref_counts = profile
    cur = np.sort(current)  # once per feature, shared by every statistic
    ks, w = ks_and_wasserstein(summary, cur)
    cur_counts = bin_counts(cur, edges)
    return {
        "ks": ks,
        "ks_p": ks_pvalue(ks, summary, cur),
        "wasserstein": w,
        "kl": kl_divergence(ref_counts, cur_counts),
        "js": js_distance(ref_counts, cur_counts),
        "psi": psi(ref_counts, cur_counts),
    }


def run_once(profiles: list[Profile], currents: list[np.ndarray], threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    if threads > 1:
        # numpy releases the GIL in sort, searchsorted and ufuncs, so features run in parallel
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one_feature, profiles, currents))
    else:
        for profile, current in zip(profiles, currents):
            one_feature(profile, current)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-points", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-scipy-check", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    profiles, currents = [], []
    build = time.perf_counter()
    for j in range(args.features):
        reference, current = make_feature(rng, j, args.rows)
        summary = NumericSummary.from_values(reference, max_points=args.max_points)
        edges = quantile_edges(summary)
        profiles.append((summary, edges, summary.bin_counts(edges)))
        currents.append(current)
    build = time.perf_counter() - build

    runs = [run_once(profiles, currents, args.threads) for _ in range(args.runs)]
    times, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"{args.features} features x {args.rows:,} reference and {args.rows:,} current rows; "
          f"reference points per feature: {profiles[0][0].sorted_values.size:,} "
          f"(rank error {profiles[0][0].rank_error:g})")
    print(f"profiles built in {build:.2f} s (not timed)")
    print(f"KS+Wasserstein+KL+JS+PSI, current sorted inside, {args.threads} thread(s): "
          f"runs {', '.join(f'{t:.2f}' for t in times)} s; median {statistics.median(times):.2f} s "
          f"(CPU median {statistics.median(cpus):.2f} s; machine load average {os.getloadavg()[0]:.1f})")

    if not args.no_scipy_check:
        summary = profiles[0][0]
        cur = np.sort(currents[0])
        ks, w = ks_and_wasserstein(summary, cur)
        ks_ref = stats.ks_2samp(summary.sorted_values, cur).statistic
        w_ref = stats.wasserstein_distance(summary.sorted_values, cur)
        print(f"feature 0 vs scipy on the same arrays: |dKS| = {abs(ks - ks_ref):.1e}, |dW| = {abs(w - w_ref):.1e}")
        assert abs(ks - ks_ref) <= 1e-9 and abs(w - w_ref) <= 1e-9


if __name__ == "__main__":
    main()
