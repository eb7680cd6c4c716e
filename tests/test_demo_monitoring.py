"""The demo's monitoring finds the input incidents in time and stays quiet on stable days,
on three seeds chosen in advance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SEEDS = (7, 11, 23)
#: What each graded incident must show among the features that moved.
EXPECTED_FEATURE = {"covariate_shift": "watch_hours", "selection_bias": "country", "software_change": "watch_hours"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_demo_finds_input_incidents_and_no_false_alarms(tmp_path: Path, seed: int) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "demo", "--json", "--days", "30", "--seed", str(seed),
         "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    monitoring = json.loads(done.stdout)["monitoring"]
    detections = {d["kind"]: d for d in monitoring["detections"]}
    assert set(detections) == set(EXPECTED_FEATURE)
    for kind, feature in EXPECTED_FEATURE.items():
        found = detections[kind]
        assert found["in_time"], found
        assert feature in found["features"], found
    assert monitoring["false_alarms"] == [], monitoring["false_alarms"]
    assert monitoring["stable_days"] >= 10
