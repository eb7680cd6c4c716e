"""How many adversarial rows must one client send in a window before loopwatch names it?

A row's evasion flag catches a generous attack rarely (``benchmarks/evasion.py``: 3% of
the boundary walks that go 0.1 sd past the boundary at 1% FPR, 23% at 5%). But the loop
engine tests each client's flagged share per window (``evasion_by_client``), so a client
that keeps sending such rows is seen by its rate. This turns each attack's measured
per-row detection rate into the smallest number of successful adversarial rows a new
client (no history) must send in one window to be named as ``adversarial_evasion`` with
probability 0.9, at ``evasion_alpha`` 0.001 (Bonferroni over the window's clients).

The window: three ordinary clients of 300 scored rows each, flagged at the nominal rate;
the calibration: 500 clean rows with the nominal share above the threshold (as training
calibrates it). Each candidate count is simulated 400 times. Reads
``benchmarks/results/evasion.json``; writes ``benchmarks/results/evasion_clients.json``.
A few seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from loopwatch.detectors.evasion_rates import evasion_by_client  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
ORDINARY_CLIENTS, ORDINARY_ROWS, CALIBRATION_ROWS = 3, 300, 500
SIMULATIONS, POWER, ALPHA = 400, 0.9, 0.001


def naming_probability(rate: float, fpr: float, n_rows: int, rng: np.random.Generator) -> float:
    named = 0
    for _ in range(SIMULATIONS):
        flags = {f"client-{i}": list(rng.random(ORDINARY_ROWS) < fpr) for i in range(ORDINARY_CLIENTS)}
        flags["attacker"] = list(rng.random(n_rows) < rate)
        found = evasion_by_client(flags, k_calibration=round(fpr * CALIBRATION_ROWS),
                                  n_calibration=CALIBRATION_ROWS, alpha=ALPHA, min_rows=min(30, n_rows))
        named += any(c.client_id == "attacker" and c.suspect for c in found)
    return named / SIMULATIONS


def rows_needed(rate: float, fpr: float, rng: np.random.Generator) -> int | None:
    for n_rows in COUNTS:
        if naming_probability(rate, fpr, n_rows, rng) >= POWER:
            return n_rows
    return None


def main() -> None:
    measured = json.loads((RESULTS / "evasion.json").read_text())
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for model, summary in measured["summary_median_over_seeds"].items():
        for attack, result in summary["attacks"].items():
            entry: dict[str, Any] = {"model": model, "attack": attack}
            for fpr, key in ((0.01, "detection_at_1pct_fpr"), (0.05, "detection_at_5pct_fpr")):
                rate = float(result[key])
                entry[key] = rate
                entry[f"rows_to_name_at_{round(fpr * 100)}pct"] = rows_needed(rate, fpr, rng) if rate > fpr else None
            rows.append(entry)
            print(entry, flush=True)
    _common.write_json(RESULTS / "evasion_clients.json", {
        "benchmark": "evasion_clients", "created": _common.now_iso(), "machine": _common.machine_facts(),
        "setup": {"ordinary_clients": ORDINARY_CLIENTS, "ordinary_rows": ORDINARY_ROWS,
                  "calibration_rows": CALIBRATION_ROWS, "simulations": SIMULATIONS, "power": POWER,
                  "evasion_alpha": ALPHA, "counts_tried": list(COUNTS)},
        "rows": rows,
    })


if __name__ == "__main__":
    main()
