"""The CLI: a thin layer over the library, with clear messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from loopwatch.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def training_csv(tmp_path: Path, churn_training: pd.DataFrame) -> Path:
    path = tmp_path / "customers.csv"
    churn_training.to_csv(path, index=False)
    return path


def _ok(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output + (str(result.exception) if result.exception else "")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("path", _commands(cli))
def test_every_command_has_help_and_is_documented(runner: CliRunner, path: tuple[str, ...]) -> None:
    result = runner.invoke(cli, [*path, "--help"])
    _ok(result)
    assert "Usage:" in result.output
    documented = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    assert f"loopwatch {' '.join(path)}" in documented, f"loopwatch {' '.join(path)} is not in the docs"


def test_train_predict_logs_round_trip(runner: CliRunner, training_csv: Path, tmp_path: Path) -> None:
    _ok(runner.invoke(cli, ["train", str(training_csv), "--model", "churn", "--target", "churned"]))
    result = runner.invoke(cli, ["train", str(training_csv), "-m", "churn", "-t", "churned", "--json",
                                 "--estimator", "random_forest"])
    _ok(result)
    assert json.loads(result.output)["aliases"] == ["candidate"]
    scored = tmp_path / "scored.csv"
    _ok(runner.invoke(cli, ["predict", str(training_csv), "--model", "churn", "--out", str(scored),
                            "--batch-rows", "500"]))
    frame = pd.read_csv(scored)
    assert len(frame) == 1500 and {"prediction", "probability_0", "probability_1"} <= set(frame.columns)
    result = runner.invoke(cli, ["logs", "--model", "churn", "--format", "json"])
    _ok(result)
    events = json.loads(result.output)
    assert len(events) == 1500 and {e["request_type"] for e in events} == {"cli"}
    assert len({e["request_id"] for e in events}) == 3  # 1500 rows in requests of 500
    result = runner.invoke(cli, ["logs", "--model", "churn", "--limit", "4"])
    _ok(result)
    assert len(result.output.strip().splitlines()) == 4
    out = tmp_path / "events.parquet"
    _ok(runner.invoke(cli, ["logs", "--model", "churn", "--format", "parquet", "--out", str(out)]))
    assert len(pd.read_parquet(out)) == 1500
    request_id = events[0]["request_id"]
    _ok(runner.invoke(cli, ["logs", "delete", request_id]))
    result = runner.invoke(cli, ["logs", "--model", "churn", "--format", "json"])
    assert len(json.loads(result.output)) == 1000


def test_models_commands(runner: CliRunner, training_csv: Path) -> None:
    for seed in ("1", "2"):
        _ok(runner.invoke(cli, ["train", str(training_csv), "-m", "churn", "-t", "churned", "--seed", seed]))
    result = runner.invoke(cli, ["models", "list", "--json"])
    _ok(result)
    (model,) = json.loads(result.output)
    assert model["aliases"] == {"production": 1, "candidate": 2}
    result = runner.invoke(cli, ["models", "promote", "churn"])
    _ok(result)
    assert "production is now v2 (was v1); candidate none" in result.output
    result = runner.invoke(cli, ["models", "show", "churn", "--json"])
    assert [v["aliases"] for v in json.loads(result.output)] == [[], ["production"]]
    result = runner.invoke(cli, ["models", "rollback", "churn"])
    _ok(result)
    assert "rolled back to v1 (was v2); candidate v2" in result.output
    result = runner.invoke(cli, ["models", "show", "churn", "--json"])
    assert [v["aliases"] for v in json.loads(result.output)] == [["production"], ["candidate"]]
    result = runner.invoke(cli, ["models", "settings", "churn", "--no-log-data", "--retention-days", "30"])
    _ok(result)
    assert json.loads(result.output) == {"log_data": False, "retention_days": 30, "nullable": []}
    _ok(runner.invoke(cli, ["logs", "purge"]))


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.csv", "-m", "m", "-t", "y"], "no such file"),
        (["train", "{csv}", "-m", "m", "-t", "nope"], "target column 'nope'"),
        (["train", "{csv}", "-m", "bad name!", "-t", "churned"], "model name"),
        (["models", "promote", "ghost"], "no model named 'ghost'"),
        (["logs", "delete", "no-such-request"], "no logged request"),
        (["logs", "--format", "parquet"], "needs --out"),
        (["predict", "{csv}", "-m", "ghost"], "no model named"),
    ],
)
def test_errors_are_one_clear_line_and_exit_code_2(
    runner: CliRunner, training_csv: Path, args: list[str], message: str
) -> None:
    args = [a.replace("{csv}", str(training_csv)) for a in args]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["train"])
    assert result.exit_code == 2 and "Missing argument" in result.output


def test_the_installed_command_runs(tmp_path: Path, training_csv: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "LOOPWATCH_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "train", str(training_csv), "-m", "churn", "-t", "churned", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    assert (tmp_path / "home" / "loopwatch.db").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "loopwatch", "models", "rollback", "churn"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "roll back" in bad.stderr
