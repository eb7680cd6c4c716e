"""A model trained and served outside loopwatch, monitored by loopwatch, with real processes.

The team's own FastAPI service (``examples/own_service/app.py``, its own uvicorn process)
serves a regressor of flight air time trained on real 2013 New York departures. It logs
each prediction and, later, each outcome with :mod:`loopwatch.client` into a running
``loopwatch serve`` where the model is registered monitor-only (schema and a reference of
the team's own predictions and labels, no artifact). Part way through, an upstream change
starts sending distances in kilometres; ``loopwatch loops`` must name that shift. Then a
month of predictions made by a batch job elsewhere arrives as a Parquet file through
``loopwatch ingest``, with a time-zone bug in its second half, and is monitored the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from loopwatch.demo.runner import ServiceProcess, free_port
from tests.realdata import flights

ROOT = Path(__file__).resolve().parents[2]
MODEL = "flights-air"
FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance"]
DAYS, PER_DAY, SHIFT_DAY = 14, 150, 8
START = pd.Timestamp("2026-03-01", tz="UTC")
MONTH = pd.Timestamp("2026-04-01", tz="UTC")


def _loopwatch(*args: str, database: Path, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOPWATCH_DATABASE": str(database)}
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)
    assert done.returncode in ok, f"loopwatch {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _days(frame: pd.DataFrame, *, start: pd.Timestamp, days: int, per_day: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame.sample(n=days * per_day, random_state=seed).reset_index(drop=True)
    seconds = np.sort(rng.integers(0, 86_400, len(out)))
    day = np.repeat(np.arange(days), per_day)
    out["time"] = start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.permutation(seconds), unit="s")
    return out.sort_values("time", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The team's model (trained on January), its reference (February, with its predictions
    and the true air times), and the later traffic (March and April rows)."""
    import joblib
    from sklearn.ensemble import HistGradientBoostingRegressor

    folder = tmp_path_factory.mktemp("own-service")
    data = flights().dropna(subset=["air_time"])
    month = data["time"].dt.month
    train = data[month == 1].sample(n=20_000, random_state=1)
    model = HistGradientBoostingRegressor(random_state=0).fit(train[FEATURES], train["air_time"])
    joblib.dump(model, folder / "model.joblib")

    reference = data[month == 2].sample(n=5_000, random_state=2)[FEATURES + ["air_time"]].reset_index(drop=True)
    reference["prediction"] = model.predict(reference[FEATURES])
    reference.to_parquet(folder / "reference.parquet")
    return {"folder": folder, "model": model, "data": data}


def test_a_shift_in_the_teams_own_service_is_named_by_loopwatch_loops(world: dict[str, Any]) -> None:
    folder: Path = world["folder"]
    database = folder / "loopwatch.db"
    _loopwatch("register", MODEL, "--reference", str(folder / "reference.parquet"), "--target", "air_time",
               "--prediction-column", "prediction", "--task", "regression",
               "--categorical", "carrier,origin,dest,weekday", database=database)

    data: pd.DataFrame = world["data"]
    traffic = _days(data[data["time"].dt.month == 3], start=START, days=DAYS, per_day=PER_DAY, seed=3)
    shifted = traffic["time"] >= START + pd.Timedelta(days=SHIFT_DAY)
    # the upstream change: distances arrive in kilometres instead of miles
    traffic.loc[shifted, "distance"] = (traffic.loc[shifted, "distance"] * 1.609344).round(0)

    port = free_port()
    with ServiceProcess(str(database)) as service:
        env = {**os.environ, "MODEL_PATH": str(folder / "model.joblib"), "LOOPWATCH_URL": service.url,
               "LOOPWATCH_MODEL": MODEL, "OMP_NUM_THREADS": "1"}
        app = subprocess.Popen([sys.executable, "-m", "uvicorn", "examples.own_service.app:app",
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                               cwd=ROOT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_live(base, app)
            with httpx.Client(base_url=base, timeout=30) as http:
                ids = []
                for row in traffic.itertuples(index=False):
                    features = {c: getattr(row, c) for c in FEATURES}
                    features = {k: (v.item() if hasattr(v, "item") else v) for k, v in features.items()}
                    answer = http.post("/predict", json={"features": features, "time": row.time.isoformat()})
                    assert answer.status_code == 200, answer.text
                    ids.append(answer.json()["request_id"])
                # the outcomes arrive a few hours after each flight
                for request_id, row in zip(ids, traffic.itertuples(index=False)):
                    arrived = (row.time + pd.Timedelta(hours=6)).isoformat()
                    answer = http.post("/outcomes", json={"request_id": request_id, "air_time": float(row.air_time),
                                                          "time": arrived})
                    assert answer.status_code == 200, answer.text
                stats = _settled(http)
            assert stats["sent"] == 2 * len(traffic) and stats["rejected"] == stats["dropped"] == 0, stats
        finally:
            app.terminate()
            app.wait(timeout=30)

    done = _loopwatch("loops", MODEL, "--since", START.isoformat(),
                      "--until", (START + pd.Timedelta(days=DAYS)).isoformat(), "--json",
                      database=database, ok=(1,))
    incidents = json.loads(done.stdout)["incidents"]
    shifts = [i for i in incidents if i["kind"] == "covariate_shift" and "distance" in json.dumps(i)]
    assert shifts, f"no covariate shift naming distance among {[(i['kind'], i['summary']) for i in incidents]}"
    first = pd.Timestamp(min(i["first_seen"] for i in shifts))
    shift_start = START + pd.Timedelta(days=SHIFT_DAY)
    assert shift_start <= first < shift_start + pd.Timedelta(days=2)


def test_a_month_of_batch_predictions_from_a_parquet_file_is_ingested_and_monitored(world: dict[str, Any]) -> None:
    folder: Path = world["folder"]
    database = folder / "batch.db"
    _loopwatch("register", MODEL, "--reference", str(folder / "reference.parquet"), "--target", "air_time",
               "--prediction-column", "prediction", "--task", "regression",
               "--categorical", "carrier,origin,dest,weekday", database=database)

    data: pd.DataFrame = world["data"]
    month = _days(data[data["time"].dt.month == 4], start=MONTH, days=30, per_day=200, seed=4)
    late = month["time"] >= MONTH + pd.Timedelta(days=15)
    # a batch job's time-zone bug: from the 16th, scheduled hours are written in UTC
    month.loc[late, "sched_hour"] = (month.loc[late, "sched_hour"] + 4) % 24
    month["prediction"] = world["model"].predict(month[FEATURES])
    month["request_id"] = [f"batch-{i}" for i in range(len(month))]
    month[["request_id", "time", *FEATURES, "prediction"]].to_parquet(folder / "april.parquet")

    ingest = ("ingest", str(folder / "april.parquet"), "--model", MODEL, "--map", "timestamp=time",
              "--map", "prediction=prediction", "--map", "request_id=request_id")
    first = json.loads(_loopwatch(*ingest, database=database).stdout)
    assert (first["rows"], first["accepted"], first["duplicates"]) == (len(month), len(month), 0)
    # the same file again: every row is a duplicate, nothing is stored twice
    again = json.loads(_loopwatch(*ingest, database=database).stdout)
    assert (again["accepted"], again["duplicates"]) == (0, len(month))

    done = _loopwatch("loops", MODEL, "--since", MONTH.isoformat(),
                      "--until", (MONTH + pd.Timedelta(days=30)).isoformat(), "--json", database=database, ok=(1,))
    incidents = json.loads(done.stdout)["incidents"]
    shifts = [i for i in incidents if i["kind"] == "covariate_shift" and "sched_hour" in json.dumps(i)]
    assert shifts, f"no covariate shift naming sched_hour among {[(i['kind'], i['summary']) for i in incidents]}"
    assert pd.Timestamp(min(i["first_seen"] for i in shifts)) >= MONTH + pd.Timedelta(days=15)


def _wait_live(base: str, app: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert app.poll() is None, "the team's service exited"
        try:
            if httpx.get(base + "/stats", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the team's service did not start")


def _settled(http: httpx.Client) -> dict[str, Any]:
    """The client's counts once nothing is left to send."""
    deadline = time.monotonic() + 60
    while True:
        stats = http.get("/stats").json()
        if stats["buffered"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)
