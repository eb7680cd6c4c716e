"""Real flights through ``ingest`` then the summariser, on SQLite and PostgreSQL: every hour's
counts, bins and category counts are those of the rows, and a rebuild gives the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopwatch.application.file_ingestion import ColumnMap, ingest_file
from loopwatch.application.summaries import Summariser
from loopwatch.application.workspace import Workspace
from loopwatch.config import Settings
from loopwatch.stats.binned import bin_counts
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.numeric import NumericPart
from tests.realdata import flights
from tests.summaries.test_conformance import exact_view

pytest_plugins = ["tests.postgres_fixtures"]

FEATURES = ["carrier", "origin", "sched_hour", "distance", "air_time"]


def journey(ws: Workspace, tmp_path: Path) -> tuple[pd.DataFrame, Summariser]:
    data = flights()
    ws.train("flights", data.iloc[:1500][[*FEATURES, "late"]], target="late", categorical=["carrier", "origin"])
    served = data.iloc[1500:4500].reset_index(drop=True)
    frame = served[FEATURES].copy()
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, len(frame)).round(4)
    frame["pred"] = (p1 > 0.5).astype(int)
    frame["proba_0"], frame["proba_1"] = 1 - p1, p1
    frame["ts"] = served["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "served.parquet"
    frame.to_parquet(path, index=False)
    mapping = ColumnMap(fields={"prediction": "pred", "timestamp": "ts"}, probability_prefix="proba_")
    report = ingest_file(ws.registry, path, model="flights", mapping=mapping, batch_rows=1000)
    assert report.accepted == len(frame)
    return served, Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))


def check_against_rows(ws: Workspace, summariser: Summariser, served: pd.DataFrame) -> None:
    windows = ws.store.window_summaries("flights")
    assert sum(w.n for w in windows) == len(served)
    hours = served["time"].dt.floor("h")
    layout = summariser.layout("flights", 1)
    for window in windows:
        rows = served[hours == pd.Timestamp(window.start)]
        assert window.n == len(rows)
        distance = window.features["distance"]
        assert isinstance(distance, NumericPart)
        x = np.sort(rows["distance"].to_numpy(dtype=np.float64))
        assert list(distance.bins) == bin_counts(x, np.asarray(layout.numeric["distance"])).tolist()
        air = window.features["air_time"]
        assert isinstance(air, NumericPart) and air.n_null == int(rows["air_time"].isna().sum())
        carrier = window.features["carrier"]
        assert isinstance(carrier, CategoricalPart) and carrier.counts is not None
        assert sum(carrier.counts.values()) == len(rows)
        assert sorted(carrier.counts.values()) == sorted(rows["carrier"].value_counts().tolist())


def test_real_flights_through_ingest_then_summaries_on_sqlite(tmp_path: Path, settings: Settings) -> None:
    with Workspace(settings) as ws:
        served, summariser = journey(ws, tmp_path)
        run = summariser.catch_up("flights")
        assert run.events == len(served)
        check_against_rows(ws, summariser, served)


@pytest.mark.postgres
def test_real_flights_through_ingest_then_summaries_on_postgres(tmp_path: Path, postgres_dsn: str) -> None:
    settings = Settings.from_env({}, home=tmp_path, database=postgres_dsn)
    with Workspace(settings) as ws:
        served, summariser = journey(ws, tmp_path)
        assert summariser.settle_seconds == 0  # the test's settings: the store commits before it reads
        first = summariser.catch_up("flights")
        assert first.events == len(served)
        check_against_rows(ws, summariser, served)
        before = {(w.version, w.start): w for w in ws.store.window_summaries("flights")}
        assert summariser.rebuild("flights").events == len(served)
        after = {(w.version, w.start): w for w in ws.store.window_summaries("flights")}
        assert after.keys() == before.keys()
        for key, window in after.items():
            assert exact_view(window) == exact_view(before[key]) and window.sample == before[key].sample


def test_a_regressors_windows_hold_its_loss_sums(tmp_path: Path, settings: Settings) -> None:
    data = flights()
    with Workspace(settings) as ws:
        ws.train("air", data.iloc[:1200][["distance", "sched_hour", "origin", "air_time"]].dropna(),
                 target="air_time", categorical=["origin"])
        rows = data.iloc[1200:1500][["distance", "sched_hour", "origin"]].to_dict("records")
        times = data.iloc[1200:1500]["time"].dt.to_pydatetime().tolist()
        ws.predict("air", rows, request_id="served", timestamps=times)
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        assert summariser.catch_up("air").events == 300
        windows = ws.store.window_summaries("air")
        total = windows[0]
        for w in windows[1:]:
            total = total.merge(w)
        assert total.estimation is not None and total.estimation.n == 300
        prediction = total.features["prediction"]
        assert isinstance(prediction, NumericPart) and prediction.count == 300
