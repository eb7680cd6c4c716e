"""The loops commands on real files: loops, watch, incidents, ack, rebaseline, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from tests.api.helpers import copy_database, wait_for
from tests.loops.receivers import Receiver, serve_receiver
from tests.loops.scheduling import IMPOSSIBLE_BUDGET, NOW, build_template

UNTIL = NOW.isoformat()
SINCE = (NOW - timedelta(days=3)).isoformat()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    return build_template(tmp_path_factory.mktemp("loops-cli-template") / "loopwatch.db", churn_training)


@pytest.fixture
def home(isolated_home: Path, template: Path) -> Path:
    """LOOPWATCH_HOME holds a copy of the template: "churn" v1 in production, three days of traffic."""
    copy_database(template, Path(Settings.from_env().database_url[len("sqlite:///"):]))
    return isolated_home


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


def run(runner: CliRunner, *args: str, code: int = 0) -> Result:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output + (repr(result.exception) if result.exception else "")
    assert "Traceback" not in result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(result.output)


def configure(runner: CliRunner, **settings: Any) -> dict[str, Any]:
    args = [f"{k}={json.dumps(v)}" for k, v in {**IMPOSSIBLE_BUDGET, **settings}.items()]
    return as_json(run(runner, "config", "churn", *[x for a in args for x in ("--set", a)]))


def test_config_shows_changes_and_keeps_every_version(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    shown = as_json(run(runner, "config", "churn"))
    assert shown["version"] is None and shown["config"]["window"] == "1d"

    first = as_json(run(runner, "config", "churn", "--set", "latency_budget_ms=50", "--set", "window=7d",
                        "--author", "ana"))
    assert first["version"] == 1 and first["author"] == "ana"
    assert first["config"]["latency_budget_ms"] == 50.0 and first["config"]["window"] == "7d"

    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps({"webhooks": ["https://hooks.example.org/a"], "min_labels": 50}))
    second = as_json(run(runner, "config", "churn", "--file", str(changes), "--set", "min_labels=80",
                         "--set", "metric=null"))
    assert second["version"] == 2 and second["config"]["min_labels"] == 80  # --set wins over the file
    assert second["config"]["webhooks"] == ["https://hooks.example.org/a"]
    assert second["config"]["latency_budget_ms"] == 50.0  # merged onto the latest

    assert [v["version"] for v in as_json(run(runner, "config", "churn", "--history"))] == [1, 2]
    assert as_json(run(runner, "config", "churn", "--version", "1"))["config"]["webhooks"] == []
    assert as_json(run(runner, "config", "churn"))["version"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["config", "churn", "--set", "latency_budget=50"], "unknown monitoring settings: latency_budget"),
        (["config", "churn", "--set", "drift_alpha=NaN"], "drift_alpha must be a finite number"),
        (["config", "churn", "--set", "webhooks=https://x.example.org"], "webhooks must be a list"),
        (["config", "churn", "--set", "window"], "write KEY=VALUE"),
        (["config", "churn", "--file", "no-such.json"], "cannot read"),
        (["config", "churn", "--version", "4"], "no monitoring configuration version 4"),
        (["config", "churn", "--history", "--set", "window=1h"], "do not combine"),
        (["config", "ghost"], "no model named 'ghost'"),
        (["loops", "ghost"], "no model named 'ghost'"),
        (["loops", "churn", "--since", "yesterday"], "not an ISO-8601 time"),
        (["loops", "churn", "--window", "fortnight"], "window"),
        (["incidents", "ghost"], "no model named 'ghost'"),
        (["ack", "no-such-incident"], "no incident 'no-such-incident'"),
        (["rebaseline", "churn", "--since", UNTIL, "--until", SINCE, "--reason", "r"], "must be before --until"),
        (["rebaseline", "churn", "--since", "2020-01-01", "--until", "2020-01-02", "--reason", "r"],
         "at least 20"),
        (["rebaseline", "ghost", "--since", SINCE, "--until", UNTIL, "--reason", "r"], "ghost"),
        (["watch", "--once", "--model", "ghost"], "no model named 'ghost'"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(
    runner: CliRunner, home: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_config_file_is_refused(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    for content, message in (("[1]", "must hold a JSON object"), ('{"drift_alpha": NaN}', "not valid JSON")):
        path = tmp_path / "bad.json"
        path.write_text(content)
        result = runner.invoke(cli, ["config", "churn", "--file", str(path)])
        assert result.exit_code == 2 and message in result.output, result.output


def test_loops_exits_1_while_an_incident_is_open_and_unacknowledged(runner: CliRunner, home: Path) -> None:
    configure(runner)
    data = as_json(run(runner, "loops", "churn", "--until", UNTIL, "--json", code=1))
    (incident,) = data["incidents"]
    assert incident["kind"] == "latency_regression" and data["open_incidents"] == 1

    table = run(runner, "loops", "churn", "--until", UNTIL, code=1).output
    assert incident["incident_id"] in table and "open recommendations" in table
    assert "production to model" in table and "low_label_coverage" in table

    listed = as_json(run(runner, "incidents", "churn", "--status", "open", "--json"))
    assert [i["incident_id"] for i in listed] == [incident["incident_id"]]
    assert incident["incident_id"] in run(runner, "incidents", "churn").output

    done = as_json(run(runner, "ack", incident["incident_id"], "--by", "ana", "--note", "on it", "--json"))
    assert done["status"] == "acknowledged" and done["acknowledged_by"] == "ana" and done["note"] == "on it"
    assert "acknowledged by" in run(runner, "ack", incident["incident_id"]).output

    after = as_json(run(runner, "loops", "churn", "--until", UNTIL, "--json"))
    assert after["open_incidents"] == 0 and after["incidents"][0]["status"] == "acknowledged"
    recorded = as_json(run(runner, "loops", "churn", "--recorded", "--json"))
    assert recorded["fresh"] is False and len(recorded["incidents"]) == 1
    assert "no open incidents" in run(runner, "incidents", "churn", "--status", "open").output


def test_loops_read_summaries_by_default_and_the_log_when_asked(runner: CliRunner, home: Path) -> None:
    configure(runner)
    summed = as_json(run(runner, "loops", "churn", "--until", UNTIL, "--json", code=1))
    logged = as_json(run(runner, "loops", "churn", "--until", UNTIL, "--json", "--source", "log", code=1))
    # what only rows give is said to be missing from summaries, and is there from the log
    assert "segments" in summed["performance"]["not_measured"]
    assert "not_measured" not in logged["performance"]
    assert [(i["kind"], i["first_seen"]) for i in summed["incidents"]] == \
           [(i["kind"], i["first_seen"]) for i in logged["incidents"]]
    assert "--source" in run(runner, "loops", "--help").output


def test_rebaseline(runner: CliRunner, home: Path) -> None:
    done = as_json(run(runner, "rebaseline", "churn", "--since", SINCE, "--until", UNTIL,
                       "--reason", "the March mix is the new normal", "--json"))
    assert done["number"] == 1 and done["model_version"] == 1
    assert "rebaseline 2" in run(runner, "rebaseline", "churn", "--since", SINCE, "--until", UNTIL,
                                 "--version", "1", "--reason", "again").output


def test_watch_once_evaluates_what_is_due_and_alerts(runner: CliRunner, home: Path, receiver: Receiver) -> None:
    configure(runner, webhooks=[receiver.url])
    (run_line,) = run(runner, "watch", "--once", "--json").output.strip().splitlines()
    done = json.loads(run_line)
    assert done["model"] == "churn" and done["error"] is None and len(done["new_incidents"]) == 1
    assert [d["outcome"] for d in done["deliveries"]] == ["sent"]
    assert receiver.ids() == done["new_incidents"]
    # the schedule (an hour by default) is not due again yet, from any watcher
    assert "nothing was due" in run(runner, "watch", "--once", "--model", "churn").output
    assert len(receiver.bodies) == 1


@pytest.mark.slow
def test_watch_runs_until_interrupted(home: Path, receiver: Receiver) -> None:
    """The real command in its own process: it evaluates, alerts, and stops cleanly on Ctrl-C."""
    runner = CliRunner()
    configure(runner, webhooks=[receiver.url], schedule_seconds=3600)
    env = {**os.environ, "LOOPWATCH_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "loopwatch", "watch", "--tick", "0.1", "--json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: receiver.bodies, timeout=60)
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (line,) = stdout.strip().splitlines()
    assert json.loads(line)["new_incidents"] == receiver.ids()
