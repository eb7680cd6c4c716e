"""The drift monitor on window summaries against the same monitor on the log, on real flights.

Flights are trained on, then three and a half days of later flights are ingested; from the
fifth of January the distance is stretched by 30%, 5% of rows get a carrier code never seen
in training, and air time goes missing in 10%. Read from summaries, every window has the same
events, the same data-quality facts, the same binned distances (the bins are exact), a KS
statistic within its stated bound of the exact one, the same drifted features and the same
alarms as read from the log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopwatch.application.file_ingestion import ColumnMap, ingest_file
from loopwatch.application.monitoring import monitor
from loopwatch.application.summaries import Summariser
from loopwatch.application.workspace import Workspace
from loopwatch.config import Settings
from tests.realdata import flights

FEATURES = ["carrier", "origin", "sched_hour", "distance", "air_time"]
SHIFT_FROM = pd.Timestamp("2013-01-05", tz="UTC")


def served_flights(ws: Workspace, tmp_path: Path) -> pd.DataFrame:
    data = flights()
    ws.train("flights", data.iloc[:1500][[*FEATURES, "late"]], target="late", categorical=["carrier", "origin"],
             screen=False)
    served = data.iloc[1500:4500].reset_index(drop=True)
    frame = served[FEATURES].copy()
    late = (served["time"] >= SHIFT_FROM).to_numpy()
    rng = np.random.default_rng(7)
    frame.loc[late, "distance"] = frame.loc[late, "distance"] * 1.3
    frame.loc[late & (rng.uniform(size=len(frame)) < 0.05), "carrier"] = 99
    frame.loc[late & (rng.uniform(size=len(frame)) < 0.10), "air_time"] = np.nan
    p1 = rng.uniform(0, 1, len(frame)).round(4)
    frame["pred"] = (p1 > 0.5).astype(int)
    frame["proba_0"], frame["proba_1"] = 1 - p1, p1
    frame["ts"] = served["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "served.parquet"
    frame.to_parquet(path, index=False)
    mapping = ColumnMap(fields={"prediction": "pred", "timestamp": "ts"}, probability_prefix="proba_")
    assert ingest_file(ws.registry, path, model="flights", mapping=mapping, batch_rows=1000).accepted == len(frame)
    return served


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    tmp_path = tmp_path_factory.mktemp("summary-monitor")
    settings = Settings.from_env({}, home=tmp_path)
    with Workspace(settings) as ws:
        served_flights(ws, tmp_path)
        from_log = monitor(ws.store, ws.registry, "flights", window="1d")
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        from_summaries = monitor(ws.store, ws.registry, "flights", window="1d", summariser=summariser)
        stored_hours = len(ws.store.window_summaries("flights"))
    assert stored_hours > 24  # the monitor made the summariser catch up with the log first
    return from_log.to_dict(), from_summaries.to_dict()


def test_the_same_windows_and_events(both: tuple[dict, dict]) -> None:
    log, summ = both
    assert [(w["start"], w["n_events"]) for w in summ["windows"]] == [(w["start"], w["n_events"]) for w in log["windows"]]
    assert len(log["windows"]) == 5


def test_the_same_alarms_and_drifted_features(both: tuple[dict, dict]) -> None:
    log, summ = both
    for a, b in zip(log["windows"], summ["windows"]):
        assert b["drifted_features"] == a["drifted_features"], a["start"]
        assert b["alarms"] == a["alarms"], a["start"]
    # the shift is found: after it, distance drifts and the unseen carrier is a quality alarm
    last = summ["windows"][-1]
    assert "distance" in last["drifted_features"]
    assert "quality:unseen_categories:carrier" in last["alarms"]
    assert "quality:unseen_categories:carrier" not in summ["windows"][0]["alarms"]


def test_exact_parts_give_the_same_statistics_and_sketches_stay_within_their_bounds(both: tuple[dict, dict]) -> None:
    log, summ = both
    bounded = 0
    for a, b in zip(log["windows"], summ["windows"]):
        ra, rb = a["report"], b["report"]
        qa, qb = ra["data_quality"], rb["data_quality"]
        for key in ("missing_rate", "out_of_range_rate"):
            assert qb[key] == pytest.approx(qa[key]), (a["start"], key)
        for key in ("unseen_categories", "unexpected_missing"):
            assert qb.get(key) == qa.get(key), (a["start"], key)
        for name, fa in ra["features"].items():
            fb = rb["features"][name]
            assert "error_bounds" not in fa  # the log's reports keep their JSON form
            for distance in ("psi", "kl_divergence", "js_distance", "hellinger"):
                assert fb["statistics"][distance] == pytest.approx(fa["statistics"][distance], rel=1e-9, abs=1e-12)
            assert fb["distribution"]["current"] == fa["distribution"]["current"]
            if fa["kind"] == "numeric":
                bound = fb.get("error_bounds", {}).get("ks", 0.0)
                bounded += bound > 0
                assert abs(fb["statistics"]["ks"]["statistic"] - fa["statistics"]["ks"]["statistic"]) <= bound + 1e-12
                # the decision's p-value is never below the exact test's: no alarm the rows would not raise
                assert fb["statistics"]["ks"]["p_value"] >= fa["statistics"]["ks"]["p_value"] - 1e-12
            else:
                # (the adjusted p-value moves with the KS p-values it is ranked among)
                for key in ("statistic", "p_value"):
                    assert fb["statistics"]["chi2"][key] == pytest.approx(fa["statistics"]["chi2"][key])
    assert bounded > 0  # a day of these windows is past the sketch's exact size: bounds were exercised


def test_outlier_rates_on_a_sample_holding_every_row_equal_the_log(both: tuple[dict, dict]) -> None:
    log, summ = both
    for a, b in zip(log["windows"], summ["windows"]):
        assert b["n_events"] <= 2000  # each day's sample holds every row of it
        for name, oa in a["report"]["outliers"].items():
            assert b["report"]["outliers"][name]["n_flagged"] == oa["n_flagged"]

