"""The monitor's drift decision read from window summaries, beside the same decision on the rows.

Issue 14 asks that moving monitoring onto summaries loses nothing: the drift quality tables
stay within noise of their exact-row values. This measures it on real data, New York's 2013
departures (``tests/realdata.flights``: integer-coded carrier and origin, a skewed distance,
air time with nulls):

* a reference of 20,000 flights drawn at random, profiled as a version's reference is;
* current windows of n = 1,000, 10,000 and 100,000 other flights drawn at random from the
  same year (no shift: the same distribution), or the same with distance and air time moved
  by +0.1 of their standard deviation (a shift);
* each window compared as the monitor compares it, univariate only (multivariate and outlier
  tests run on the window's row sample, measured elsewhere):
  ``rows``: :func:`loopwatch.drift.compare.compare` on the window's rows;
  ``summaries``: the window cut into 24 hourly batches, each summarised as the summariser
  does (numeric parts on the reference's edges, categorical parts) and merged, then
  :func:`loopwatch.drift.summary_compare.compare_summary`.

Reported per n: the share of no-shift windows with any drifted feature (false alarms), the
share of shifted windows where ``distance`` drifted (power), and how often the two readers
disagree on a window's drifted features; with the practical floor on (as the monitor
decides) and off (the statistical decision alone).

Seeds: trial ``i`` at size n draws from ``SeedSequence([SEED, n, shifted, i])``; nothing was
tuned on them. Run from the repository root (a few minutes on 2 shared cores):

    .venv/bin/python benchmarks/summary_drift_quality.py [--trials-scale 0.2]

Writes ``benchmarks/results/summary_drift_quality.json`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS_DIR, machine_facts, now_iso, write_json  # noqa: E402

from loopwatch.application.monitoring.window_results import MONITOR_CONFIG  # noqa: E402
from loopwatch.drift.compare import compare  # noqa: E402
from loopwatch.drift.profile import build_profile, category_values  # noqa: E402
from loopwatch.drift.summary_compare import compare_summary  # noqa: E402
from loopwatch.summaries.categorical import CategoricalPart  # noqa: E402
from loopwatch.summaries.numeric import NumericPart  # noqa: E402
from tests.realdata import flights  # noqa: E402

SEED = 20261208
NUMERIC = ["distance", "air_time", "sched_hour"]
CATEGORICAL = ["carrier", "origin"]
SHIFTED = ["distance", "air_time"]
REFERENCE_ROWS = 20_000
BATCHES = 24
#: (window rows, trials) per setting; trials shrink as windows grow.
SIZES = ((1_000, 200), (10_000, 200), (100_000, 40))


def _parts(profile: Any, window: pd.DataFrame) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for batch in np.array_split(np.arange(len(window)), BATCHES):
        rows = window.iloc[batch]
        for name in NUMERIC:
            part = NumericPart.from_values(rows[name].to_numpy(dtype=np.float64), edges=profile.univariate.edges[name])
            parts[name] = part if name not in parts else parts[name].merge(part)
        for name in CATEGORICAL:
            part = CategoricalPart.from_values(category_values(rows, name))
            parts[name] = part if name not in parts else parts[name].merge(part)
    return parts


def _decisions(report: Any) -> tuple[str, ...]:
    return tuple(sorted(report.drifted_features))


def run(trials_scale: float) -> dict[str, Any]:
    data = flights()[[*NUMERIC, *CATEGORICAL]].copy()
    for name in CATEGORICAL:
        data[name] = data[name].astype(str)  # labels, as the monitor reads categories
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(data))
    reference = data.iloc[order[:REFERENCE_ROWS]].reset_index(drop=True)
    pool = data.iloc[order[REFERENCE_ROWS:]].reset_index(drop=True)
    profile = build_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL, seed=0, joint=False)
    sd = {name: float(reference[name].std()) for name in SHIFTED}
    floors = {"on": replace(MONITOR_CONFIG, multivariate=False, outliers=False),
              "off": replace(MONITOR_CONFIG, multivariate=False, outliers=False,
                             practical_thresholds={"wasserstein_normed": 0.0, "js_distance": 0.0})}
    rows_out = []
    for n, base_trials in SIZES:
        trials = max(5, int(round(base_trials * trials_scale)))
        for shifted in (False, True):
            counts = {f: {"rows": 0, "summaries": 0, "disagree": 0} for f in floors}
            seconds = {"rows": 0.0, "summaries": 0.0}
            for i in range(trials):
                draw = np.random.default_rng(np.random.SeedSequence([SEED, n, int(shifted), i]))
                window = pool.iloc[draw.choice(len(pool), size=n, replace=False)].reset_index(drop=True)
                if shifted:
                    for name in SHIFTED:
                        window[name] = window[name] + 0.1 * sd[name]
                t0 = time.process_time()
                parts = _parts(profile, window)
                seconds["summaries"] += time.process_time() - t0
                for floor, config in floors.items():
                    t0 = time.process_time()
                    exact = _decisions(compare(profile, window, config=config))
                    seconds["rows"] += time.process_time() - t0
                    t0 = time.process_time()
                    sketched = _decisions(compare_summary(profile, parts, n_events=n, config=config))
                    seconds["summaries"] += time.process_time() - t0
                    hit = (lambda found: "distance" in found) if shifted else bool
                    counts[floor]["rows"] += bool(hit(exact))
                    counts[floor]["summaries"] += bool(hit(sketched))
                    counts[floor]["disagree"] += exact != sketched
            for floor in floors:
                rows_out.append({
                    "n": n, "shifted": shifted, "floor": floor, "trials": trials,
                    "rows_rate": counts[floor]["rows"] / trials, "summaries_rate": counts[floor]["summaries"] / trials,
                    "disagreements": counts[floor]["disagree"],
                })
            rows_out[-1]["cpu_seconds"] = seconds
            print(f"n={n} shifted={shifted}: {rows_out[-2:]}", file=sys.stderr)
    return {"benchmark": "summary_drift_quality", "when": now_iso(), "machine": machine_facts(), "seed": SEED,
            "reference_rows": REFERENCE_ROWS, "batches": BATCHES, "alpha": MONITOR_CONFIG.alpha, "rows": rows_out}


def table(result: dict[str, Any]) -> str:
    lines = ["| n per window | practical floor | false alarms, rows | false alarms, summaries | "
             "power at 0.1 sd, rows | power at 0.1 sd, summaries | windows where they disagree |",
             "|---|---|---|---|---|---|---|"]
    by = {(r["n"], r["shifted"], r["floor"]): r for r in result["rows"]}
    for n, _ in SIZES:
        for floor in ("on", "off"):
            quiet, moved = by.get((n, False, floor)), by.get((n, True, floor))
            if quiet is None or moved is None:
                continue
            lines.append(
                f"| {n:,} | {floor} | {quiet['rows_rate']:.3f} | {quiet['summaries_rate']:.3f} | "
                f"{moved['rows_rate']:.3f} | {moved['summaries_rate']:.3f} | "
                f"{quiet['disagreements'] + moved['disagreements']} of {quiet['trials'] + moved['trials']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials-scale", type=float, default=1.0)
    args = parser.parse_args()
    result = run(args.trials_scale)
    write_json(RESULTS_DIR / "summary_drift_quality.json", result)
    print(table(result))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, default=str)[:400], file=sys.stderr)


if __name__ == "__main__":
    main()
