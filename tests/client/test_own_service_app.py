"""The example service (``examples/own_service/app.py``) in its own uvicorn process: what its
client sends (to a stand-in of the events route), and that it serves with loopwatch down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loopwatch.demo.runner import free_port
from tests.client.standin import StandIn
from tests.realdata import flights

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.ensemble import HistGradientBoostingRegressor

    data = flights().dropna(subset=["air_time"]).sample(n=5_000, random_state=0)
    path = tmp_path_factory.mktemp("own-app") / "model.joblib"
    joblib.dump(HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(data[FEATURES], data["air_time"]), path)
    return path


@contextmanager
def own_service(model_path: Path, loopwatch_url: str) -> Iterator[httpx.Client]:
    port = free_port()
    env = {**os.environ, "MODEL_PATH": str(model_path), "LOOPWATCH_URL": loopwatch_url, "MODEL_VERSION": "hgb-1",
           "OMP_NUM_THREADS": "1"}  # one-row predictions: OpenMP threads only contend on a small machine
    app = subprocess.Popen([sys.executable, "-m", "uvicorn", "examples.own_service.app:app", "--host", "127.0.0.1",
                            "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                assert app.poll() is None, "the service exited"
                try:
                    http.get("/stats", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the service did not start"
                    time.sleep(0.2)
            yield http
    finally:
        app.terminate()
        app.wait(timeout=30)


def _rows(n: int) -> list[dict]:
    frame = flights().dropna(subset=["air_time"]).tail(n)
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()} | {"_time": t.isoformat()}
            for row, t in zip(frame[FEATURES + ["air_time"]].to_dict(orient="records"), frame["time"])]


def test_the_service_logs_each_prediction_and_outcome_through_the_client(model_path: Path) -> None:
    rows = _rows(40)
    with StandIn() as loopwatch, own_service(model_path, loopwatch.url) as http:
        answers = []
        for row in rows:
            features = {c: row[c] for c in FEATURES}
            answer = http.post("/predict", json={"features": features, "time": row["_time"]})
            assert answer.status_code == 200
            answers.append(answer.json())
        for row, answer in zip(rows, answers):
            assert http.post("/outcomes", json={"request_id": answer["request_id"], "air_time": row["air_time"],
                                                "time": row["_time"]}).status_code == 200
        deadline = time.monotonic() + 30
        while http.get("/stats").json()["sent"] < 80:
            assert time.monotonic() < deadline, http.get("/stats").json()
            time.sleep(0.1)
        events = {e["request_id"]: e for e in loopwatch.events()}
        labels = [label for path, body in loopwatch.bodies if path == "/v1/feedback" for label in body["labels"]]
    assert len(events) == 40 and len(labels) == 40
    for row, answer in zip(rows, answers):
        event = events[answer["request_id"]]
        assert event["features"] == {c: row[c] for c in FEATURES}
        assert event["prediction"] == answer["air_time"]
        assert (event["model_version"], event["client_version"]) == ("hgb-1", "own-service-1")
        assert event["latency_ms"] > 0 and event["timestamp"] == row["_time"]
    assert {label["request_id"] for label in labels} == set(events)


def test_the_service_keeps_serving_with_loopwatch_down(model_path: Path) -> None:
    rows = _rows(200)
    with own_service(model_path, f"http://127.0.0.1:{free_port()}") as http:
        for row in rows:
            assert http.post("/predict", json={"features": {c: row[c] for c in FEATURES}}).status_code == 200
        # the sender tries on its own schedule (a busy machine may not have let it yet): wait for its try
        deadline = time.monotonic() + 30
        stats = http.get("/stats").json()
        while stats["last_error"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = http.get("/stats").json()
    # the latency with loopwatch down against no client is measured in benchmarks/bench_client.py:
    # on a shared machine a wall-clock bound here would test the machine, not the client
    assert stats["sent"] == 0 and stats["buffered"] + stats["failed"] + stats["dropped"] == 200
    assert "Connection" in (stats["last_error"] or "")
