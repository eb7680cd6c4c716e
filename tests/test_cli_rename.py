"""Names stored before the name rule: still usable from the CLI and the library, refused for new
models, and renamed with ``loopwatch models rename`` / ``Workspace.rename_model``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.errors import Conflict, InvalidInput, NotFound
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.conftest import churn_rows

LEGACY = ".."


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output + (str(result.exception) if result.exception else "")
    return str(result.output)


@pytest.fixture
def legacy(settings: Settings, churn_training: pd.DataFrame) -> Settings:
    """A database whose only model was stored as '..', with a logged prediction under that name."""
    with Workspace(settings) as ws:
        ws.train("churn", churn_training.head(300), target="churned")
        ws.store.rename_model("churn", LEGACY)  # the store takes any name: the rule is the registry's
        ws.predict(LEGACY, churn_rows(churn_training, 2))
    return settings


@pytest.fixture
def csv(tmp_path: Path, churn_training: pd.DataFrame) -> Path:
    path = tmp_path / "rows.csv"
    churn_training.head(200).to_csv(path, index=False)
    return path


def test_a_legacy_name_stays_usable_from_the_cli_until_it_is_renamed(legacy: Settings, csv: Path) -> None:
    runner = CliRunner()
    assert [m["name"] for m in json.loads(_ok(runner.invoke(cli, ["models", "list", "--json"])))] == [LEGACY]
    assert json.loads(_ok(runner.invoke(cli, ["models", "show", LEGACY, "--json"])))[0]["version"] == 1
    _ok(runner.invoke(cli, ["predict", str(csv), "-m", LEGACY, "--out", str(csv.with_name("scored.csv"))]))
    # a new version of the stored model is still taken; a new model under a bad name is not
    _ok(runner.invoke(cli, ["train", str(csv), "-m", LEGACY, "-t", "churned", "--no-screen"]))
    refused = runner.invoke(cli, ["train", str(csv), "-m", "...", "-t", "churned"])
    assert refused.exit_code == 2 and "is not allowed" in refused.output

    output = _ok(runner.invoke(cli, ["models", "rename", LEGACY, "churn", "--json"]))
    moved = json.loads(output)
    assert moved["old"] == LEGACY and moved["new"] == "churn"
    assert moved["rows"]["model_versions"] == 2 and moved["rows"]["events"] >= 202
    assert [m["name"] for m in json.loads(_ok(runner.invoke(cli, ["models", "list", "--json"])))] == ["churn"]
    gone = runner.invoke(cli, ["models", "show", LEGACY])
    assert gone.exit_code == 2 and "no model named '..'" in gone.output
    with Workspace(legacy) as ws:
        assert ws.store.count_events("churn") >= 202 and ws.store.count_events(LEGACY) == 0
        assert {e.model_name for e in ws.store.query_events(EventQuery(model_name="churn", limit=500)).events} == {
            "churn"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["models", "rename", LEGACY, "a b"], "new model name 'a b' is not allowed"),
        (["models", "rename", LEGACY, "."], "is not allowed"),
        (["models", "rename", "ghost", "fresh"], "no model named 'ghost'"),
        (["models", "rename", LEGACY, LEGACY], "is not allowed"),
        (["models", "show", "Z" * 10_000], "no model named 'ZZZ"),
        (["models", "rename", LEGACY, "Z" * 10_000], "9,900 more characters"),
        # click's own usage errors repeat the value too: capped on the same terms
        (["models", "promote", LEGACY, "--version", "Z" * 10_000], "is not a valid integer"),
        (["models", "promote", LEGACY, "--alias", "Z" * 10_000], "more characters"),
    ],
)
def test_rename_errors_are_one_clear_line_that_repeats_little(legacy: Settings, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output.replace("\n", "")
    assert "Z" * 101 not in result.output.replace("\n", "") and "Traceback" not in result.output


def test_the_library_renames_and_refuses_like_the_cli(legacy: Settings, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 1)
    with Workspace(legacy) as ws:
        assert ws.predict(LEGACY, rows).version == 1  # usable as it is
        with pytest.raises(InvalidInput, match="is not allowed"):
            ws.train("./churn", churn_training.head(100), target="churned")
        ws.train("other", churn_training.head(100), target="churned")
        with pytest.raises(Conflict, match="exists already"):
            ws.rename_model(LEGACY, "other")
        moved = ws.rename_model(LEGACY, "churn")
        assert moved["models"] == 1 and moved["model_versions"] == 1
        assert ws.predict("churn", rows).version == 1
        with pytest.raises(NotFound):
            ws.predict(LEGACY, rows)
