"""The demo runs end to end through a real service process and reports its timeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopwatch.simulate import INCIDENT_KINDS


@pytest.mark.slow
def test_demo_json_summary(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "LOOPWATCH_HOME": str(tmp_path / "home")}
    # the demo runs the code under test: a PYTHONPATH that put it first stays in force
    env.update({k: v for k, v in os.environ.items() if k == "PYTHONPATH"})
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "demo", "--json", "--days", "10", "--per-day", "120", "--seed", "3"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["database"] == str(tmp_path / "home" / "demo" / "loopwatch.db")
    assert Path(summary["database"]).exists()
    assert summary["events_logged"] == summary["rows_sent"] > 10 * 100
    assert summary["requests"] > 10
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"] <= summary["latency_ms"]["max"]
    assert summary["throughput"]["requests_per_second"] > 0
    # the service ran with auth on: every request above carried a key, and the door was checked
    assert summary["auth"]["enabled"] is True
    assert all(check["ok"] for check in summary["auth"]["checks"]), summary["auth"]["checks"]
    assert [k["scopes"] for k in summary["auth"]["keys"]["clients"]] == [["predict"]] * len(
        summary["auth"]["keys"]["clients"])
    assert summary["auth"]["keys"]["operator"]["scopes"] == ["admin"]
    assert "lw_" not in done.stdout  # no token is printed
    # with auth on, the log names each request's key, whatever X-Client-ID a client might send
    from loopwatch import open_store
    from loopwatch.stores.base import EventQuery

    client_keys = {k["key_id"] for k in summary["auth"]["keys"]["clients"]}
    store = open_store(f"sqlite:///{summary['database']}")
    try:
        logged = {event.client_id for event in store.iter_events(EventQuery(model_name="churn"))}
    finally:
        store.close()
    assert logged and logged <= client_keys, (logged, client_keys)
    # what a person sees without --json: the same facts as tables
    from rich.console import Console

    from loopwatch.demo.command import render

    console = Console(record=True, width=160)
    render(summary, console)
    text = console.export_text()
    assert f"{summary['events_logged']:,} (rows sent" in text
    assert "POST /v1/models/churn/predict with no key: 401" in text
    assert "with the predict key" in text and ": 403" in text
    assert "what loopwatch found" in text
    incidents = summary["timeline"]["incidents"]
    assert summary["timeline"]["version"] == "1"
    assert {i["kind"] for i in incidents} <= set(INCIDENT_KINDS)
    assert [i["kind"] for i in incidents] == ["covariate_shift"]  # only day 8 fits in 10 days
    for incident in incidents:
        assert {"kind", "day", "touches", "effect_size", "max_delay_days"} <= set(incident)


def test_demo_full_timeline_names_every_kind_once() -> None:
    from loopwatch.simulate import ChurnScenario

    incidents = ChurnScenario(seed=7).timeline.to_dict()["incidents"]
    assert sorted(i["kind"] for i in incidents) == sorted(INCIDENT_KINDS)
    days = [i["day"] for i in incidents]
    assert days == sorted(days) and min(b - a for a, b in zip(days, days[1:])) >= 6
