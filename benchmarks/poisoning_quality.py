"""How well the poisoning screens find poisoned training rows, and what screening does to the model.

Datasets (each split into a window to screen and train on, a trusted reference, and a clean holdout):

- ``churn``: the demo's simulator, ``ChurnScenario(seed).training_data(n=5000)`` as the window,
  the same of seed + 1000 as the reference and of seed + 2000 as the holdout (logistic churn,
  about 21% positive, true AUC ~0.78: labels are noisy by nature);
- ``digits``: scikit-learn's handwritten digits (1,797 rows, 64 pixel features, 10 classes),
  shuffled by seed and split 60/20/20.

Poisons, each applied to the window alone:

- ``random_flips``: 5% of rows, each label changed to another class at random;
- ``targeted_flips``: 5% of rows, all in one segment (churn: country DE; digits: true class 3),
  the ones nearest the decision boundary of a model fitted on the reference (the attacker's
  view), each flipped to its runner-up class;
- ``backdoor``: 1% of rows get a trigger (churn: ``monthly_fee=13.37``, a value ordinary rows
  also hold; digits: the two corner pixels ``f0=16``, ``f63=16``) and the attacker's label
  (churn: 0 "stays", the majority class, and ``backdoor_minority``: 1; digits: 0).

Each poison is screened twice: ``anonymous`` (no feedback sources: flips, distance and
backdoor screens) and ``one_source`` (honest rows from "crm" and "app", the poisoned rows
from "attacker", who also sends as many honest rows). Per screen and for all together:
the detection rate (poisoned rows flagged) and the false-positive rate (other rows
flagged). The ``clean`` scenario has no poison. Then a random forest (100 trees;
flexible enough to learn an exact-value trigger, which a linear model cannot) is fitted
on the clean window, on the poisoned one and on the poisoned one after screening
(``screened``: anonymous; ``screened_one_source``: with the sources), and scored on the holdout (accuracy, ROC-AUC for churn) and, for backdoors,
by the attack's success: of the holdout rows the model does not already give the
attacker's label, the share that the trigger switches to it.

Last, the demo's ``label_poisoning`` incident: the simulator's days 28 to 46 are replayed
into a SQLite store at 1,000 predictions a day, and
:func:`loopwatch.application.quarantine.screen_feedback` runs over the labels that arrived on each of
days 43 to 46.

Medians over ``--seeds`` seeds (5). Run from the repository root (about 5 minutes on 2 cores):

    .venv/bin/python benchmarks/poisoning_quality.py
    .venv/bin/python benchmarks/poisoning_quality.py --seeds 2 --demo-seeds 1 --out /tmp/p.json

Writes ``benchmarks/results/poisoning.json``; docs/security.md reports it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine_facts, median, now_iso, write_json  # noqa: E402

from loopwatch.features.schema import FeatureSchema, infer_schema  # noqa: E402
from loopwatch.poisoning.screening import screen_training_data  # noqa: E402
from loopwatch.poisoning.compose import POISONING_SCREENS, ScreenSettings  # noqa: E402

SCREEN_OF_REASON = {"label_flip": "label_flips", "far_from_reference": "reference_distance",
                    "source:": "source_skew", "backdoor:": "backdoor"}
FLIP_SHARE, TRIGGER_SHARE = 0.05, 0.01


@dataclass(frozen=True)
class Dataset:
    name: str
    target: str
    window: pd.DataFrame
    reference: pd.DataFrame
    holdout: pd.DataFrame
    segment: Callable[[pd.DataFrame], np.ndarray]
    trigger: dict[str, Any]
    backdoor_labels: dict[str, Any]


def churn(seed: int) -> Dataset:
    from loopwatch.simulate import ChurnScenario

    return Dataset(
        "churn", "churned", ChurnScenario(seed=seed).training_data(n=5000),
        ChurnScenario(seed=seed + 1000).training_data(n=5000), ChurnScenario(seed=seed + 2000).training_data(n=5000),
        segment=lambda f: (f["country"] == "DE").to_numpy(), trigger={"monthly_fee": 13.37},
        backdoor_labels={"backdoor": 0, "backdoor_minority": 1},
    )


def digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(digit=y)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    a, b = int(0.6 * len(frame)), int(0.8 * len(frame))
    return Dataset(
        "digits", "digit", frame.iloc[:a].reset_index(drop=True), frame.iloc[a:b].reset_index(drop=True),
        frame.iloc[b:].reset_index(drop=True), segment=lambda f: (f["digit"] == 3).to_numpy(),
        trigger={"f0": 16.0, "f63": 16.0}, backdoor_labels={"backdoor": 0},
    )


# --- poisons -----------------------------------------------------------------------------


def random_flips(data: Dataset, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    frame = data.window.copy()
    classes = np.sort(frame[data.target].unique())
    poisoned = rng.random(len(frame)) < FLIP_SHARE
    for i in np.flatnonzero(poisoned):
        others = classes[classes != frame.at[i, data.target]]
        frame.at[i, data.target] = rng.choice(others)
    return frame, poisoned


def targeted_flips(data: Dataset, schema: FeatureSchema, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    frame = data.window.copy()
    model = fitted(data.reference, schema, seed)
    proba = model.predict_proba(frame[schema.names])
    classes = list(model.classes_)
    truth = np.array([classes.index(v) for v in frame[data.target]])
    own = proba[np.arange(len(frame)), truth]
    rival = proba.copy()
    rival[np.arange(len(frame)), truth] = -1.0
    runner_up = rival.argmax(axis=1)
    margin = np.abs(own - rival.max(axis=1))
    in_segment = np.flatnonzero(data.segment(frame))
    budget = min(int(FLIP_SHARE * len(frame)), len(in_segment) // 2)
    chosen = in_segment[np.argsort(margin[in_segment], kind="stable")[:budget]]
    poisoned = np.zeros(len(frame), dtype=bool)
    poisoned[chosen] = True
    frame.loc[chosen, data.target] = [classes[k] for k in runner_up[chosen]]
    return frame, poisoned


def backdoor(data: Dataset, rng: np.random.Generator, label: Any) -> tuple[pd.DataFrame, np.ndarray]:
    frame = data.window.copy()
    chosen = rng.choice(len(frame), max(1, int(round(TRIGGER_SHARE * len(frame)))), replace=False)
    for feature, value in data.trigger.items():
        frame.loc[chosen, feature] = value
    frame.loc[chosen, data.target] = label
    poisoned = np.zeros(len(frame), dtype=bool)
    poisoned[chosen] = True
    return frame, poisoned


def sources_for(poisoned: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Honest rows from crm (2/3) and app (1/3); the attacker sends the poisoned rows and as many honest ones."""
    out = np.where(rng.random(poisoned.size) < 2 / 3, "crm", "app").astype(object)
    out[poisoned] = "attacker"
    honest = np.flatnonzero(~poisoned)
    out[rng.choice(honest, min(int(poisoned.sum()), honest.size), replace=False)] = "attacker"
    return out.tolist()


# --- measuring -------------------------------------------------------------------------------


def fitted(frame: pd.DataFrame, schema: FeatureSchema, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    from loopwatch.models.training import build_pipeline, prepare_features

    # a flexible model: a linear one could not learn an exact-value trigger at all
    forest = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    pipeline = build_pipeline(schema, forest)
    return pipeline.fit(prepare_features(frame, schema), frame[schema.target].to_numpy())


def rates(flagged: np.ndarray, poisoned: np.ndarray) -> dict[str, float | None]:
    return {
        "detection": float(flagged[poisoned].mean()) if poisoned.any() else None,
        "false_positive": float(flagged[~poisoned].mean()),
    }


def screen(data: Dataset, frame: pd.DataFrame, schema: FeatureSchema, poisoned: np.ndarray, seed: int,
           sources: list[str] | None) -> tuple[dict[str, Any], np.ndarray]:
    started = time.perf_counter()
    result = screen_training_data(frame, label_column=data.target, schema=schema, reference=data.reference,
                                  sources=sources, settings=ScreenSettings(seed=seed))
    seconds = time.perf_counter() - started
    per_screen = {name: np.zeros(len(frame), dtype=bool) for name in POISONING_SCREENS}
    position = {index: i for i, index in enumerate(frame.index)}
    for index, reasons in result.quarantined:
        for reason in reasons:
            for prefix, name in SCREEN_OF_REASON.items():
                if reason.startswith(prefix):
                    per_screen[name][position[index]] = True
    out = {"all": rates(~result.kept, poisoned), "seconds": seconds}
    out.update({name: rates(mask, poisoned) for name, mask in per_screen.items() if name in result.screened_by})
    return out, result.kept


def model_effect(data: Dataset, schema: FeatureSchema, frame: pd.DataFrame, kept: np.ndarray,
                 kept_with_sources: np.ndarray, seed: int, label: Any | None) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    from loopwatch.models.training import prepare_features

    holdout_x = prepare_features(data.holdout, schema)
    truth = data.holdout[data.target].to_numpy()
    triggered = data.holdout.copy()
    for feature, value in data.trigger.items():
        triggered[feature] = value
    out: dict[str, Any] = {}
    trainings = (("clean", data.window), ("poisoned", frame), ("screened", frame[kept]),
                 ("screened_one_source", frame[kept_with_sources]))
    for name, train in trainings:
        model = fitted(train, schema, seed)
        predicted = model.predict(holdout_x)
        scores: dict[str, Any] = {"accuracy": float(accuracy_score(truth, predicted))}
        if len(model.classes_) == 2:
            scores["roc_auc"] = float(roc_auc_score(truth, model.predict_proba(holdout_x)[:, 1]))
        if label is not None:
            # of the rows the model does not already give the attacker's label, the share the trigger turns
            other = predicted != label
            switched = model.predict(prepare_features(triggered, schema))[other] == label
            scores["attack_success"] = float(switched.mean()) if other.any() else None
        out[name] = scores
    return out


def run_dataset(make: Callable[[int], Dataset], seeds: int, *, models: bool = True) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for seed in range(seeds):
        data = make(seed)
        schema = infer_schema(data.reference, data.target)
        rng = np.random.default_rng(seed)
        scenarios: dict[str, tuple[pd.DataFrame, np.ndarray, Any]] = {
            "clean": (data.window, np.zeros(len(data.window), dtype=bool), None),
            "random_flips": (*random_flips(data, rng), None),
            "targeted_flips": (*targeted_flips(data, schema, seed), None),
        }
        for scenario, label in data.backdoor_labels.items():
            scenarios[scenario] = (*backdoor(data, rng, label), label)
        for scenario, (frame, poisoned, label) in scenarios.items():
            anonymous, kept = screen(data, frame, schema, poisoned, seed, None)
            one_source, kept_with_sources = screen(data, frame, schema, poisoned, seed, sources_for(poisoned, rng))
            record = {"n_rows": len(frame), "n_poisoned": int(poisoned.sum()), "anonymous": anonymous,
                      "one_source": one_source}
            if scenario != "clean" and models:
                record["model"] = model_effect(data, schema, frame, kept, kept_with_sources, seed, label)
            runs.setdefault(scenario, []).append(record)
            print(f"  {make.__name__} seed {seed} {scenario}: all {anonymous['all']} / source {one_source['all']}",
                  flush=True)
    return {scenario: summarise(records) for scenario, records in runs.items()}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over seeds of every number, keeping the nesting."""

    def walk(parts: list[Any]) -> Any:
        first = parts[0]
        if isinstance(first, dict):
            return {key: walk([p[key] for p in parts if key in p]) for key in first}
        if first is None or isinstance(first, (int, float)):
            values = [p for p in parts if p is not None]
            return round(median(values), 4) if values else None
        return first

    return {"seeds": len(records), **walk(records)}


# --- the demo's label_poisoning incident -------------------------------------------------------


def demo_incident(seed: int, per_day: int) -> dict[str, Any]:
    from loopwatch.config import Settings
    from loopwatch.application.prediction import PredictCall
    from loopwatch.application.quarantine import screen_feedback
    from loopwatch.records import Label
    from loopwatch.simulate import ChurnScenario
    from loopwatch.application.workspace import Workspace

    scenario = ChurnScenario(seed=seed, days=48, predictions_per_day=per_day)
    day_of = scenario.timeline.of_kind("label_poisoning")[0].day
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env({}, home=Path(folder), database=str(Path(folder) / "lw.db"),
                                     sqlite_synchronous="OFF")
        with Workspace(settings) as ws:
            # the first version is fitted on its whole clean table, as when these rates were
            # first measured: its reference sample is what the retraining screens compare with
            ws.train("churn", scenario.training_data(n=5000), target="churned", screen=False)
            starts = {}
            for day in scenario.days():
                starts[day.index] = day.start
                if day.index >= 28:
                    for k, batch in enumerate(day.batches):
                        ws.writer.write(ws.predictor.predict(PredictCall(
                            model_name="churn", rows=[dict(r) for r in batch.rows], request_id=f"d{day.index}-{k}",
                            client_id=batch.client_id, timestamps=list(batch.timestamps),
                            entity_ids=list(batch.entity_ids))))
                ws.store.write_labels([Label(model_name="churn", label=r.label, label_time=r.label_time,
                                             entity_id=r.entity_id, client_id=r.source) for r in day.feedback])
            days = {}
            for index in range(day_of - 3, day_of + 1):
                started = time.perf_counter()
                found = screen_feedback(ws.store, "churn", since=starts[index], until=starts[index] + timedelta(days=1))
                days[str(index)] = {"named": [e.source for e in found], "seconds": round(time.perf_counter() - started, 3),
                                    "evidence": [e.to_dict() for e in found]}
    return {"seed": seed, "poisoning_day": day_of, "days": days}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--demo-seeds", type=int, default=3)
    parser.add_argument("--demo-per-day", type=int, default=1000)
    parser.add_argument("--no-models", action="store_true", help="detection only: no forests fitted")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "poisoning.json")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {"created": now_iso(), "machine": machine_facts(), "seeds": args.seeds,
                               "settings": {"fpr": 0.01, "alpha": 0.01, "k": 20, "flip_share": FLIP_SHARE,
                                            "trigger_share": TRIGGER_SHARE}}
    for make in (churn, digits):
        print(f"{make.__name__}:", flush=True)
        results[make.__name__] = run_dataset(make, args.seeds, models=not args.no_models)
    results["demo_label_poisoning"] = [demo_incident(7 + s, args.demo_per_day) for s in range(args.demo_seeds)]
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.out, results)
    print(f"wrote {args.out} in {results['seconds']} s")


if __name__ == "__main__":
    main()
