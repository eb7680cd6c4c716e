"""How well loopwatch estimates performance without labels, next to NannyML, on NannyML's own data.

One run does everything:

1. In NannyML's virtualenv (benchmarks/.peers/nannyml, see peers_setup.sh),
   ``peers_nannyml_performance.py`` exports the synthetic car loan (binary
   classifier) and car price (regressor) datasets NannyML ships to Parquet
   under ``benchmarks/.work/performance/``, and runs NannyML's CBPE (chunks of
   5,000 rows) and DLE (chunks of 6,000 rows) on them.
2. Here, loopwatch's ``ConfidenceBasedEstimator`` and ``DirectLossEstimator``
   are fitted on the same reference rows and estimate the same analysis
   chunks (the chunk boundaries are NannyML's, checked).
3. The realized metric of every chunk is computed with scikit-learn from the
   analysis labels, and each tool's estimate is compared with it: absolute
   error per chunk, its mean and maximum over the chunks, and how many chunks'
   realized values fall inside each tool's 95% interval. NannyML reports a
   sampling error (a standard deviation); its 95% interval here is estimate +-
   1.96 of them, and its own default band (+- 3) is reported too.

loopwatch's CBPE runs twice: with its default calibration (``auto``) and with
``isotonic``, NannyML's calibrator. The served labels are the dataset's own
``y_pred`` for both tools.

    .venv/bin/python benchmarks/performance_quality.py [--repeats 3]

Writes benchmarks/results/performance_quality.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from peers_common import timed_repeats  # noqa: E402

from loopwatch.performance import ConfidenceBasedEstimator, DirectLossEstimator  # noqa: E402

WORK = _common.WORK_DIR / "performance"
RESULTS = _common.RESULTS_DIR / "performance_quality.json"
PEER_PYTHON = _common.BENCH_DIR / ".peers" / "nannyml" / "bin" / "python"
Z95 = 1.959964


def run_peer(repeats: int) -> dict[str, Any]:
    if not PEER_PYTHON.exists():
        raise SystemExit(f"NannyML's virtualenv is missing: run  bash benchmarks/peers_setup.sh nannyml  ({PEER_PYTHON})")
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")
    script = _common.BENCH_DIR / "peers_nannyml_performance.py"
    proc = subprocess.run([str(PEER_PYTHON), str(script), str(WORK), str(repeats)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"the NannyML runner failed:\n{proc.stderr[-4000:]}")
    return json.loads((WORK / "nannyml_performance.json").read_text())


def _chunks(frame: pd.DataFrame, peer_chunks: list[dict]) -> list[pd.DataFrame]:
    bounds = [(c["start"], c["end"]) for c in peer_chunks]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(frame) - 1, bounds
    assert all(b[0] == a[1] + 1 for a, b in zip(bounds, bounds[1:])), bounds
    return [frame.iloc[start:end + 1] for start, end in bounds]


def _interval_row(value: float, low: float, high: float, realized: float) -> dict[str, Any]:
    return {"value": value, "low": low, "high": high, "error": value - realized,
            "inside": bool(low <= realized <= high)}


def _summary(chunks: list[dict], tools: list[str], metrics: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools:
        for metric in metrics:
            errors = np.array([abs(c[tool][metric]["error"]) for c in chunks])
            inside = [c[tool][metric]["inside"] for c in chunks]
            out.setdefault(tool, {})[metric] = {
                "mean_abs_error": float(errors.mean()), "max_abs_error": float(errors.max()),
                "inside_95": f"{sum(inside)}/{len(inside)}",
            }
            if tool == "nannyml":
                band = [c[tool][metric]["inside_3sd"] for c in chunks]
                out[tool][metric]["inside_3sd"] = f"{sum(band)}/{len(band)}"
    # paired: both tools face the same chunk's sampling noise, so compare their errors chunk by chunk
    for metric in metrics:
        diff = np.array([abs(c["loopwatch"][metric]["error"]) - abs(c["nannyml"][metric]["error"]) for c in chunks])
        out.setdefault("loopwatch_minus_nannyml", {})[metric] = {
            "mean_abs_error_difference": float(diff.mean()),
            "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
        }
    return out


def _peer_row(peer: dict, realized: float) -> dict[str, Any]:
    sd = peer["sampling_error"]
    row = _interval_row(peer["value"], peer["value"] - Z95 * sd, peer["value"] + Z95 * sd, realized)
    row |= {"sampling_error": sd, "inside_3sd": bool(peer["lower"] <= realized <= peer["upper"]),
            "nannyml_realized": peer["realized"]}
    return row


def car_loan(peer: dict, repeats: int) -> dict[str, Any]:
    reference = pd.read_parquet(WORK / "car_loan_reference.parquet")
    analysis = pd.read_parquet(WORK / "car_loan_analysis.parquet")
    chunks = _chunks(analysis, peer["chunks"])
    metrics = ["roc_auc", "accuracy", "f1"]

    def proba(frame: pd.DataFrame) -> np.ndarray:
        p = frame["y_pred_proba"].to_numpy(dtype=np.float64)
        return np.c_[1 - p, p]

    ours: dict[str, Any] = {}
    for variant in ("auto", "isotonic"):
        def run(variant: str = variant) -> tuple[ConfidenceBasedEstimator, list[dict]]:
            cbpe = ConfidenceBasedEstimator(classes=[0, 1], calibration=variant, seed=0)
            cbpe.fit(proba(reference), reference["repaid"].to_numpy(dtype=int),
                     y_pred_reference=reference["y_pred"].to_numpy())
            return cbpe, [cbpe.estimate(proba(c), y_pred=c["y_pred"].to_numpy()) for c in chunks]

        (cbpe, estimates), walls, cpus = timed_repeats(run, repeats)
        ours[variant] = {"estimates": estimates, "seconds": walls, "cpu_seconds": cpus,
                         "calibration": cbpe.calibration_, "calibration_scores": cbpe.calibration_scores_}

    rows = []
    for i, chunk in enumerate(chunks):
        y, p, pred = chunk["repaid"].to_numpy(dtype=int), chunk["y_pred_proba"].to_numpy(), chunk["y_pred"].to_numpy()
        realized = {"roc_auc": skm.roc_auc_score(y, p), "accuracy": skm.accuracy_score(y, pred),
                    "f1": skm.f1_score(y, pred)}
        row: dict[str, Any] = {"start": peer["chunks"][i]["start"], "end": peer["chunks"][i]["end"],
                               "realized": realized}
        for variant, tool in (("auto", "loopwatch"), ("isotonic", "loopwatch_isotonic")):
            est = ours[variant]["estimates"][i]
            row[tool] = {m: _interval_row(est[m].value, est[m].ci_low, est[m].ci_high, realized[m]) for m in metrics}
        row["nannyml"] = {m: _peer_row(peer["chunks"][i][m], realized[m]) for m in metrics}
        rows.append(row)
    tools = ["loopwatch", "loopwatch_isotonic", "nannyml"]
    return {
        "rows": {"reference": len(reference), "analysis": len(analysis)},
        "chunk_size": len(chunks[0]),
        "chunks": rows,
        "summary": _summary(rows, tools, metrics),
        "seconds": {"loopwatch": ours["auto"]["seconds"], "loopwatch_isotonic": ours["isotonic"]["seconds"],
                    "nannyml": peer["seconds"]},
        "cpu_seconds": {"loopwatch": ours["auto"]["cpu_seconds"], "nannyml": peer["cpu_seconds"]},
        "loopwatch_calibration": ours["auto"]["calibration"],
        "loopwatch_calibration_scores": ours["auto"]["calibration_scores"],
    }


def car_price(peer: dict, repeats: int) -> dict[str, Any]:
    reference = pd.read_parquet(WORK / "car_price_reference.parquet")
    analysis = pd.read_parquet(WORK / "car_price_analysis.parquet")
    features = peer["features"]
    chunks = _chunks(analysis, peer["chunks"])
    metrics = ["mae", "rmse"]

    def run() -> tuple[DirectLossEstimator, list[dict]]:
        dle = DirectLossEstimator(seed=0).fit(reference[features], reference["y_pred"], reference["y_true"])
        return dle, [dle.estimate(c[features], c["y_pred"]) for c in chunks]

    (dle, estimates), walls, cpus = timed_repeats(run, repeats)
    rows = []
    for i, chunk in enumerate(chunks):
        y, pred = chunk["y_true"].to_numpy(dtype=np.float64), chunk["y_pred"].to_numpy(dtype=np.float64)
        realized = {"mae": skm.mean_absolute_error(y, pred), "rmse": skm.root_mean_squared_error(y, pred)}
        est = estimates[i]
        rows.append({
            "start": peer["chunks"][i]["start"], "end": peer["chunks"][i]["end"], "realized": realized,
            "loopwatch": {m: _interval_row(est[m].value, est[m].ci_low, est[m].ci_high, realized[m]) for m in metrics},
            "nannyml": {m: _peer_row(peer["chunks"][i][m], realized[m]) for m in metrics},
        })
    return {
        "rows": {"reference": len(reference), "analysis": len(analysis)},
        "chunk_size": len(chunks[0]),
        "features": features,
        "chunks": rows,
        "summary": _summary(rows, ["loopwatch", "nannyml"], metrics),
        "seconds": {"loopwatch": walls, "nannyml": peer["seconds"]},
        "cpu_seconds": {"loopwatch": cpus, "nannyml": peer["cpu_seconds"]},
        "loopwatch_shape": dle.shape_, "loopwatch_kurtosis": dle.kurtosis_,
    }


def _print(result: dict[str, Any]) -> None:
    for name in ("car_loan", "car_price"):
        part = result[name]
        print(f"\n{name}: {part['rows']}, chunks of {part['chunk_size']}")
        for tool, metrics in part["summary"].items():
            if tool == "loopwatch_minus_nannyml":
                print("  paired |error| difference, loopwatch - nannyml: " + ", ".join(
                    f"{m} {v['mean_abs_error_difference']:+.3g} (se {v['standard_error']:.2g})" for m, v in metrics.items()))
                continue
            cells = ", ".join(f"{m} err {v['mean_abs_error']:.4g} (max {v['max_abs_error']:.4g}, in 95% {v['inside_95']})"
                              for m, v in metrics.items())
            seconds = part["seconds"].get(tool)
            print(f"  {tool:20s} {cells}  median {_common.median(seconds):.2f} s" if seconds else f"  {tool:20s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each tool (estimates are deterministic)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    machine = _common.machine_facts()
    peer = run_peer(args.repeats)
    result = {
        "benchmark": "performance_quality",
        "when": _common.now_iso(),
        "machine": machine,
        "nannyml": peer["nannyml"],
        "repeats": args.repeats,
        "car_loan": car_loan(peer["car_loan"], args.repeats),
        "car_price": car_price(peer["car_price"], args.repeats),
    }
    for part in ("car_loan", "car_price"):
        result[part]["median_seconds"] = {k: _common.median(v) for k, v in result[part]["seconds"].items()}
    _common.write_json(RESULTS, result)
    _print(result)
    print(f"\nwrote {RESULTS.relative_to(_common.REPO)}")


if __name__ == "__main__":
    main()
