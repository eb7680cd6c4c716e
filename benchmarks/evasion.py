"""Evasion: ART's attacks on the churn models, the runtime adversarial score, the input
defences and adversarial training, measured.

For each seed (default 0, 1, 2):

1. The stable churn world's 5,000 training rows (``ChurnScenario(seed).training_data()``)
   train two models exactly as ``loopwatch train`` does, each with its reference profile and
   so with its adversarial detector fitted on the training split and calibrated on the
   holdout (500 rows for the signals' nulls, 500 for the threshold): the production churn
   model (logistic regression, loopwatch's default) and a random forest of 50 trees (fewer
   than the default 200: HopSkipJump calls the model thousands of times per row).
2. 2,000 fresh rows of the same world (the draw of seed + 1000) that neither model saw give
   the realized false-positive rate at 1% and 5%, and the rows to attack.
3. The attacks, all untargeted, on fresh rows:
   * ``boundary``: loopwatch's own black-box walk along a logistic surrogate's weights until
     the answer flips (overshoot 0, and 0.1 sd past the boundary), 300 rows;
   * ART's FGSM and PGD (L-inf budget 0.25 and 0.5 training sd, PGD 20 steps) on the
     logistic regression through ``ScikitlearnLogisticRegression``, 300 rows; and FGSM with
     a budget of 1 sd allowed up to 3 sd past the training range (the API takes any finite
     number: this is the attack clipping is for);
   * ART's HopSkipJump (L2, black box through ``SklearnClassifier``): 40 rows and 20
     iterations on the logistic regression, 20 rows and 10 iterations on the forest.
   Every attack moves the numeric features only (the one-hot categoricals are frozen by
   ART's mask, so categories stay valid), within their training ranges unless said
   otherwise, rounded where the feature is integer; success is judged on those rows
   through the whole pipeline.

Per attack: success rate (share of the rows the model got right that it now gets wrong),
detection rate at 1% and 5% FPR counted over the successful attacks only (thresholds from
the training-time calibration), accuracy on the attacked rows with no defence, with
``clip`` and with ``clip`` + ``squeeze`` (the defences applied to the attacked rows; the
attacks do not know of them), and the clean accuracy under the same defences. Medians over
the seeds; every seed's numbers are kept too.

Adversarial training: each model is retrained on its training rows plus
``augment_with_adversarial(share=0.2)``; clean accuracy and robust accuracy (right, and
not flipped by the boundary attack within 0.5 sd) on 300 fresh rows, before and after.

Cost: the time ``Predictor.predict`` adds per request of 1 and 100 rows for the score and
for the defences (median of interleaved rounds, wall and thread CPU time), on a SQLite
workspace, and the bytes the score adds to a logged row summary.

    .venv/bin/python benchmarks/evasion.py [--seeds 0 1 2] [--cost-rounds 200]

Needs the ``adversarial`` extra. Writes benchmarks/results/evasion.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from loopwatch.models.art_attacks import art_attack, import_art  # noqa: E402
from loopwatch.models.attacks import AttackResult, augment_with_adversarial, boundary_attack  # noqa: E402
from loopwatch.models.defences import apply_defences  # noqa: E402
from loopwatch.models.training import prepare_features, train_model  # noqa: E402
from loopwatch.simulate import ChurnScenario  # noqa: E402

RESULTS = _common.RESULTS_DIR / "evasion.json"
FOREST = {"n_estimators": 50}
DEFENCES = {"clip": ["clip"], "clip_squeeze": ["clip", "squeeze"]}


def attacks_for(estimator: str) -> list[tuple[str, int, Callable[..., AttackResult]]]:
    """(name, rows attacked, attack) per model."""
    plan: list[tuple[str, int, Callable[..., AttackResult]]] = [
        ("boundary", 300, lambda r, m, s, seed: boundary_attack(r, m, s, seed=seed)),
        ("boundary_overshoot_0.1sd", 300, lambda r, m, s, seed: boundary_attack(r, m, s, seed=seed, overshoot=0.1)),
    ]
    if estimator == "logistic_regression":
        for eps in (0.25, 0.5):
            plan.append((f"fgsm_eps{eps}", 300, lambda r, m, s, seed, e=eps: art_attack("fgsm", r, m, s, eps=e, seed=seed)))
            plan.append((f"pgd_eps{eps}", 300, lambda r, m, s, seed, e=eps: art_attack("pgd", r, m, s, eps=e, seed=seed)))
        # the API takes any finite number: an attack that leaves the training range (up to 3 sd past it)
        plan.append(("fgsm_eps1.0_out_of_range", 300, lambda r, m, s, seed: art_attack(
            "fgsm", r, m, s, eps=1.0, seed=seed, beyond_sd=3.0)))
        plan.append(("hopskipjump", 40, lambda r, m, s, seed: art_attack(
            "hopskipjump", r, m, s, seed=seed, max_iter=20, max_eval=1000)))
    else:
        plan.append(("hopskipjump", 20, lambda r, m, s, seed: art_attack(
            "hopskipjump", r, m, s, seed=seed, max_iter=10, max_eval=500)))
    return plan


def evaluate(result: AttackResult, rows: pd.DataFrame, truth: np.ndarray, trained: Any) -> dict[str, Any]:
    model, schema, detector = trained.pipeline, trained.schema, trained.profile.adversarial
    correct = model.predict(rows) == truth
    attacked = result.adversarial
    after = model.predict(attacked)
    success = correct & (after != truth)
    out: dict[str, Any] = {
        "n_rows": int(len(rows)),
        "n_successful": int(success.sum()),
        "success_rate": float(success.sum() / max(correct.sum(), 1)),
        "median_distance_sd": float(np.median(result.distance[success])) if success.any() else None,
        "accuracy_clean": float(correct.mean()),
        "accuracy_under_attack": float((after == truth).mean()),
    }
    if success.any():
        scores = detector.score_samples(attacked[success], model=model)
        for fpr in (0.01, 0.05):
            out[f"detection_at_{round(fpr * 100)}pct_fpr"] = float((scores > detector.threshold_for(fpr)).mean())
    for name, chosen in DEFENCES.items():
        out[f"accuracy_clean_{name}"] = float((model.predict(apply_defences(rows, schema, chosen)) == truth).mean())
        out[f"accuracy_under_attack_{name}"] = float(
            (model.predict(apply_defences(attacked, schema, chosen)) == truth).mean())
    return out


def run_seed(seed: int) -> dict[str, Any]:
    world = ChurnScenario(seed=seed)
    training = world.training_data()
    fresh_frame = ChurnScenario(seed=seed + 1000).training_data(n=2000)
    out: dict[str, Any] = {}
    for estimator in ("logistic_regression", "random_forest"):
        started = time.perf_counter()
        trained = train_model(training, "churned", estimator=estimator, seed=seed,
                              estimator_params=FOREST if estimator == "random_forest" else None)
        detector = trained.profile.adversarial
        fresh = prepare_features(fresh_frame, trained.schema)
        truth = fresh_frame["churned"].to_numpy()
        clean = detector.score_samples(fresh, model=trained.pipeline)
        model_out: dict[str, Any] = {
            "train_seconds": time.perf_counter() - started,
            "calibration_rows": int(detector.calibration_n_),
            "clean_flag_rate_at_1pct": float((clean > detector.threshold_for(0.01)).mean()),
            "clean_flag_rate_at_5pct": float((clean > detector.threshold_for(0.05)).mean()),
            "attacks": {},
        }
        rng = np.random.default_rng(seed)
        for name, n_rows, attack in attacks_for(estimator):
            pick = np.sort(rng.choice(len(fresh), size=n_rows, replace=False))
            rows = fresh.iloc[pick].reset_index(drop=True)
            started = time.perf_counter()
            result = attack(rows, trained.pipeline, trained.schema, seed)
            metrics = evaluate(result, rows, truth[pick], trained)
            metrics["seconds"] = time.perf_counter() - started
            model_out["attacks"][name] = metrics
            print(f"  seed {seed} {estimator:20s} {name:26s} success {metrics['success_rate']:.2f} "
                  f"det@1% {metrics.get('detection_at_1pct_fpr', float('nan')):.2f} "
                  f"det@5% {metrics.get('detection_at_5pct_fpr', float('nan')):.2f} "
                  f"acc {metrics['accuracy_under_attack']:.2f} -> {metrics['accuracy_under_attack_clip_squeeze']:.2f} "
                  f"({metrics['seconds']:.1f} s)", flush=True)
        model_out["adversarial_training"] = adversarial_training(training, fresh_frame, trained, estimator, seed)
        out[estimator] = model_out
    return out


def adversarial_training(training: pd.DataFrame, fresh_frame: pd.DataFrame, trained: Any, estimator: str,
                         seed: int) -> dict[str, Any]:
    params = FOREST if estimator == "random_forest" else None
    augmented = augment_with_adversarial(training, "churned", trained.pipeline, share=0.2, seed=seed,
                                         schema=trained.schema)
    retrained = train_model(augmented, "churned", estimator=estimator, seed=seed, estimator_params=params,
                            profile=False)
    rows = prepare_features(fresh_frame.iloc[:300], trained.schema)
    truth = fresh_frame["churned"].to_numpy()[:300]
    all_rows = prepare_features(fresh_frame, trained.schema)
    out: dict[str, Any] = {"rows_added": int(len(augmented) - len(training))}
    for name, model in (("before", trained.pipeline), ("after", retrained.pipeline)):
        attacked = boundary_attack(rows, model, trained.schema, seed=seed + 1, overshoot=0.1)
        flipped_within_budget = attacked.success & (attacked.distance <= 0.5)
        out[name] = {
            "accuracy_clean": float((model.predict(all_rows) == fresh_frame["churned"].to_numpy()).mean()),
            "robust_accuracy_0.5sd": float(((model.predict(rows) == truth) & ~flipped_within_budget).mean()),
            "median_flip_distance_sd": float(np.median(attacked.distance[attacked.success])),
        }
    return out


def measure_cost(rounds: int) -> dict[str, Any]:
    """Added time of the score and the defences on ``Predictor.predict``, 1- and 100-row requests."""
    from datetime import datetime, timezone

    from loopwatch.application import loop_actions
    from loopwatch.config import Settings
    from loopwatch.application.prediction import PredictCall
    from loopwatch.records.jsonutil import dumps
    from loopwatch.application.workspace import Workspace

    training = ChurnScenario(seed=0).training_data()
    trained = train_model(training, "churned", seed=0)
    fresh = ChurnScenario(seed=1000).training_data(n=100).drop(columns="churned")
    rows = fresh.astype(object).where(fresh.notna(), None).to_dict(orient="records")
    with tempfile.TemporaryDirectory() as home, Workspace(
        Settings.from_env({}, home=Path(home), database=str(Path(home) / "lw.db"))
    ) as ws:
        ws.registry.register("scored", trained)
        ws.registry.register("scored-defended", trained)
        detector = trained.profile.adversarial
        trained.profile.adversarial = None
        ws.registry.register("plain", trained)
        ws.registry.register("plain-defended", trained)
        trained.profile.adversarial = detector
        for name in ("scored-defended", "plain-defended"):
            loop_actions.change_monitoring_config(ws.store, name, {"defences": ["clip", "squeeze"]},
                                               at=datetime.now(timezone.utc))
        names = ("plain", "scored", "plain-defended", "scored-defended")
        out: dict[str, Any] = {"rounds": rounds}
        for n in (1, 100):
            calls = {name: PredictCall(model_name=name, rows=rows[:n]) for name in names}
            for call in calls.values():
                for _ in range(5):
                    ws.predictor.predict(call)
            wall: dict[str, list[float]] = {name: [] for name in names}
            cpu: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds):  # interleaved, so a busy moment hits every variant alike
                for name, call in calls.items():
                    w, c = time.perf_counter(), time.thread_time()
                    ws.predictor.predict(call)
                    cpu[name].append((time.thread_time() - c) * 1000)
                    wall[name].append((time.perf_counter() - w) * 1000)
            med = {k: {"wall_ms": statistics.median(wall[k]), "cpu_ms": statistics.median(cpu[k])} for k in names}
            out[f"{n}_rows"] = {
                "median_ms": med,
                "added_by_score_ms": {t: med["scored"][t] - med["plain"][t] for t in ("wall_ms", "cpu_ms")},
                "added_by_defences_ms": {t: med["plain-defended"][t] - med["plain"][t] for t in ("wall_ms", "cpu_ms")},
                "added_by_both_ms": {t: med["scored-defended"][t] - med["plain"][t] for t in ("wall_ms", "cpu_ms")},
            }
        scored = ws.predictor.predict(PredictCall(model_name="scored", rows=rows[:1])).row_summaries[0]
        plain = ws.predictor.predict(PredictCall(model_name="plain", rows=rows[:1])).row_summaries[0]
        out["row_summary_bytes"] = {"plain": len(dumps(plain)), "scored": len(dumps(scored))}
        started = time.perf_counter()
        ws.predictor._detectors.clear()  # the first request of a version loads its profile once
        ws.predictor.predict(PredictCall(model_name="scored", rows=rows[:1]))
        out["first_request_load_ms"] = (time.perf_counter() - started) * 1000
    return out


def summarize(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    seeds = list(per_seed)
    out: dict[str, Any] = {}
    for estimator in per_seed[seeds[0]]:
        first = per_seed[seeds[0]][estimator]
        model: dict[str, Any] = {k: _common.median(per_seed[s][estimator][k] for s in seeds)
                                 for k in ("clean_flag_rate_at_1pct", "clean_flag_rate_at_5pct")}
        model["attacks"] = {
            attack: {k: _common.median(per_seed[s][estimator]["attacks"][attack].get(k) for s in seeds)
                     for k in metrics if k != "n_rows"} | {"n_rows": metrics["n_rows"]}
            for attack, metrics in first["attacks"].items()
        }
        model["adversarial_training"] = {
            phase: {k: _common.median(per_seed[s][estimator]["adversarial_training"][phase][k] for s in seeds)
                    for k in first["adversarial_training"][phase]}
            for phase in ("before", "after")
        }
        out[estimator] = model
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cost-rounds", type=int, default=200)
    args = parser.parse_args()
    import_art()
    started = time.perf_counter()
    per_seed = {seed: run_seed(seed) for seed in args.seeds}
    print("  measuring the cost on predict ...", flush=True)
    cost = measure_cost(args.cost_rounds)
    result = {
        "benchmark": "evasion",
        "created": _common.now_iso(),
        "machine": _common.machine_facts(),
        "seeds": args.seeds,
        "summary_median_over_seeds": summarize(per_seed),
        "per_seed": {str(s): v for s, v in per_seed.items()},
        "predict_cost": cost,
        "seconds": time.perf_counter() - started,
    }
    _common.write_json(RESULTS, result)
    print(f"wrote {RESULTS} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
