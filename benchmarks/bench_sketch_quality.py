"""Quality of the KS test computed from window summaries, beside the exact test on the rows.

Every trial draws a reference of ``--reference`` rows from N(0, 1), kept as a profile keeps
it (:class:`loopwatch.stats.sketch.NumericSummary`), and a current window of ``n`` rows from
N(shift, 1), summarised as a monitor would: ``--batches`` numeric parts (hourly windows)
merged into one (:class:`loopwatch.summaries.numeric.NumericPart`). Then:

* sketch: :func:`loopwatch.summaries.feature_tests.ks_from_summaries`, which rejects only if
  the p-value at ``D - eps`` is below alpha (``eps``: the sketch's rank error plus the
  reference's);
* exact: :func:`loopwatch.stats.univariate.ks_test` on all the rows (equal to scipy's
  ``ks_2samp``), rejecting if its p-value is below alpha.

Both are the statistical decision alone: no practical-significance floor. Reported:

* false-alarm rate (shift 0) at n = 10^4, 10^5, 10^6 per window, with a 95% upper bound
  (Wilson) on the sketch's rate;
* the largest ``|D_sketch - D_exact|`` over the trials at each n (target at 10^6: <= 0.005),
  and whether the exact D always lay inside the reported interval;
* power at a 0.1 sd shift (and 0.05 sd, where the two can differ) at n = 10^4;
* bytes of one window's numeric part (JSON) and the time to summarise 10^6 rows.

Seeds: trial ``i`` of a setting draws from ``SeedSequence([SEED, n, round(shift * 1000), i])``
with ``SEED = 20261207``; the sketch size was chosen, and the tests written, on other seeds
(999 and 4101-8804). Run from the repository root (about 3 minutes on 2 shared cores):

    .venv/bin/python benchmarks/bench_sketch_quality.py

and it prints the Markdown tables of docs/quality.md ("Drift statistics from window
summaries"). ``--trials-scale 0.1`` gives a quick look.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from loopwatch.stats.binned import quantile_edges
from loopwatch.stats.sketch import NumericSummary
from loopwatch.stats.univariate import ks_test
from loopwatch.summaries.feature_tests import ks_from_summaries
from loopwatch.summaries.numeric import NumericPart, kll_rank_error

SEED = 20261207
ALPHA = 0.05
#: (rows per window, shift in sd, trials): trials shrink as windows grow, to stay in minutes.
SETTINGS = (
    (10_000, 0.0, 400),
    (100_000, 0.0, 200),
    (1_000_000, 0.0, 100),
    (10_000, 0.1, 200),
    (10_000, 0.05, 200),
)


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + half) / (1 + z * z / n)


def trial(n: int, shift: float, i: int, *, reference_rows: int, batches: int) -> dict[str, float]:
    rng = np.random.default_rng(np.random.SeedSequence([SEED, n, round(shift * 1000), i]))
    ref_values = rng.normal(size=reference_rows)
    reference = NumericSummary.from_values(ref_values)
    edges = quantile_edges(reference.sorted_values, n_bins=10)
    current = rng.normal(shift, 1.0, size=n)
    part = NumericPart.empty(edges=edges)
    for batch in np.array_split(current, batches):
        part = part.merge(NumericPart.from_values(batch, edges=edges))
    sketch = ks_from_summaries(reference, part, alpha=ALPHA)
    exact = ks_test(reference, current)
    return {
        "d_sketch": sketch.statistic,
        "d_exact": exact.statistic,
        "eps": sketch.error_bound,
        "inside": float(sketch.statistic_low <= exact.statistic <= sketch.statistic_high),
        "reject_sketch": float(sketch.drifted),
        "reject_exact": float(exact.p_value < ALPHA),
    }


def part_size(n: int) -> tuple[int, float]:
    """JSON bytes of one window's numeric part of ``n`` rows, and seconds to build it."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, n, 7]))
    x = rng.normal(size=n)
    edges = quantile_edges(np.sort(rng.normal(size=10_000)), n_bins=10)
    start = time.perf_counter()
    part = NumericPart.from_values(x, edges=edges)
    seconds = time.perf_counter() - start
    return len(json.dumps(part.to_dict())), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=int, default=100_000, help="reference rows (kept exact)")
    parser.add_argument("--batches", type=int, default=24, help="parts merged into each window")
    parser.add_argument("--trials-scale", type=float, default=1.0, help="multiply every trial count")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for n, shift, trials in SETTINGS:
        count = max(2, round(trials * args.trials_scale))
        t0 = time.perf_counter()
        out = [trial(n, shift, i, reference_rows=args.reference, batches=args.batches) for i in range(count)]
        rows.append((n, shift, count, out, time.perf_counter() - t0))

    print(f"reference {args.reference:,} rows (exact), window = {args.batches} merged parts, alpha {ALPHA}, "
          f"KLL rank error {kll_rank_error():.4f}, seed {SEED}\n")
    print("| rows per window | shift (sd) | trials | sketch rejects | 95% upper | exact rejects "
          "| max abs(D sketch - D exact) | mean eps | exact D inside interval | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, shift, count, out, seconds in rows:
        rs = sum(r["reject_sketch"] for r in out)
        re_ = sum(r["reject_exact"] for r in out)
        diff = max(abs(r["d_sketch"] - r["d_exact"]) for r in out)
        eps = sum(r["eps"] for r in out) / count
        inside = sum(r["inside"] for r in out)
        upper = f"{wilson_upper(int(rs), count):.3f}" if shift == 0 else ""
        print(f"| {n:,} | {shift:g} | {count} | {rs / count:.3f} | {upper} | {re_ / count:.3f} | {diff:.5f} "
              f"| {eps:.5f} | {int(inside)}/{count} | {seconds:.0f} |")
    print("\n| rows per window | numeric part, JSON bytes | seconds to summarise |")
    print("|---|---|---|")
    for n in (1_000, 10_000, 100_000, 1_000_000):
        size, seconds = part_size(n)
        print(f"| {n:,} | {size:,} | {seconds:.3f} |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
