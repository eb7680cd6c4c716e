"""``loopwatch predict`` on real data (New York's 2013 departures): event times, entity ids and
the client from the table and the command line, with a clean stdout; and a backfill that
retention keeps, because retention counts from when events were logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.stores import EventQuery
from loopwatch.application.workspace import Workspace
from tests.realdata import flights

FEATURES = ["carrier", "origin", "sched_hour", "distance"]


def loopwatch(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (PYTHONPATH and the rest of the environment inherited)."""
    env = {**os.environ, "LOOPWATCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def departures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained model on January's departures, and a week of March to score, with a flight id."""
    folder = tmp_path_factory.mktemp("flights")
    home = folder / "home"
    frame = flights()
    january = frame[frame["time"] < "2013-01-15"].sample(4000, random_state=3)
    january[[*FEATURES, "late"]].to_csv(folder / "january.csv", index=False)
    # the integer codes are used as numbers here: categories are not what this tests
    loopwatch(home, "train", str(folder / "january.csv"), "-m", "flights", "-t", "late", "--no-screen", "--json")
    march = frame[(frame["time"] >= "2013-03-04") & (frame["time"] < "2013-03-06")].head(600).copy()
    march.insert(0, "flight_id", [f"F{i:05d}" for i in range(len(march))])
    march[["flight_id", "time", *FEATURES, "late"]].to_csv(folder / "march.csv", index=False)
    march[["flight_id", "time", *FEATURES]].to_parquet(folder / "march.parquet", index=False)
    return {"home": home, "folder": folder}


def events(home: Path, **query: object) -> list:  # type: ignore[type-arg]
    with Workspace(Settings.from_env({}, home=home)) as ws:
        return list(ws.store.iter_events(EventQuery(model_name="flights", **query)))  # type: ignore[arg-type]


def test_times_entities_and_client_come_from_the_table(departures: dict[str, Path]) -> None:
    home, folder = departures["home"], departures["folder"]
    done = loopwatch(home, "predict", str(folder / "march.csv"), "-m", "flights", "--timestamp-column", "time",
                     "--entity-column", "flight_id", "--client", "batch-job", "--batch-rows", "250")
    assert done.stdout.splitlines()[0].startswith("flight_id,time,carrier")  # no blank line first
    scored = pd.read_csv(pd.io.common.StringIO(done.stdout))
    assert len(scored) == 600 and {"prediction", "probability_0", "probability_1"} <= set(scored.columns)
    logged = events(home, client_id="batch-job")
    assert len(logged) == 600 and {e.request_type for e in logged} == {"cli"}
    assert all(e.replayed for e in logged)  # client-supplied times, as over HTTP
    source = pd.read_csv(folder / "march.csv")
    want = dict(zip(source["flight_id"], pd.to_datetime(source["time"], utc=True)))
    assert {e.entity_id: e.timestamp for e in logged} == {k: v.to_pydatetime() for k, v in want.items()}
    # the id and the time were not sent as features
    assert all(set(e.data) == set(FEATURES) for e in logged)
    # labels sent later by entity id find these predictions
    labels = folder / "labels.csv"
    source.assign(entity_id=source["flight_id"], label=source["late"], label_time="2013-03-07T00:00:00Z")[
        ["entity_id", "label", "label_time"]].to_csv(labels, index=False)
    stored = json.loads(loopwatch(home, "feedback", str(labels), "--model", "flights", "--json").stdout)
    assert stored["stored"] == 600 and stored["unmatched"] == 0


def test_parquet_times_and_the_json_outputs_start_clean(departures: dict[str, Path]) -> None:
    home, folder = departures["home"], departures["folder"]
    out = folder / "scored.parquet"
    loopwatch(home, "predict", str(folder / "march.parquet"), "-m", "flights", "--timestamp-column", "time",
              "--client", "parquet-job", "--out", str(out))
    logged = events(home, client_id="parquet-job")
    assert sorted(e.timestamp for e in logged) == sorted(
        t.to_pydatetime() for t in pd.read_parquet(folder / "march.parquet")["time"])
    assert pd.read_parquet(out)["time"].dt.tz is not None  # the table's own columns are kept as they were
    listed = loopwatch(home, "models", "list", "--json").stdout
    assert listed.startswith("[") and json.loads(listed)[0]["name"] == "flights"
    trained = loopwatch(home, "train", str(folder / "january.csv"), "-m", "flights", "-t", "late", "--no-screen")
    assert trained.stdout.splitlines()[0].strip(), trained.stdout  # the text form starts with its table


def test_a_backfill_is_kept_by_retention(departures: dict[str, Path]) -> None:
    """2013's departures replayed today are as young as today: a 90-day retention keeps them."""
    home, folder = departures["home"], departures["folder"]
    loopwatch(home, "predict", str(folder / "march.csv"), "-m", "flights", "--timestamp-column", "time",
              "--client", "backfill", "--out", str(folder / "ignored.csv"))
    before = len(events(home))
    assert before >= 600 and all(e.timestamp.year == 2013 for e in events(home, client_id="backfill"))
    loopwatch(home, "models", "settings", "flights", "--retention-days", "90")
    purged = loopwatch(home, "logs", "purge")
    assert "flights: 0 events past retention deleted" in purged.stdout
    assert len(events(home)) == before
    assert all(e.logged_at > datetime(2020, 1, 1, tzinfo=timezone.utc) for e in events(home, client_id="backfill"))


@pytest.mark.parametrize("options, message", [
    (["--timestamp-column", "when"], "--timestamp-column 'when': march.csv has no such column"),
    (["--entity-column", "flight"], "--entity-column 'flight': march.csv has no such column"),
    (["--timestamp-column", "sched_hour"], "is a feature of model 'flights'"),
    (["--timestamp-column", "late"], "holds int64 values, not times"),
    (["--timestamp-column", "carrier_name"], "row 1, 3 holds no ISO-8601 time"),
    (["--client", ""], "--client must be 1-200 characters"),
])
def test_bad_columns_are_a_clear_error(departures: dict[str, Path], options: list[str], message: str) -> None:
    home, folder = departures["home"], departures["folder"]
    table = pd.read_csv(folder / "march.csv").head(5)
    table["carrier_name"] = ["2013-03-04T06:00:00Z", "soon", "2013-03-04 07:00", None, "2013-03-04T08:00:00+01:00"]
    path = folder / "march_bad.csv"
    table.to_csv(path, index=False)
    done = loopwatch(home, "predict", str(path), "-m", "flights", *options, code=2)
    assert message.replace("march.csv", path.name) in done.stderr, done.stderr
    assert done.stdout == ""
