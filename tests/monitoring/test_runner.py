"""The monitor on a real SQLite log, written through the HTTP app.

Ten simulated days (300 predictions a day, stable world) are replayed with
their own event times; on day 6 ``watch_hours`` is multiplied by 1.5. Day 3 is
also sent to a second model version. Today some rows are predicted live and a
few requests are refused, which the monitor counts as rejections. Building
this log is the expensive part, so it is built once per module; every test
reads it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from click.testing import CliRunner

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, NotFound
from loopwatch.application.monitoring import MONITOR_ALPHA, MonitorReport, monitor
from loopwatch.records.jsonutil import utc_iso
from loopwatch.simulate import FEATURES, ChurnScenario, stable_timeline
from loopwatch.application.workspace import Workspace

UTC = timezone.utc
DAYS = 10
PER_DAY = 300
SHIFTED_DAY = 6
VERSION_2_DAY = 3
LIVE_ROWS = 40
REFUSED = 3
START = datetime(2026, 1, 5, tzinfo=UTC)  # the simulator's default start


def day_start(index: int) -> datetime:
    return START + timedelta(days=index)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = frame[list(FEATURES)]
    return features.astype(object).where(features.notna(), None).to_dict(orient="records")


class Log:
    """The module's database."""

    def __init__(self, settings: Settings, database: Path) -> None:
        self.settings = settings
        self.database = database

    def workspace(self) -> Workspace:
        return Workspace(self.settings)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Iterator[Log]:
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    home = tmp_path_factory.mktemp("monitor-home")
    database = home / "monitor.db"
    settings = Settings.from_env({}, home=home, database=str(database))
    with Workspace(settings) as ws:
        ws.train("churn", churn_training, target="churned")
        ws.train("churn", churn_training.sample(300, random_state=2), target="churned")  # version 2
        ws.train("idle", churn_training.head(200), target="churned")  # a model nobody calls
    scenario = ChurnScenario(seed=5, days=DAYS, predictions_per_day=PER_DAY, timeline=stable_timeline())
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for index in range(DAYS):
            frame = scenario.day(index).frame()
            assert frame["timestamp"].min() >= day_start(index)
            assert frame["timestamp"].max() < day_start(index + 1)
            if index == SHIFTED_DAY:
                frame["watch_hours"] = frame["watch_hours"] * 1.5
            versions = [1, 2] if index == VERSION_2_DAY else [1]
            for version in versions:
                body = {
                    "rows": records(frame),
                    "timestamps": [utc_iso(t) for t in frame["timestamp"]],
                    "request_type": "replay",
                    "version": version,
                }
                answer = http.post("/v1/models/churn/predict", json=body, headers={"X-Client-ID": "sim"})
                assert answer.status_code == 200, answer.text
        # live traffic: event time is now; and refused requests, counted as rejections
        live = scenario.day(0).frame().head(LIVE_ROWS)
        answer = http.post("/v1/models/churn/predict", json={"rows": records(live)})
        assert answer.status_code == 200, answer.text
        bad_row = {**records(live.head(1))[0], "watch_hours": "lots"}
        for _ in range(REFUSED):
            refused = http.post("/v1/models/churn/predict", json={"rows": [bad_row]})
            assert refused.status_code == 422, refused.text
    yield Log(settings, database)


@pytest.fixture(scope="module")
def daily(log: Log) -> MonitorReport:
    with log.workspace() as ws:
        return monitor(ws.store, ws.registry, "churn", window="1d")


def version_1_days(report: MonitorReport) -> dict[int, Any]:
    return {
        (w.start - START).days: w
        for w in report.windows
        if w.model_version == 1 and w.segment is None and w.start < day_start(DAYS)
    }


# ------------------------------------------------------------------ windows and alarms


def test_one_window_per_day_and_version(log: Log, daily: MonitorReport) -> None:
    days = version_1_days(daily)
    assert sorted(days) == list(range(DAYS))
    for index, window in days.items():
        assert window.start == day_start(index) and window.end == day_start(index + 1)
        assert window.n_events == PER_DAY
        assert window.report.n_current == PER_DAY
    second = [w for w in daily.windows if w.model_version == 2]
    assert [(w.start, w.n_events) for w in second] == [(day_start(VERSION_2_DAY), PER_DAY)]
    live = [w for w in daily.windows if w.start >= day_start(DAYS)]
    assert len(live) == 1 and live[0].n_events == LIVE_ROWS
    assert len(daily.windows) == DAYS + 2
    assert [w.start for w in daily.windows] == sorted(w.start for w in daily.windows)
    assert daily.model == "churn" and daily.window == "1d"
    assert daily.windows[0].report.config["alpha"] == MONITOR_ALPHA


def test_stable_days_are_quiet_and_the_shifted_day_alarms(daily: MonitorReport) -> None:
    days = version_1_days(daily)
    for index, window in days.items():
        if index != SHIFTED_DAY:
            assert window.alarms == [], (index, window.alarms)
            assert not window.alarm
    shifted = days[SHIFTED_DAY]
    assert shifted.alarm
    assert "feature:watch_hours" in shifted.alarms
    assert shifted.report.drifted_features[0] == "watch_hours"
    assert shifted.report.features["watch_hours"].statistics["wasserstein_normed"] > 0.3
    assert daily.alarm


def test_each_window_is_compared_with_the_one_before(daily: MonitorReport) -> None:
    days = version_1_days(daily)
    assert days[0].previous is None
    assert all(days[i].previous is not None for i in range(1, DAYS))
    # the previous window is a sample: univariate only
    assert days[1].previous.multivariate == {} and days[1].previous.outliers == {}
    assert days[1].previous.n_reference == PER_DAY
    # the shift shows against the reference and against the day before, and the day after
    assert "watch_hours" in days[SHIFTED_DAY].previous.drifted_features
    assert "watch_hours" in days[SHIFTED_DAY + 1].previous.drifted_features
    assert days[SHIFTED_DAY - 1].previous.drifted_features == []


def test_without_previous_comparison(log: Log) -> None:
    with log.workspace() as ws:
        report = monitor(ws.store, ws.registry, "churn", window="1d", since=day_start(1), until=day_start(3),
                         compare_previous=False)
    assert [w.start for w in report.windows] == [day_start(1), day_start(2)]
    assert all(w.previous is None for w in report.windows)


def test_prediction_drift_is_monitored(daily: MonitorReport) -> None:
    window = version_1_days(daily)[0]
    assert set(window.report.predictions) == {"prediction", "probability_0", "probability_1"}
    assert window.report.predictions["prediction"].kind == "categorical"


def test_version_filter(log: Log) -> None:
    with log.workspace() as ws:
        second = monitor(ws.store, ws.registry, "churn", window="1d", version=2)
        first = monitor(ws.store, ws.registry, "churn", window="1d", version=1, since=day_start(2),
                        until=day_start(5))
        with pytest.raises(InvalidInput):
            monitor(ws.store, ws.registry, "churn", version=9)
    assert [(w.start, w.model_version, w.n_events) for w in second.windows] == [
        (day_start(VERSION_2_DAY), 2, PER_DAY)]
    # version 2 is compared with its own reference (300 training rows), not version 1's
    assert second.windows[0].report.n_reference != first.windows[0].report.n_reference
    assert [(w.start, w.model_version) for w in first.windows] == [
        (day_start(2), 1), (day_start(3), 1), (day_start(4), 1)]


def test_segments(log: Log) -> None:
    with log.workspace() as ws:
        report = monitor(ws.store, ws.registry, "churn", window="1d", segment="country",
                         since=day_start(SHIFTED_DAY - 1), until=day_start(SHIFTED_DAY + 1), version=1)
        reference = ws.registry.reference_sample("churn", 1)
    overall = [w for w in report.windows if w.segment is None]
    segments = [w for w in report.windows if w.segment is not None]
    assert [w.start for w in overall] == [day_start(SHIFTED_DAY - 1), day_start(SHIFTED_DAY)]
    # a segment gets its window when the reference holds enough of its rows (200)
    big_enough = {f"country={c}" for c, n in reference["country"].value_counts().items() if n >= 200}
    assert big_enough and {w.segment for w in segments} == big_enough
    for window in overall:
        parts = [w for w in segments if w.start == window.start]
        assert len(parts) == len(big_enough)
        assert sum(w.n_events for w in parts) < window.n_events
        for part in parts:
            country = part.segment.split("=", 1)[1]
            assert part.report.n_reference == int((reference["country"] == country).sum())
            assert part.previous is None and part.rejections == 0
    shifted = [w for w in segments if w.start == day_start(SHIFTED_DAY)]
    assert any("feature:watch_hours" in w.alarms for w in shifted)
    # data quality is judged against the training data in a segment too: a segment holds
    # a subset of its window's rows, so it can never have more of them out of range
    for part in segments:
        window = next(w for w in overall if w.start == part.start)
        for feature, share in part.report.data_quality.out_of_range_rate.items():
            whole = window.report.data_quality.out_of_range_rate[feature] * window.n_events
            assert round(share * part.n_events) <= round(whole), (part.segment, feature)
        assert set(part.report.data_quality.unseen_categories) <= set(window.report.data_quality.unseen_categories)
    assert not any(a.startswith("quality:") for w in segments for a in w.alarms)
    with log.workspace() as ws, pytest.raises(InvalidInput, match="segment"):
        monitor(ws.store, ws.registry, "churn", segment="no_such_column", since=day_start(0),
                until=day_start(1))


def test_segment_references_belong_to_their_database(log: Log, workspace: Workspace,
                                                    churn_training: pd.DataFrame) -> None:
    """Another database with a model of the same name and version, trained on other rows."""
    with log.workspace() as ws:  # the module's database first, so its segment references are cached
        monitor(ws.store, ws.registry, "churn", segment="country", version=1, since=day_start(0),
                until=day_start(1))
    # every row kept: the table is sized for a US reference of 200 to 400 rows (a segment needs 200)
    workspace.train("churn", churn_training.head(700), target="churned", screen=False)
    workspace.predict("churn", records(churn_training.tail(100)))
    report = monitor(workspace.store, workspace.registry, "churn", segment="country")
    reference = workspace.registry.reference_sample("churn", 1)
    us = [w for w in report.windows if w.segment == "country=US"]
    assert len(us) == 1
    assert us[0].report.n_reference == int((reference["country"] == "US").sum()) < 400


def test_rejections_are_counted_in_their_window(log: Log, daily: MonitorReport) -> None:
    with log.workspace() as ws:
        refused = ws.store.query_rejections("churn")
    assert len(refused) == REFUSED
    live = next(w for w in daily.windows if w.start >= day_start(DAYS))
    if refused[0].timestamp < live.start:  # the test ran across midnight
        pytest.skip("the rejections were logged on the day before the live rows")
    assert live.rejections == REFUSED
    assert "quality:rejections" in live.alarms
    assert all(w.rejections == 0 for w in daily.windows if w is not live)
    assert live.to_dict(full=False)["rejections"] == REFUSED


def test_a_model_without_events_has_no_windows(log: Log) -> None:
    with log.workspace() as ws:
        report = monitor(ws.store, ws.registry, "idle")
    assert report.windows == [] and not report.alarm
    assert report.to_dict()["windows"] == []


def test_an_unknown_model_is_not_found(log: Log) -> None:
    with log.workspace() as ws, pytest.raises(NotFound):
        monitor(ws.store, ws.registry, "nobody")


def test_to_dict_full_and_short(daily: MonitorReport) -> None:
    short = daily.to_dict(full=False)
    full = daily.to_dict()
    json.dumps(full, allow_nan=False)
    assert short["alarm"] is True and len(short["windows"]) == len(daily.windows)
    assert "report" not in short["windows"][0] and "report" in full["windows"][0]
    assert short["windows"][0]["start"] == "2026-01-05T00:00:00Z"


# ------------------------------------------------------------------ the command


def _monitor_cli(log: Log, *args: str) -> Any:
    return CliRunner().invoke(cli, ["monitor", "churn", "--database", str(log.database), *args])


def test_cli_exit_1_when_a_window_alarms(log: Log) -> None:
    result = _monitor_cli(log, "--json", "--since", "2026-01-11", "--until", "2026-01-12T00:00:00Z")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [w["start"] for w in data["windows"]] == ["2026-01-11T00:00:00Z"]
    assert "feature:watch_hours" in data["windows"][0]["alarms"] and data["alarm"] is True


def test_cli_prints_windows_for_a_person_without_breaking_alarm_names(log: Log) -> None:
    result = _monitor_cli(log, "--since", "2026-01-11", "--until", "2026-01-12T00:00:00Z")
    assert result.exit_code == 1, result.output
    assert "2026-01-11T00:00" in result.stdout and "feature:watch_hours" in result.stdout


def test_cli_exit_0_on_stable_days(log: Log, tmp_path: Path) -> None:
    page = tmp_path / "monitor.html"
    # only stable days in the period asked for
    result = _monitor_cli(log, "--json", "--since", "2026-01-05", "--until", "2026-01-08", "--version", "1",
                          "--html", str(page))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["windows"]) == 3 and data["alarm"] is False
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<svg" in text and "churn" in text


def test_cli_errors(log: Log) -> None:
    for args in (["--window", "3x"], ["--since", "yesterday"]):
        result = _monitor_cli(log, *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    unknown = CliRunner().invoke(cli, ["monitor", "nobody", "--database", str(log.database)])
    assert unknown.exit_code == 2 and "nobody" in unknown.output


# ------------------------------------------------------------------ the HTTP endpoint


@pytest.fixture(scope="module")
def http(log: Log) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    with TestClient(create_app(log.settings), raise_server_exceptions=False) as client:
        yield client


PERIOD = {"since": "2026-01-10T00:00:00Z", "until": "2026-01-12T00:00:00Z"}


def test_http_json(http: Any) -> None:
    answer = http.get("/v1/models/churn/monitor", params={"window": "1d", "version": 1, **PERIOD})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    data = answer.json()
    assert [w["start"] for w in data["windows"]] == ["2026-01-10T00:00:00Z", "2026-01-11T00:00:00Z"]
    assert [w["alarm"] for w in data["windows"]] == [False, True]
    assert "report" not in data["windows"][0]  # short unless full=true
    full = http.get("/v1/models/churn/monitor", params={"window": "1d", "full": "true", "version": 1, **PERIOD})
    assert full.json()["windows"][1]["report"]["features"]["watch_hours"]["drift"] is True


def test_http_html(http: Any) -> None:
    answer = http.get("/v1/models/churn/monitor", params={"format": "html", "version": 1, **PERIOD})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<svg" in answer.text and "watch_hours" in answer.text


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-01-10T00:00:00"},  # no timezone
        {"until": "2026-01-12T00:00:00"},
        {"window": "fortnight"},
        {"window": "count:0"},
        {"format": "pdf"},
        {"version": 0},
    ],
)
def test_http_bad_queries_are_422(http: Any, params: dict[str, str]) -> None:
    answer = http.get("/v1/models/churn/monitor", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["status"] == 422


def test_http_unknown_model_is_404(http: Any) -> None:
    answer = http.get("/v1/models/nobody/monitor")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
