"""The demo's whole loop, on six seeds chosen in advance: every graded incident is detected
within its stated delay, diagnosed as its true kind and mapped to its loop (the probing client
and the poisoning source by the names of their API keys), and no finding is a false alarm under
the strict grading: each incident explains only findings of its own kind in its period, and
every other finding, or signal tied to no incident, counts. The demo's service runs with auth on
and refuses what it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The three seeds the detectors were developed on.
KNOWN_SEEDS = (7, 11, 23)
#: Drawn at random (secrets.randbelow) on 2026-12-07 and committed before any detector change
#: of the real-data work, so that no detector is tuned on them. The hardening work grades on
#: them too.
UNSEEN_SEEDS = (55434, 81736, 22823)
SEEDS = KNOWN_SEEDS + UNSEEN_SEEDS
EXPECTED = {
    "covariate_shift": "eda",
    "selection_bias": "data_collection",
    "software_change": "model_selection",
    "concept_drift": "model_selection",
    "latency_regression": "model_selection",
    "adversarial_probing": "model_selection",
    "label_poisoning": "data_collection",
}
#: Who each security incident must name.
NAMED = {"adversarial_probing": "probe-7", "label_poisoning": "partner-feed"}


#: Through the prediction log (``--log``) instead of window summaries, the demo's default: one
#: known seed in CI, so that both paths of the loop engine are graded end to end.
LOG_SEEDS = (7,)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize(("seed", "summaries"), [(s, True) for s in SEEDS] + [(s, False) for s in LOG_SEEDS])
def test_demo_closes_the_loop(tmp_path: Path, seed: int, summaries: bool) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    # the demo runs the code under test: a PYTHONPATH that put it first stays in force
    env.update({k: v for k, v in os.environ.items() if k == "PYTHONPATH"})
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "demo", "--json", "--seed", str(seed), "--dir", str(tmp_path / "demo"),
         *([] if summaries else ["--log"])],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    auth = summary["auth"]
    assert auth["enabled"] is True
    assert [(c["status"], c["error_code"]) for c in auth["checks"]] == [(401, "unauthorized"), (403, "forbidden")]
    key_ids = {k["name"]: k["key_id"] for group in ("clients", "feedback_sources") for k in auth["keys"][group]}
    loops = summary["loops"]
    found = {d["kind"]: d for d in loops["incidents"]}
    assert set(found) == set(EXPECTED)
    for kind, loop in EXPECTED.items():
        graded = found[kind]
        assert graded["detected_day"] is not None, graded
        assert graded["injected_day"] <= graded["detected_day"] <= graded["deadline_day"], graded
        assert graded["diagnosis"] == kind, graded
        assert graded["loop"] == loop, graded
        assert graded["correct"], graded
        if kind in NAMED:
            # named by its key's name, and logged under that key's id (not a header it chose)
            assert graded["named"] == NAMED[kind], graded
            assert graded["named_id"] == key_ids[NAMED[kind]], graded
    # strict: a finding of another kind inside an incident's period, or an overfitting gap, counts
    assert loops["false_alarms"] == [], loops["false_alarms"]
    # labels arrived late and were joined: most predictions old enough to be labelled have one
    assert summary["labels_sent"] > 0
    assert loops["labels"]["coverage_mature"] > 0.9
    assert loops["labels"]["delay_hours"]["p50"] > 24 * 13
    # the label-free estimate was set beside realized performance on every labelled day
    performance = loops["performance"]
    assert performance["meant_for"]["days"] > 0 and performance["meant_for"]["mean_abs_error"] is not None
    assert performance["cannot_know"]["days"] > 0
    print(json.dumps({"seed": seed, "false_alarms": loops["false_alarms"],  # the demo docs' tables (-rP)
                      "detected": {k: found[k]["detected_day"] for k in EXPECTED},
                      "meant_for": performance["meant_for"], "cannot_know": performance["cannot_know"]}))
