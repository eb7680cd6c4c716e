"""Window summaries from an export of the log, written into the store, against the summariser's own.

Real flights (New York, 2013) are served by a classifier trained on them and ingested with
their probabilities; the summariser builds the windows from the store's log, and the log,
exported as ``loopwatch logs --format parquet --partition-by date`` writes it, is summarised
again by each engine and written into the store. What monitoring reads must not depend on
which built it: exact parts identical, sketches within their bounds of the rows, the same
row sample, the same estimation sums; and the summariser, following the log afterwards,
counts none of the exported events again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from loopwatch.application.file_ingestion import ColumnMap, ingest_file
from loopwatch.application.summaries import Summariser
from loopwatch.application.workspace import Workspace
from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.engines.job import run_in_process
from loopwatch.engines.summarize import export_job, summarise_export_into_store
from loopwatch.errors import Conflict
from loopwatch.stores.base import EventQuery
from loopwatch.stores.export import export_schemas, write_partitioned_parquet
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.window import WindowSummary
from tests.realdata import flights
from tests.summaries.test_conformance import exact_view

FEATURES = ["carrier", "origin", "sched_hour", "distance", "air_time"]
HOURS = 5


def settings_of(home: Path) -> Settings:
    return Settings.from_env({}, home=home)


def export(ws: Workspace, root: Path) -> None:
    events = ws.store.iter_events(EventQuery(model_name="flights", limit=ws.settings.max_page_size))
    write_partitioned_parquet(events, root, schemas=export_schemas(ws.store, model_name="flights"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("export-summaries")
    data = flights()
    served = data.iloc[1500:4500].reset_index(drop=True)
    # five busy hours (600 departures each, as an hour of production traffic would hold more
    # rows than its summary): sketches estimate, and the windows fit under the Spark tests'
    # driver limit (tests/engines/conftest.py)
    served["time"] = pd.Timestamp("2013-01-07T08:00Z") + pd.to_timedelta(np.arange(len(served)) * 6, unit="s")
    with Workspace(settings_of(base / "home")) as ws:
        ws.train("flights", data.iloc[:1500][[*FEATURES, "late"]], target="late", categorical=["carrier", "origin"])
        frame = served[FEATURES].copy()
        p1 = np.random.default_rng(0).uniform(0, 1, len(frame)).round(4)
        frame["pred"] = (p1 > 0.5).astype(int)
        frame["proba_0"], frame["proba_1"] = 1 - p1, p1
        frame["ts"] = served["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame["client"] = np.where(np.arange(len(frame)) % 3 == 0, "batch-a", "batch-b")
        path = base / "served.parquet"
        frame.to_parquet(path, index=False)
        mapping = ColumnMap(fields={"prediction": "pred", "timestamp": "ts", "client_id": "client"},
                            probability_prefix="proba_")
        assert ingest_file(ws.registry, path, model="flights", mapping=mapping, batch_rows=700).accepted == len(frame)
        root = base / "export"
        export(ws, root)
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        assert summariser.catch_up("flights").events == len(served)
        own = {(w.version, w.start): w for w in ws.store.window_summaries("flights")}
        latest = ws.store.latest_logged_at("flights")
        job = export_job(summariser, model_name="flights")
        local = run_in_process(job, root)
    return {"base": base, "home": base / "home", "root": root, "served": served, "own": own, "latest": latest,
            "job": job, "local": local}


def windows_of(values: dict[Any, Any]) -> dict[tuple[int, Any], WindowSummary]:
    return {(v.version, v.start): v for k, v in values.items() if k[0] == "window"}


def assert_same_windows(got: dict[tuple[int, Any], WindowSummary], want: dict[tuple[int, Any], WindowSummary],
                        served: pd.DataFrame | None = None) -> None:
    assert got.keys() == want.keys()
    hours = None if served is None else served["time"].dt.floor("h")
    for key, window in got.items():
        other = want[key]
        assert window.layout_id == other.layout_id and (window.start, window.end) == (other.start, other.end)
        assert window.traffic == other.traffic and window.clients == other.clients, key
        assert window.sample == other.sample, key
        assert window.estimation == other.estimation, key
        for name, part in window.features.items():
            assert exact_view(part) == exact_view(other.features[name]), (key, name)
            if isinstance(part, NumericPart) and hours is not None and name in served.columns:
                values = np.sort(served.loc[hours == pd.Timestamp(key[1]), name].dropna().to_numpy(dtype=np.float64))
                points, cdf = part.cdf_steps()
                truth = np.searchsorted(values, points, side="right") / values.size
                assert np.max(np.abs(cdf - truth)) <= part.rank_error + 1e-12, (key, name)


def test_the_in_process_engine_builds_the_summarisers_windows(world: dict[str, Any]) -> None:
    own = world["own"]
    assert len(own) == HOURS and sum(w.n for w in own.values()) == len(world["served"])
    assert all(w.estimation is not None for w in own.values())  # CBPE sums: the hook ran on both sides
    assert_same_windows(windows_of(world["local"]), own, world["served"])
    extent = world["local"][("extent", "flights")]
    assert extent.events == len(world["served"]) and 0 < extent.logged_through <= world["latest"] and extent.last_request


def test_written_into_the_store_they_are_what_monitoring_reads(world: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    with Workspace(settings_of(home)) as ws:
        # 2013's hours are kept as hours (retention would roll them up into days, as it does below)
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0,
                                                                         summary_hourly_days=36_500,
                                                                         summary_daily_days=36_500))
        with pytest.raises(Conflict, match="already has summaries.*--rebuild"):
            summarise_export_into_store(summariser, world["root"], engine="in-process", model_name="flights")
        [written] = summarise_export_into_store(summariser, world["root"], engine="in-process",
                                                model_name="flights", rebuild=True)
        assert (written.events, written.windows, written.rebuilt, written.estimation) == \
            (len(world["served"]), len(world["own"]), True, True)
        assert ws.store.summary_watermark("flights") == world["latest"]
        stored = {(w.version, w.start): w for w in ws.store.window_summaries("flights")}
        assert_same_windows(stored, world["own"])
        # the summariser follows the log from the export's newest event: nothing counted twice
        assert summariser.catch_up("flights").events == 0
        assert sum(w.n for w in ws.store.window_summaries("flights")) == len(world["served"])


def test_an_export_missing_part_of_the_log_is_refused(world: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    partial = tmp_path / "partial"
    with Workspace(settings_of(home)) as ws:
        events = [e for e in ws.store.iter_events(EventQuery(model_name="flights", limit=10_000)) if e.row_index % 7]
        write_partitioned_parquet(events, partial, schemas=export_schemas(ws.store, model_name="flights"))
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        before = ws.store.window_summaries("flights")
        with pytest.raises(Exception, match="not the whole log"):
            summarise_export_into_store(summariser, partial, engine="in-process", model_name="flights", rebuild=True)
        assert ws.store.window_summaries("flights") == before  # refused before anything was deleted


@pytest.mark.slow
def test_the_spark_engine_builds_the_same_windows(spark: Any, world: dict[str, Any]) -> None:
    from loopwatch.engines.spark import run_spark

    remote = run_spark(world["job"], world["root"], session=spark)
    assert remote.keys() == world["local"].keys()
    assert remote[("extent", "flights")] == world["local"][("extent", "flights")]
    assert_same_windows(windows_of(remote), windows_of(world["local"]), world["served"])


def test_the_command_writes_the_exports_summaries_and_says_what_it_refuses(world: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    runner = CliRunner()

    def run(*args: str) -> Any:
        # 2013's windows are past the summaries' retention: kept as hours here (the command applies it)
        return runner.invoke(cli, ["summarize", *args, "--home", str(home)],
                             env={"LOOPWATCH_SUMMARY_HOURLY_DAYS": "36500", "LOOPWATCH_SUMMARY_DAILY_DAYS": "36500"})

    refused = run("flights", "--export", str(world["root"]))
    assert refused.exit_code != 0 and "already has summaries" in refused.output and "--rebuild" in refused.output
    assert "Traceback" not in refused.output
    for args, message in [
        (("flights", "--engine", "spark"), "go with --export"),
        (("--export", str(world["root"]), "--rebuild"), "--rebuild needs a MODEL"),
        (("flights", "--export", str(tmp_path / "nowhere"), "--rebuild"), "no Parquet export"),
        (("nobody", "--export", str(world["root"])), "no model named"),
        (("flights", "--export", str(world["root"]), "--conf", "oops"), "KEY=VALUE"),
    ]:
        result = run(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    result = run("flights", "--export", str(world["root"]), "--rebuild")
    assert result.exit_code == 0, result.output
    assert '"events": 3000' in result.output.replace("\n", " ") or '"events":3000' in result.output
    with Workspace(settings_of(home)) as ws:
        assert ws.store.summary_watermark("flights") == world["latest"]
        assert sum(w.n for w in ws.store.window_summaries("flights")) == len(world["served"])
