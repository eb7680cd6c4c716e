"""Real flights, as a user logs them, with a last window of two departures: `loopwatch monitor
--window 7d` and `loopwatch loops --window 7d` answer, in a subprocess on a real SQLite file,
and say which tests the small window was too small for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.drift.compare import MULTIVARIATE_MIN_ROWS
from loopwatch.application.prediction import PredictCall
from loopwatch.application.workspace import Workspace
from tests.realdata import FLIGHTS_CATEGORICAL, codes_as_labels, flights

TRAIN_ROWS = 3000
LOGGED_ROWS = 3000


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("flights-home")
    data = codes_as_labels(flights())
    settings = Settings.from_env({}, home=home, database=str(home / "loopwatch.db"), sqlite_synchronous="NORMAL")
    # January's flights train; three later weeks are served, then a week with two departures
    served = pd.concat([data.iloc[30_000:30_000 + LOGGED_ROWS], data.iloc[[90_000, 90_001]]])
    with Workspace(settings) as ws:
        ws.train("flights", data.iloc[:TRAIN_ROWS].drop(columns=["time"]), target="late",
                 categorical=list(FLIGHTS_CATEGORICAL))
        features = served.drop(columns=["time", "late"])
        rows = features.astype(object).where(features.notna(), None).to_dict(orient="records")
        for start in range(0, len(rows), 1000):
            logged = ws.predictor.predict(PredictCall(
                model_name="flights", rows=rows[start:start + 1000], request_type="replay",
                timestamps=list(served["time"].iloc[start:start + 1000])))
            ws.writer.write(logged)
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOPWATCH_HOME": str(home), "LOOPWATCH_DATABASE": str(home / "loopwatch.db")}
    return subprocess.run([sys.executable, "-m", "loopwatch", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_monitor_reports_the_two_row_window_and_what_it_was_too_small_for(home: Path) -> None:
    done = cli(home, "monitor", "flights", "--window", "7d", "--json")
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    windows = json.loads(done.stdout)["windows"]
    assert sum(w["n_events"] for w in windows) == LOGGED_ROWS + 2
    last = windows[-1]
    assert last["n_events"] == 2
    skipped = {t["test"]: t for t in last["skipped"]}
    assert skipped["multivariate:domain_classifier"] == {
        "test": "multivariate:domain_classifier", "reason": "too_few_rows", "n": 2,
        "minimum": MULTIVARIATE_MIN_ROWS["domain_classifier"]}
    assert set(last["report"]["multivariate"]) == {t for t, m in MULTIVARIATE_MIN_ROWS.items() if m <= 2}
    table = cli(home, "monitor", "flights", "--window", "7d")
    assert table.returncode in (0, 1) and "Traceback" not in table.stderr
    assert "Tests left out:" in table.stdout and "multivariate:domain_classifier too_few_rows (2, needs 4)" in table.stdout


def test_loops_evaluate_over_the_small_window(home: Path) -> None:
    done = cli(home, "loops", "flights", "--window", "7d", "--json", "--until", "2013-12-31")
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    last = report["windows"][-1]
    assert last["n_events"] == 2 and last["estimated"] is None
    assert last["estimated_missing"]["reason"] == "too_few_rows" and last["estimated_missing"]["n_rows"] == 2
    assert any(t["test"] == "multivariate:domain_classifier" for t in last["skipped"])


def test_monitor_from_summaries_reads_the_same_weeks_tiny_one_included(home: Path) -> None:
    """``--source summaries`` (the summariser catches up first, then reads its hours): the same
    weeks with the same events, the two-row week too, and tests left out said as from the log."""
    from_log = json.loads(cli(home, "monitor", "flights", "--window", "7d", "--json").stdout)["windows"]
    done = cli(home, "monitor", "flights", "--window", "7d", "--json", "--source", "summaries")
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    windows = json.loads(done.stdout)["windows"]
    assert [(w["start"], w["n_events"]) for w in windows] == [(w["start"], w["n_events"]) for w in from_log]
    last = windows[-1]
    assert last["n_events"] == 2
    assert any(t["test"] == "multivariate:domain_classifier" and t["reason"] == "too_few_rows" for t in last["skipped"])
    # a week counts all its events, not the rows its sample holds
    assert all(w["report"]["n_current"] == w["n_events"] for w in windows)
