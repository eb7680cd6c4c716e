#!/usr/bin/env python
"""The outlier-rate test before and after bounded scoring: false alarms and power.

    .venv/bin/python benchmarks/outlier_sampling_power.py [--trials 4000] [--seed 20261208]

Before, a window of a million rows was scored whole and its detector calibrated on the
reference's whole holdout (30% of a million-row reference); now the window is scored on a
seeded sample of ``outlier_max_rows`` rows and calibrated on at most ``MAX_CALIBRATION_ROWS``.
What changes is only how many rows the two flagged counts come from, so each trial draws them
as binomial counts (a calibrated 1% rate, the window's rate 1% plus an excess) and decides with
the report's own functions: the conditional binomial test (``stats.rates.rate_test``) at the
outliers family's share of alpha for one of three detectors, and the practical threshold
(``stats.practical``). Both the decision with the practical floor and the statistical one alone
are reported. Results: benchmarks/results/outlier_sampling_power.json; the table is in
docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loopwatch.drift.config import DriftConfig
from loopwatch.drift.profile import MAX_CALIBRATION_ROWS
from loopwatch.stats.practical import practical, rate_band
from loopwatch.stats.rates import rate_test

WINDOW_ROWS = 1_000_000
BEFORE_CALIBRATION_ROWS = 300_000
EXPECTED = 0.01
EXCESSES = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03)


def decisions(rng: np.random.Generator, *, scored: int, calibration: int, excess: float, trials: int,
              alpha: float, band_rows: int) -> tuple[float, float]:
    """Shares of trials that are significant, and significant and practically large."""
    significant = decided = 0
    for k_window, k_cal in zip(rng.binomial(scored, EXPECTED + excess, trials), rng.binomial(calibration, EXPECTED, trials)):
        result = rate_test(int(k_window), scored, int(k_cal), calibration)
        calibrated = k_cal / calibration
        threshold = practical("outlier_rate", k_window / scored - calibrated,
                              band=rate_band(calibrated, scored, calibration, band_rows=band_rows), band_rows=band_rows,
                              overrides={})
        if result.p_value < alpha:
            significant += 1
            decided += threshold.large_enough
    return significant / trials, decided / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261208)
    args = parser.parse_args()
    config = DriftConfig()
    alpha = config.family_alpha["outliers"] / 3
    rng = np.random.default_rng(args.seed)
    rows = []
    for excess in EXCESSES:
        row = {"excess": excess}
        for label, scored, calibration in (("before", WINDOW_ROWS, BEFORE_CALIBRATION_ROWS),
                                           ("after", config.outlier_max_rows, MAX_CALIBRATION_ROWS)):
            significant, decided = decisions(rng, scored=scored, calibration=calibration, excess=excess,
                                             trials=args.trials, alpha=alpha, band_rows=config.practical_band_rows)
            row[label] = {"scored": scored, "calibration": calibration, "significant": significant, "drift": decided}
        rows.append(row)
        print(f"excess {excess:.4f}: before significant {row['before']['significant']:.3f} drift "
              f"{row['before']['drift']:.3f} | after significant {row['after']['significant']:.3f} drift "
              f"{row['after']['drift']:.3f}")
    out = Path(__file__).parent / "results" / "outlier_sampling_power.json"
    out.write_text(json.dumps({"trials": args.trials, "seed": args.seed, "alpha": alpha, "expected_rate": EXPECTED,
                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
