"""Label-free performance estimation from window sums against the same estimator on the rows.

The cases of ``tests/estimation_cases.py`` (real datasets, a gradient-boosted model, a 10,000-row
holdout as the estimator's reference, chunks drawn at random or under covariate shift). For
every chunk, the estimate the loop engine reads from the log (``estimator.estimate`` on the
chunk's rows, with the bootstrap interval) and the one it reads from window summaries (the
chunk's CBPE or DLE sums, :func:`~loopwatch.application.monitoring.summary_loops.estimate_of_sums`,
with its analytic interval) are set against the realized metric:

* ``mae``: the mean absolute error of each estimate;
* ``coverage``: the share of chunks whose realized value lies in each 95% interval;
* ``median_width``: each interval's median width;
* ``points_apart``: the largest distance between the two point estimates.

    .venv/bin/python benchmarks/estimation_from_sums.py [--seeds 0 1] [--chunks 20]

Writes ``benchmarks/results/estimation_from_sums.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import estimation_cases as cases  # noqa: E402

SIZES = (500, 2000, 5000)


def holdout_half_width(case: cases.Case, metric: str) -> float:
    """Half the width of the holdout metric's bootstrap interval: what the loop engine adds to a
    CBPE interval from sums (the calibration was fitted on this holdout)."""
    from loopwatch.performance import classification_metrics

    found = classification_metrics(case.y_ref, case.out_ref.argmax(axis=1), case.out_ref, classes=[0, 1],
                                   n_boot=200, seed=0)[metric]
    return (found.ci_high - found.ci_low) / 2


def from_sums(case: cases.Case, estimator: Any, rows: np.ndarray, metric: str, calibration: float) -> Any:
    from loopwatch.application.monitoring.summary_loops import estimate_of_sums
    from loopwatch.summaries.outcomes import ConfidenceSums, LossSums

    context = SimpleNamespace(estimator=estimator, metric=metric, version=SimpleNamespace(task=case.dataset.task))
    if case.dataset.task == "classification":
        proba = case.out_pool[rows]
        sums: Any = ConfidenceSums.from_rows(proba, estimator.calibrate(proba), estimator.predict_indices(proba),
                                             positive=estimator.positive_index_)
    else:
        sums = LossSums.from_losses(*estimator.row_losses(case.X_pool.iloc[rows], case.out_pool[rows]))
    found, _ = estimate_of_sums(context, sums, len(rows), calibration=calibration)  # type: ignore[arg-type]
    return found


def run_case(name: str, seed: int, n_chunks: int) -> dict[str, Any]:
    case = cases.build(name, seed=seed)
    estimator = cases.fit_estimator(case, seed=seed)
    metrics = ("accuracy", "roc_auc") if case.dataset.task == "classification" else ("mae", "rmse")
    calibration = {m: holdout_half_width(case, m) if case.dataset.task == "classification" else 0.0
                   for m in metrics}
    out: dict[str, Any] = {}
    for condition in cases.CONDITIONS:
        for size in SIZES:
            records: dict[str, list[tuple[float, ...]]] = {m: [] for m in metrics}
            for rows in case.chunks(size=size, count=n_chunks, condition=condition, seed=1):
                realized = cases.realized(case, rows)
                on_rows = cases.estimate(case, estimator, rows)
                for metric in metrics:
                    a, b = on_rows[metric], from_sums(case, estimator, rows, metric, calibration[metric])
                    records[metric].append((realized[metric], a.value, a.ci_low, a.ci_high, b.value, b.ci_low,
                                            b.ci_high))
            for metric, values in records.items():
                r = np.array(values)
                out.setdefault(condition, {}).setdefault(str(size), {})[metric] = {
                    "chunks": len(r),
                    "mae_rows": float(np.abs(r[:, 1] - r[:, 0]).mean()),
                    "mae_sums": float(np.abs(r[:, 4] - r[:, 0]).mean()),
                    "coverage_rows": float(((r[:, 2] <= r[:, 0]) & (r[:, 0] <= r[:, 3])).mean()),
                    "coverage_sums": float(((r[:, 5] <= r[:, 0]) & (r[:, 0] <= r[:, 6])).mean()),
                    "median_width_rows": float(np.median(r[:, 3] - r[:, 2])),
                    "median_width_sums": float(np.median(r[:, 6] - r[:, 5])),
                    "points_apart": float(np.abs(r[:, 4] - r[:, 1]).max()),
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--datasets", nargs="+", default=["flights_late", "census_morekids", "flights_arr_delay"])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name in args.datasets:
        for seed in args.seeds:
            results.setdefault(name, {})[str(seed)] = run_case(name, seed, args.chunks)
            print(f"{name} seed {seed} done", flush=True)
    path = ROOT / "benchmarks" / "results" / "estimation_from_sums.json"
    path.write_text(json.dumps({"seeds": args.seeds, "chunks": args.chunks, "sizes": list(SIZES),
                                "results": results}, indent=1))
    for name, seeds in results.items():
        for condition in cases.CONDITIONS:
            for size in SIZES:
                cells = [seeds[s][condition][str(size)] for s in seeds]
                for metric in cells[0]:
                    mean = {k: float(np.mean([c[metric][k] for c in cells]))
                            for k in cells[0][metric] if k != "chunks"}
                    print(f"{name:18} {condition:16} {size:5} {metric:8} " +
                          " ".join(f"{k}={v:.4f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
