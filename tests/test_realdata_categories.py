"""New York's 2013 flights, categories as integer codes, end to end.

A model is trained with ``loopwatch train --categorical carrier,origin,dest,weekday`` on a
CSV of real departures; the same rows are then sent over HTTP once with the codes as JSON
numbers and once as strings, and later departures are scored with ``loopwatch predict``
from a CSV in which some destinations are blank (so pandas reads the codes as floats).
``loopwatch monitor`` and ``loopwatch loops`` then run as a user runs them, in their own
processes: no traceback, and the monitor counts each window's categories exactly as they
were sent, whichever form they were sent in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.service import create_app
from tests.realdata import FLIGHTS_CATEGORICAL, flights

FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]


def loopwatch(home: Path, *args: str, codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOPWATCH_HOME": str(home)}  # PYTHONPATH passes through: this tree's code
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode in codes, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    return done


def json_rows(frame: pd.DataFrame, *, as_strings: bool) -> list[dict[str, Any]]:
    rows = []
    for record in frame[FEATURES].to_dict(orient="records"):
        row = {k: (None if pd.isna(v) else v) for k, v in record.items()}
        for name in FLIGHTS_CATEGORICAL:
            row[name] = str(int(row[name])) if as_strings else int(row[name])
        rows.append(row)
    return rows


def window_counts(report: dict[str, Any], start: datetime) -> dict[str, Counter[str]]:
    """The categories the monitor counted in the whole window (no segment) starting at ``start``."""
    found = [w for w in report["windows"] if w["start"].startswith(start.strftime("%Y-%m-%d")) and not w["segment"]]
    assert len(found) == 1, [w["start"] for w in report["windows"]]
    features = found[0]["report"]["features"]
    out = {}
    for name in FLIGHTS_CATEGORICAL:
        dist = features[name]["distribution"]
        out[name] = Counter({c: n for c, n in zip(dist["categories"], dist["current"]) if n})
    return out


def sent_counts(frame: pd.DataFrame) -> dict[str, Counter[str]]:
    return {name: Counter(str(int(v)) for v in frame[name].dropna()) for name in FLIGHTS_CATEGORICAL}


@pytest.mark.slow
def test_integer_coded_flights_train_predict_monitor_and_loops(tmp_path: Path) -> None:
    data = flights().iloc[:6000].drop(columns="time")
    training, served, scored = data.iloc[:3000], data.iloc[3000:3400], data.iloc[3400:4400].copy()
    home = tmp_path / "home"
    train_csv = tmp_path / "train.csv"
    training.to_csv(train_csv, index=False)
    trained = loopwatch(home, "train", str(train_csv), "-m", "flights", "-t", "late",
                        "--categorical", ",".join(FLIGHTS_CATEGORICAL), "--json")
    schema = {f["name"]: f for f in json.loads(trained.stdout)["schema"]["features"]}
    assert {name: schema[name]["category_type"] for name in FLIGHTS_CATEGORICAL} == dict.fromkeys(
        FLIGHTS_CATEGORICAL, "integer")
    assert schema["sched_hour"]["kind"] == "numeric"  # integer, but not declared categorical
    assert schema["air_time"]["nullable"]  # training saw it missing

    # the same rows over HTTP, as JSON numbers on one day and as strings on the next
    now = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    as_numbers, as_strings = now - timedelta(days=3), now - timedelta(days=2)
    settings = Settings.from_env({}, home=home, database=str(home / "loopwatch.db"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        answers = []
        for moment, strings in ((as_numbers, False), (as_strings, True)):
            response = http.post("/v1/models/flights/predict",
                                 json={"rows": json_rows(served, as_strings=strings), "timestamp": moment.isoformat()})
            assert response.status_code == 200, response.text[:500]
            answers.append(response.json()["probabilities"])
    assert answers[0] == answers[1]  # one category, one prediction, whichever form

    # later departures from a CSV with blank destinations: pandas reads the codes as floats
    scored.loc[scored.index[::50], "dest"] = None
    score_csv = tmp_path / "score.csv"
    scored.drop(columns="late").to_csv(score_csv, index=False)
    assert pd.read_csv(score_csv)["dest"].dtype == "float64"
    loopwatch(home, "predict", str(score_csv), "-m", "flights", "--out", str(tmp_path / "out.csv"))
    assert len(pd.read_csv(tmp_path / "out.csv")) == len(scored)

    done = loopwatch(home, "monitor", "flights", "--window", "1d", "--segment", "carrier", "--json", codes=(0, 1))
    report = json.loads(done.stdout)
    expected = sent_counts(served)
    assert window_counts(report, as_numbers) == expected
    assert window_counts(report, as_strings) == expected
    today = [w for w in report["windows"] if w["start"].startswith(now.strftime("%Y-%m-%d")) and not w["segment"]]
    assert window_counts(report, now) == sent_counts(scored)
    # dest never missing in training, not declared nullable: served, counted, reported
    assert today[0]["report"]["data_quality"]["unexpected_missing"] == {"dest": len(scored.index[::50])}
    assert "quality:unexpected_missing:dest" in today[0]["alarms"]
    segments = {w["segment"] for w in report["windows"] if w["segment"]}
    assert f"carrier={int(served['carrier'].mode()[0])}" in segments  # segments named by code

    loops = loopwatch(home, "loops", "flights", "--json", codes=(0, 1))
    assert json.loads(loops.stdout)["model"] == "flights"
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        response = http.get("/v1/models/flights/loops")
        assert response.status_code == 200, response.text[:500]
