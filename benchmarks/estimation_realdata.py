"""Label-free performance estimation on real data: bias, error and interval coverage.

The cases are those of tests/estimation_cases.py (a gradient-boosted model trained on 20,000
rows of a real dataset, a holdout of 10,000 as the estimator's reference, chunks drawn from
the remaining rows at random or under covariate shift). For every case, seed, chunk size
and condition it measures, per estimated metric:

* ``bias``: the mean of estimate - realized over the chunks, and ``mae`` its mean absolute value;
* ``coverage``: the share of chunks whose realized value lies inside the 95% interval;
* ``median_width``: the interval's median width.

Classifiers (CBPE, accuracy and ROC AUC) are also estimated with each calibration forced
(``isotonic``, ``sigmoid``, ``none``), point estimates only, to judge what ``auto`` chose.
Regressors (DLE, MAE and RMSE) report the relative bias too (bias / mean realized value).

Per condition and metric, ``overall`` pools the cells (datasets x chunk sizes): the mean
coverage and the lowest, and the median of the cells' median widths.

Seeds: ``--seeds 0 1 2 3`` are the reported ones; the method's constants and choices were
tuned on seeds 100-104, whose splits and chunks differ from these.

    .venv/bin/python benchmarks/estimation_realdata.py [--seeds 0 1 2 3] [--chunks 30] [--out NAME]

Writes benchmarks/results/estimation_realdata.json (or ``--out``) and prints a summary.
About fifteen minutes on one core with the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import estimation_cases as cases  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SIZES = (500, 2000, 5000)
FORCED = ("isotonic", "sigmoid", "none")


def _summarise(records: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in metrics:
        rows = [r for r in records if np.isfinite(r["realized"][metric])]
        err = np.array([r["estimate"][metric][0] - r["realized"][metric] for r in rows])
        inside = [r["estimate"][metric][1] <= r["realized"][metric] <= r["estimate"][metric][2] for r in rows]
        width = [r["estimate"][metric][2] - r["estimate"][metric][1] for r in rows]
        real = float(np.mean([r["realized"][metric] for r in rows]))
        out[metric] = {"chunks": len(rows), "bias": float(err.mean()), "mae": float(np.abs(err).mean()),
                       "relative_bias": float(err.mean() / real), "coverage": float(np.mean(inside)),
                       "median_width": float(np.median(width)), "mean_realized": real}
        for variant in FORCED:
            if variant in rows[0].get("forced", {}):
                forced = np.array([r["forced"][variant][metric] - r["realized"][metric] for r in rows])
                out[metric][f"mae_{variant}"] = float(np.abs(forced).mean())
                out[metric][f"bias_{variant}"] = float(forced.mean())
    return out


def run_case(name: str, seed: int, n_chunks: int, sizes: tuple[int, ...], *, inputs: bool = True) -> dict[str, Any]:
    case = cases.build(name, seed=seed)
    started = time.perf_counter()
    estimator = cases.fit_estimator(case, seed=seed, inputs=inputs)
    fit_seconds = time.perf_counter() - started
    forced = {}
    if case.dataset.task == "classification":
        forced = {v: cases.fit_estimator(case, calibration=v, n_sim=1, calibration_resamples=0, seed=seed,
                                         inputs=False)
                  for v in FORCED}
    metrics = ("accuracy", "roc_auc") if case.dataset.task == "classification" else ("mae", "rmse")
    result: dict[str, Any] = {"fit_seconds": fit_seconds, "conditions": {}}
    if case.dataset.task == "classification":
        result["calibration"] = estimator.calibration_
        result["calibration_scores"] = estimator.calibration_scores_
    for condition in cases.CONDITIONS:
        for size in sizes:
            records = []
            for rows in case.chunks(size=size, count=n_chunks, condition=condition, seed=1):
                est = cases.estimate(case, estimator, rows)
                record = {"realized": cases.realized(case, rows),
                          "estimate": {m: (est[m].value, est[m].ci_low, est[m].ci_high) for m in metrics}}
                if forced:
                    record["forced"] = {v: {m: e.value for m, e in cases.estimate(case, f, rows).items()}
                                        for v, f in forced.items()}
                records.append(record)
            result["conditions"].setdefault(condition, {})[str(size)] = _summarise(records, metrics)
    return result


def pooled(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per dataset, condition, size and metric: the seeds' summaries averaged (chunks weigh equally)."""
    out: dict[str, Any] = {}
    for name, per_seed in results.items():
        seeds = list(per_seed.values())
        for condition, sizes in seeds[0]["conditions"].items():
            for size, metrics in sizes.items():
                for metric, first in metrics.items():
                    values = {key: float(np.mean([s["conditions"][condition][size][metric][key] for s in seeds]))
                              for key in first}
                    out.setdefault(name, {}).setdefault(condition, {}).setdefault(size, {})[metric] = values
    return out


def overall(summary: dict[str, Any]) -> dict[str, Any]:
    """Per condition and metric, over the datasets and chunk sizes: mean and lowest coverage, and
    the median of the median widths."""
    cells: dict[str, dict[str, list[tuple[str, dict[str, float]]]]] = {}
    for name, conditions in summary.items():
        for condition, sizes in conditions.items():
            for size, metrics in sizes.items():
                for metric, values in metrics.items():
                    cells.setdefault(condition, {}).setdefault(metric, []).append((f"{name}/{size}", values))
    out: dict[str, Any] = {}
    for condition, metrics in cells.items():
        for metric, rows in metrics.items():
            coverage = [v["coverage"] for _, v in rows]
            lowest = int(np.argmin(coverage))
            out.setdefault(condition, {})[metric] = {
                "cells": len(rows), "coverage": float(np.mean(coverage)), "lowest_coverage": coverage[lowest],
                "lowest_cell": rows[lowest][0], "median_width": float(np.median([v["median_width"] for _, v in rows])),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--chunks", type=int, default=30, help="chunks per seed, size and condition")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--datasets", nargs="+", default=list(cases.DATASETS))
    parser.add_argument("--out", default="estimation_realdata.json")
    parser.add_argument("--no-inputs", action="store_true",
                        help="fit CBPE on probabilities alone (no segment term; the only way before it existed)")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for name in args.datasets:
        for seed in args.seeds:
            started = time.perf_counter()
            results.setdefault(name, {})[str(seed)] = run_case(name, seed, args.chunks, tuple(args.sizes),
                                                        inputs=not args.no_inputs)
            extra = results[name][str(seed)].get("calibration", "")
            print(f"{name} seed {seed}: {time.perf_counter() - started:.0f} s {extra}", flush=True)
    summary = pooled(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / args.out
    pooled_cells = overall(summary)
    path.write_text(json.dumps({"seeds": args.seeds, "chunks": args.chunks, "sizes": args.sizes,
                                "overall": pooled_cells, "summary": summary, "runs": results}, indent=1))
    for name, conditions in summary.items():
        for condition, sizes in conditions.items():
            for size, metrics in sizes.items():
                for metric, v in metrics.items():
                    forced = " ".join(f"{k[4:]}={v[k]:.4f}" for k in v if k.startswith("mae_"))
                    print(f"{name:18} {condition:16} {size:>5} {metric:8} bias {v['bias']:+.4f} "
                          f"(rel {v['relative_bias']:+.3f}) mae {v['mae']:.4f} cover {v['coverage']:.3f} "
                          f"width {v['median_width']:.4f} {forced}")
    for condition, metrics in pooled_cells.items():
        for metric, v in metrics.items():
            print(f"overall {condition:16} {metric:8} coverage {v['coverage']:.3f} (lowest {v['lowest_coverage']:.2f}, "
                  f"{v['lowest_cell']}) median width {v['median_width']:.4f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
