"""Power of loopwatch's numeric drift decisions beside scipy's own two-sample tests.

For each sample size n (per side) and mean shift d (in standard deviations),
``--reps`` seeded repetitions draw a reference N(0, 1) and a current
N(d, 1) of n rows each and record how often each method says "drift" at
alpha = 0.05:

* loopwatch ``compare`` on one numeric feature, univariate only
  (``multivariate=False, outliers=False``, so the whole alpha goes to the
  feature), decided by ``ks``, ``wasserstein_normed`` or ``psi``; every
  loopwatch decision includes the practical threshold (Wasserstein of at
  least max(0.1 sd, the reference band at 1,000 rows));
* loopwatch ``ks`` with the practical threshold switched off
  (``practical_thresholds={"wasserstein_normed": 0}``);
* ``scipy.stats.ks_2samp`` (p < 0.05);
* ``scipy.stats.anderson_ksamp`` (p < 0.05; scipy caps its p-value to
  [0.001, 0.25], which does not matter at 0.05).

Shift 0 is the false-alarm rate. A rate is over the repetitions loopwatch
completed; a repetition it refused (an error) is counted apart. Run from the
repository root:

    .venv/bin/python benchmarks/power_table.py --reps 100 --workers 2
    .venv/bin/python benchmarks/power_table.py --reps 1000 --sizes 500 1000 5000 --shifts 0

and it prints a Markdown table (the ones in docs/quality.md).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy import stats

SIZES = (500, 1_000, 5_000, 10_000, 50_000)
SHIFTS = (0.0, 0.05, 0.1, 0.2)
METHODS = ("ks", "wasserstein_normed", "psi", "ks_no_gate", "scipy_ks_2samp", "scipy_anderson_ksamp")
ALPHA = 0.05


def one(task: tuple[int, float, int]) -> dict[str, bool | None]:
    """Each method's verdict on one seeded pair; ``None`` when loopwatch refused the data."""
    from threadpoolctl import threadpool_limits

    from loopwatch.drift import build_profile, compare
    from loopwatch.errors import LoopwatchError

    n, shift, rep = task
    rng = np.random.default_rng([n, int(shift * 1000), rep])
    ref, cur = rng.normal(size=n), rng.normal(shift, 1.0, size=n)
    out: dict[str, bool | None] = {}
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        profile = build_profile(pd.DataFrame({"x": ref}), numeric=["x"], categorical=[], joint=False, seed=rep)
        current = pd.DataFrame({"x": cur})
        runs = {d: {"numeric_test": d} for d in ("ks", "wasserstein_normed", "psi")}
        runs["ks_no_gate"] = {"practical_thresholds": {"wasserstein_normed": 0.0}}
        for method, options in runs.items():
            try:
                report = compare(profile, current, multivariate=False, outliers=False, alpha=ALPHA, **options)
                out[method] = report.features["x"].drift
            except LoopwatchError:
                out[method] = None
    out["scipy_ks_2samp"] = bool(stats.ks_2samp(ref, cur).pvalue < ALPHA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the capped p-value warning
        out["scipy_anderson_ksamp"] = bool(stats.anderson_ksamp([ref, cur]).pvalue < ALPHA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS))
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the rates as JSON here.")
    args = parser.parse_args()
    started = time.perf_counter()
    tasks = [(n, d, r) for n in args.sizes for d in args.shifts for r in range(args.reps)]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(one, tasks, chunksize=10))
    rates: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, int]] = {}
    for (n, d, _), result in zip(tasks, results):
        hits = rates.setdefault(f"{n}|{d}", dict.fromkeys(METHODS, 0.0))
        failed = errors.setdefault(f"{n}|{d}", dict.fromkeys(METHODS, 0))
        for method in METHODS:
            if result[method] is None:
                failed[method] += 1
            else:
                hits[method] += result[method]
    for key, hits in rates.items():
        for method in METHODS:
            done = args.reps - errors[key][method]
            hits[method] = hits[method] / done if done else float("nan")
    elapsed = time.perf_counter() - started
    header = "| n per side | shift (sd) | " + " | ".join(METHODS) + " |"
    print(header)
    print("|" + "---|" * (len(METHODS) + 2))
    for n in args.sizes:
        for d in args.shifts:
            cell, failed = rates[f"{n}|{d}"], errors[f"{n}|{d}"]
            shown = [f"{cell[m]:.2f}" + (f" ({failed[m]} errors)" if failed[m] else "") for m in METHODS]
            print(f"| {n:,} | {d} | " + " | ".join(shown) + " |")
    print(f"\n{args.reps} repetitions per cell, alpha {ALPHA}, {elapsed:.0f} s with {args.workers} workers")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump({"reps": args.reps, "alpha": ALPHA, "rates": rates, "errors": errors, "seconds": elapsed},
                      handle, indent=1)


if __name__ == "__main__":
    main()
