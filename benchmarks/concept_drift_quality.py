"""How well loopwatch's concept drift detectors find a change in a model's error stream.

Two parts, each over every detector of ``loopwatch.performance.concept`` with
its default parameters:

1. **Calibration on Bernoulli error streams.** False alarms on stable streams
   of 5,000 predictions (error rate 0.15 and 0.3, ``--calibration-seeds``
   seeds each, 100 by default; KSWIN, which runs a scipy test at every
   update, on the first ``--slow-calibration-seeds``, 10), and the delay
   after a step of the error rate from 0.15 to 0.35 at prediction 3,000 of a
   6,000-long stream (50 seeds; KSWIN 5). These give the stated rates in
   ``FALSE_ALARMS_PER_5000`` and ``DELAY_AT_STEP``.
2. **river's synthetic drift streams.** For each scenario and seed a river
   ``ConceptDriftStream`` joins a pre-drift and a post-drift generator. A
   batch scikit-learn model is trained on the first 2,000 rows (pre-drift
   only); its 0/1 errors on the next 5,000 rows (stable) and on the drift and
   the 2,500 rows after its centre form the monitored stream. Per detector:
   false alarms in the stable part (per 5,000 predictions), missed drifts (no
   alarm from the end of the stable part to the end of the stream) and the
   detection delay (first alarm after the stable part, minus the drift
   centre). Medians over seeds (``--seeds``, 5; KSWIN on the first
   ``--slow-seeds``, 3).

river's ``ConceptDriftStream`` mixes the two generators with a sigmoid of
width ``w`` centred at the drift position; it overflows for ``w`` below about
``4 * position / 709``, so the "abrupt" scenarios use ``w = 50``, centred 50
rows after the stable part (1.8% of rows from the new concept at its end).

Run from the repository root (about 2 minutes on 2 idle cores; KSWIN takes most of it):

    .venv/bin/python benchmarks/concept_drift_quality.py
    .venv/bin/python benchmarks/concept_drift_quality.py --seeds 3 --calibration-seeds 5 --out /tmp/q.json

Writes ``benchmarks/results/concept_drift_quality.json``; docs/concept-drift.md
reports it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, now_iso, write_json  # noqa: E402

N_TRAIN, N_STABLE, N_AFTER = 2_000, 5_000, 2_500
STEP_AT, STEP_LENGTH, STEP_BEFORE, STEP_AFTER, STEP_SEEDS = 3_000, 6_000, 0.15, 0.35, 50
SLOW_STEP_SEEDS = 5
#: Detectors that take ~0.5 ms per update (a scipy KS test each time): fewer calibration streams.
SLOW = ("kswin",)
STABLE_RATES, STABLE_LENGTH = (0.15, 0.3), 5_000

#: name -> (what it is, width of the transition)
SCENARIOS = {
    "sea_abrupt": ("SEA variant 0 -> 3 (threshold 8 -> 9.5), 10% label noise; logistic regression", 50),
    "sea_gradual": ("SEA variant 0 -> 3, 10% label noise, transition width 1,000; logistic regression", 1000),
    "agrawal_abrupt": ("Agrawal function 0 -> 2, perturbation 0.05; decision tree", 50),
    "stagger_abrupt": ("STAGGER function 0 -> 1; decision tree on ordinal codes", 50),
    "hyperplane_abrupt": ("Hyperplane (10 features, 5% noise), new random plane; logistic regression", 50),
}


def bernoulli_stable(seed: int, rate: float, n: int = STABLE_LENGTH) -> np.ndarray:
    """A stable 0/1 error stream (the tests draw theirs the same way)."""
    return (np.random.default_rng(seed).random(n) < rate).astype(np.float64)


def bernoulli_step(seed: int) -> np.ndarray:
    """Error rate 0.15 up to index 3,000, then 0.35 (the tests draw theirs the same way)."""
    rates = np.where(np.arange(STEP_LENGTH) < STEP_AT, STEP_BEFORE, STEP_AFTER)
    return (np.random.default_rng(seed).random(STEP_LENGTH) < rates).astype(np.float64)


def _streams(name: str, seed: int) -> tuple[Any, Any]:
    from river.datasets import synth

    if name.startswith("sea"):
        return synth.SEA(variant=0, noise=0.1, seed=seed), synth.SEA(variant=3, noise=0.1, seed=seed + 7919)
    if name.startswith("agrawal"):
        return (synth.Agrawal(classification_function=0, perturbation=0.05, seed=seed),
                synth.Agrawal(classification_function=2, perturbation=0.05, seed=seed + 7919))
    if name.startswith("stagger"):
        return (synth.STAGGER(classification_function=0, seed=seed),
                synth.STAGGER(classification_function=1, seed=seed + 7919))
    return (synth.Hyperplane(n_features=10, noise_percentage=0.05, seed=seed),
            synth.Hyperplane(n_features=10, noise_percentage=0.05, seed=seed + 7919))


def _model(name: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder
    from sklearn.tree import DecisionTreeClassifier

    if name.startswith("agrawal"):
        return DecisionTreeClassifier(min_samples_leaf=20, random_state=0)
    if name.startswith("stagger"):
        return make_pipeline(OrdinalEncoder(), DecisionTreeClassifier(random_state=0))
    return LogisticRegression()


def synthetic_errors(name: str, seed: int) -> tuple[np.ndarray, int]:
    """The model's 0/1 errors after its training rows, and the drift centre in that stream."""
    import pandas as pd
    from river.datasets import synth

    width = SCENARIOS[name][1]
    centre = N_STABLE + width  # the new concept is ~1.8% of rows at the end of the stable part
    before, after = _streams(name, seed)
    stream = synth.ConceptDriftStream(before, after, position=N_TRAIN + centre, width=width, seed=seed)
    rows, labels = [], []
    for x, y in stream.take(N_TRAIN + centre + N_AFTER):
        rows.append(x)
        labels.append(y)
    frame, target = pd.DataFrame(rows), np.asarray(labels)
    model = _model(name).fit(frame.iloc[:N_TRAIN], target[:N_TRAIN])
    errors = (model.predict(frame.iloc[N_TRAIN:]) != target[N_TRAIN:]).astype(np.float64)
    return errors, centre


def _alarms(method: str, errors: np.ndarray, seed: int) -> list[int]:
    from loopwatch.performance.concept import ConceptDriftDetector, concept_params

    return ConceptDriftDetector(detector=concept_params(method), seed=seed).run(errors)


def calibration_task(task: tuple[str, float, int, tuple[str, ...]]) -> dict[str, Any]:
    kind, rate, seed, methods = task
    errors = bernoulli_stable(seed, rate) if kind == "stable" else bernoulli_step(seed)
    out: dict[str, Any] = {"kind": kind, "rate": rate, "seed": seed, "detectors": {}}
    for method in methods:
        started = time.perf_counter()
        alarms = _alarms(method, errors, seed)
        out["detectors"][method] = {"alarms": alarms, "seconds": time.perf_counter() - started}
    return out


def synthetic_task(task: tuple[str, int, tuple[str, ...]]) -> dict[str, Any]:
    name, seed, methods = task
    errors, centre = synthetic_errors(name, seed)
    out: dict[str, Any] = {
        "scenario": name, "seed": seed, "centre": centre,
        "error_rate_stable": float(errors[:N_STABLE].mean()),
        "error_rate_after": float(errors[centre:].mean()),
        "detectors": {},
    }
    for method in methods:
        alarms = _alarms(method, errors, seed)
        after = [i for i in alarms if i >= N_STABLE]
        out["detectors"][method] = {
            "false_alarms_stable": sum(1 for i in alarms if i < N_STABLE),
            "delay": after[0] - centre if after else None,
        }
    return out


def _poisson_upper(count: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after ``count`` events (3.0 after none)."""
    from scipy import stats

    return float(stats.chi2.ppf(confidence, 2 * count + 2) / 2)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarise(calibration: list[dict[str, Any]], synthetic: list[dict[str, Any]]) -> dict[str, Any]:
    from loopwatch.performance.concept import DETECTORS

    detectors: dict[str, Any] = {}
    for method in DETECTORS:
        stable = [r for r in calibration if r["kind"] == "stable" and method in r["detectors"]]
        counts = [len(r["detectors"][method]["alarms"]) for r in stable]
        step = [r for r in calibration if r["kind"] == "step" and method in r["detectors"]]
        delays = []
        early = 0
        for r in step:
            alarms = r["detectors"][method]["alarms"]
            early += sum(1 for i in alarms if i < STEP_AT)
            later = [i - STEP_AT for i in alarms if i >= STEP_AT]
            if later:
                delays.append(later[0])
        seconds = sum(r["detectors"][method]["seconds"] for r in stable)
        entry: dict[str, Any] = {
            "bernoulli_stable": {
                "streams": len(counts), "predictions": len(counts) * STABLE_LENGTH, "alarms": sum(counts),
                "false_alarms_per_5000": sum(counts) / max(len(counts), 1) * 5000 / STABLE_LENGTH,
                "false_alarms_per_5000_upper_95": _poisson_upper(sum(counts)) / max(len(counts), 1)
                * 5000 / STABLE_LENGTH,
                "alarms_per_rate": {str(rate): sum(len(r["detectors"][method]["alarms"])
                                                   for r in stable if r["rate"] == rate) for rate in STABLE_RATES},
                "microseconds_per_update": seconds / max(len(counts) * STABLE_LENGTH, 1) * 1e6,
            },
            "bernoulli_step": {
                "streams": len(step), "missed": len(step) - len(delays), "alarms_before_step": early,
                "median_delay": _median(delays), "max_delay": max(delays) if delays else None,
            },
            "synthetic": {},
        }
        for name in SCENARIOS:
            runs = [r for r in synthetic if r["scenario"] == name and method in r["detectors"]]
            found = [r["detectors"][method]["delay"] for r in runs if r["detectors"][method]["delay"] is not None]
            false = [r["detectors"][method]["false_alarms_stable"] for r in runs]
            entry["synthetic"][name] = {
                "seeds": len(runs), "missed": len(runs) - len(found),
                "median_delay": _median(found), "max_delay": max(found) if found else None,
                "false_alarms_per_5000_median": _median([f * 5000 / N_STABLE for f in false]),
                "false_alarms_per_5000_mean": sum(false) / max(len(false), 1) * 5000 / N_STABLE,
            }
        detectors[method] = entry
    scenarios = {
        name: {
            "description": SCENARIOS[name][0], "width": SCENARIOS[name][1],
            "error_rate_stable_median": _median([r["error_rate_stable"] for r in synthetic if r["scenario"] == name]),
            "error_rate_after_median": _median([r["error_rate_after"] for r in synthetic if r["scenario"] == name]),
        }
        for name in SCENARIOS
    }
    return {"detectors": detectors, "scenarios": scenarios}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per synthetic scenario")
    parser.add_argument("--slow-seeds", type=int, default=3, help="seeds per synthetic scenario for KSWIN")
    parser.add_argument("--calibration-seeds", type=int, default=100, help="stable Bernoulli streams per error rate")
    parser.add_argument("--slow-calibration-seeds", type=int, default=10,
                        help="stable Bernoulli streams per error rate for the slow detectors (KSWIN)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "concept_drift_quality.json")
    args = parser.parse_args(argv)

    from loopwatch.performance.concept import DEFAULT_PARAMS, DETECTORS

    started = time.perf_counter()
    def methods(seed: int, slow_seeds: int) -> tuple[str, ...]:
        return tuple(m for m in DETECTORS if seed < slow_seeds or m not in SLOW)

    cal_tasks = [("stable", rate, seed, methods(seed, args.slow_calibration_seeds))
                 for rate in STABLE_RATES for seed in range(args.calibration_seeds)]
    cal_tasks += [("step", STEP_AFTER, seed, methods(seed, SLOW_STEP_SEEDS)) for seed in range(STEP_SEEDS)]
    syn_tasks = [(name, seed, methods(seed, args.slow_seeds)) for name in SCENARIOS for seed in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        calibration = list(pool.map(calibration_task, cal_tasks))
        synthetic = list(pool.map(synthetic_task, syn_tasks))
    result = {
        "benchmark": "concept_drift_quality",
        "date": now_iso(),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "libraries": {n: metadata.version(n) for n in ("river", "numpy", "scikit-learn")}},
        "method": {
            "stable_streams": {"rates": list(STABLE_RATES), "length": STABLE_LENGTH, "seeds": args.calibration_seeds,
                               "seeds_slow_detectors": args.slow_calibration_seeds, "slow_detectors": list(SLOW)},
            "step_stream": {"length": STEP_LENGTH, "at": STEP_AT, "before": STEP_BEFORE, "after": STEP_AFTER,
                            "seeds": STEP_SEEDS, "seeds_slow_detectors": SLOW_STEP_SEEDS},
            "synthetic": {"train": N_TRAIN, "stable": N_STABLE, "after_centre": N_AFTER, "seeds": args.seeds,
                          "seeds_slow_detectors": args.slow_seeds},
            "default_params": DEFAULT_PARAMS,
        },
        **summarise(calibration, synthetic),
    }
    write_json(args.out, result)
    _print(result)


def _print(result: dict[str, Any]) -> None:
    print(f"done in {result['seconds']} s")
    for method, entry in result["detectors"].items():
        cal, step = entry["bernoulli_stable"], entry["bernoulli_step"]
        print(f"{method:13s} FA/5000 {cal['false_alarms_per_5000']:.3f} ({cal['alarms']} in {cal['streams']} streams)"
              f"  step: median delay {step['median_delay']} max {step['max_delay']} missed {step['missed']}"
              f"  {cal['microseconds_per_update']:.1f} us/update")
        for name, syn in entry["synthetic"].items():
            print(f"    {name:18s} delay {syn['median_delay']} missed {syn['missed']}/{syn['seeds']}"
                  f"  FA/5000 {syn['false_alarms_per_5000_mean']:.2f}")


if __name__ == "__main__":
    main()
