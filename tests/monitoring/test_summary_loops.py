"""The loop engine on window summaries against the same engine on the log, on real flights.

The served flights of ``test_summary_monitor`` (a shift of distance, an unseen carrier and
missing air times from the fifth of January), ingested with a latency per request and a
late label for most predictions. Read from summaries, every window has the same events,
drifted features and versions as read from the log; the runtime percentile lies within its
histogram bin of the exact one; the label-free estimate lies within the row path's interval;
and the incidents are of the same kinds over the same windows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from loopwatch.application.monitoring.loops_runner import evaluate_loops, summaries_answer
from loopwatch.application.summaries import Summariser
from loopwatch.application.workspace import Workspace
from loopwatch.config import Settings
from loopwatch.records.feedback import Label
from loopwatch.stores.base import EventQuery
from tests.monitoring.test_summary_monitor import served_flights


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, bool]:
    tmp_path = tmp_path_factory.mktemp("summary-loops")
    settings = Settings.from_env({}, home=tmp_path)
    with Workspace(settings) as ws:
        served_flights(ws, tmp_path)
        from_log = evaluate_loops(ws.store, ws.registry, "flights")
        summariser = Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))
        from_summaries = evaluate_loops(ws.store, ws.registry, "flights", summariser=summariser)
        config = from_log.window
        answered = summaries_answer(ws.store, "flights", _config(ws, config), until=None)
    return from_log.to_dict(), from_summaries.to_dict(), answered


def _config(ws: Workspace, window: str):  # type: ignore[no-untyped-def]
    from loopwatch.application.configs import load_monitoring_config

    return load_monitoring_config(ws.store, "flights")[0].merged({"window": window})


def test_summaries_answer_an_evaluation_as_of_now(both: tuple[dict, dict, bool]) -> None:
    assert both[2]


def test_the_same_windows_events_and_drift(both: tuple[dict, dict, bool]) -> None:
    log, summ, _ = both
    assert len(log["windows"]) == 5
    keys = ("start", "end", "n_events", "model_versions", "quality_alarms", "new_segments")
    for a, b in zip(log["windows"], summ["windows"], strict=True):
        for key in keys:
            assert b[key] == a[key], (a["start"], key)
        # a numeric feature's effect is read from its sketch: close, not equal
        assert set(b["drifted_features"]) == set(a["drifted_features"]), a["start"]
        for name, effect in a["drifted_features"].items():
            assert b["drifted_features"][name] == pytest.approx(effect, abs=0.01), (a["start"], name)
    assert "distance" in summ["windows"][-1]["drifted_features"]


def test_the_estimate_lies_within_the_row_paths_interval(both: tuple[dict, dict, bool]) -> None:
    log, summ, _ = both
    compared = 0
    for a, b in zip(log["windows"], summ["windows"]):
        ea, eb = a.get("estimated"), b.get("estimated")
        assert (ea is None) == (eb is None), a["start"]
        if ea is None:
            continue
        compared += 1
        assert ea["ci_low"] - 0.01 <= eb["value"] <= ea["ci_high"] + 0.01, (a["start"], ea, eb)
        # the interval from sums is as wide as the bootstrap's, within a factor of two
        width_a, width_b = ea["ci_high"] - ea["ci_low"], eb["ci_high"] - eb["ci_low"]
        assert 0.5 * width_a <= width_b <= 2.0 * width_a, (a["start"], ea, eb)
    assert compared >= 4


def test_the_same_incidents(both: tuple[dict, dict, bool]) -> None:
    log, summ, _ = both

    def kinds(report: dict) -> list[tuple[str, str]]:
        return sorted((i["kind"], i["first_seen"]) for i in report["incidents"])

    assert kinds(summ) == kinds(log)
    assert any(kind == "covariate_shift" or kind == "selection_bias" for kind, _ in kinds(summ)), kinds(summ)


def test_an_evaluation_as_of_before_the_latest_label_reads_the_log(tmp_path: Path) -> None:
    """A summary's label join holds every label there is: as of a moment before an outcome became
    known, the log answers."""
    settings = Settings.from_env({}, home=tmp_path)
    with Workspace(settings) as ws:
        served = served_flights(ws, tmp_path)
        config = _config(ws, "1d")
        known = served["time"].max().to_pydatetime() + timedelta(days=1)
        assert summaries_answer(ws.store, "flights", config, until=known)  # no label yet
        event = next(iter(ws.store.iter_events(EventQuery(model_name="flights", limit=1))))
        ws.store.write_labels([Label(model_name="flights", label=1, label_time=known, request_id=event.request_id,
                                     row_index=event.row_index)])
        assert not summaries_answer(ws.store, "flights", config, until=known)  # [since, until): not known yet
        assert summaries_answer(ws.store, "flights", config, until=known + timedelta(seconds=1))
        assert summaries_answer(ws.store, "flights", config, until=None)
        assert not summaries_answer(ws.store, "flights", config.merged({"window": "count:500"}), until=None)
