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


def test_the_columnar_read_gives_the_summaries_the_records_gave(tmp_path: Path, settings: Settings) -> None:
    """The summariser reads the log column by column and builds each window's sample only as far
    as it is stored: the stored windows are those the records' path stored (every exact part, the
    same sampled rows; each sketch of the same values), over batches that merge into windows
    already stored. Flights ingested (nulls, integer-coded categories as labels) and served over
    the API (codes as JSON numbers, a null category, a client whose rows are sampled)."""
    from loopwatch.application.monitoring.windows import columns_frame, events_frame
    from loopwatch.summaries.window import summarise_frame

    with Workspace(settings) as ws:
        served, summariser = journey(ws, tmp_path)
        api = served.iloc[:120]
        rows = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in
                api[FEATURES].astype(object).to_dict("records")]
        rows[0]["carrier"] = None
        ws.predict("flights", rows, request_id="api-1", client_id="c1", request_type="api",
                   timestamps=list(api["time"].dt.to_pydatetime()))
        meta = ws.store.get_model_version("flights", 1)
        layout, hook = summariser.layout("flights", 1), summariser.estimator("flights", 1)
        assert hook is not None
        latest = ws.store.latest_logged_at("flights")
        assert latest is not None
        by_records = list(ws.store.iter_events_logged("flights", after=None, through=latest, batch_requests=2))
        by_columns = list(ws.store.iter_event_columns_logged("flights", after=None, through=latest, batch_requests=2))
        assert [r for _, r in by_records] == [r for _, r in by_columns] and len(by_columns) == 2
        expected: dict = {}
        for (events, _), (columns, _) in zip(by_records, by_columns):
            old = events_frame(events, meta.schema.classes, schema=meta.schema)
            pd.testing.assert_frame_equal(columns_frame(columns, meta.schema.classes, schema=meta.schema), old,
                                          check_like=True)
            # the records' path: whole samples, merged into what is stored, then stored
            for key, summary in summarise_frame(old, model="flights", layouts={1: layout},
                                                estimators={1: hook}).items():
                expected[key] = (expected[key].merge(summary) if key in expected else summary).stored()
        assert any(w.clients.samples for w in expected.values())  # the API client's rows are sampled
        summariser.batch_requests = 2
        assert summariser.catch_up("flights").events == len(served) + len(api)
        stored = {(w.version, w.start): w for w in ws.store.window_summaries("flights")}
        assert stored.keys() == expected.keys()
        for key, window in stored.items():
            assert exact_view(window) == exact_view(expected[key])
            assert window.sample == expected[key].sample and len(window.sample.rows) > 0
