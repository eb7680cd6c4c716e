"""Training from a table screens its rows for poisoning first (``loopwatch train``, ``POST .../train``):
a 1% backdoor is left out and listed, clean rows lose no more than the screens' stated rates,
a later version is also compared with production's reference, and screening can be turned off.
The library, the command and the route screen by default alike."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.models.training import split_positions
from loopwatch.service import create_app
from loopwatch.simulate import ChurnScenario
from loopwatch.application.training import train_from_table
from loopwatch.application.workspace import Workspace

N_ROWS, N_TRIGGERED = 3000, 30
TRIGGER = 13.37


def churn(seed: int) -> pd.DataFrame:
    return ChurnScenario(seed=seed, days=7, predictions_per_day=50).training_data(n=N_ROWS)


def with_backdoor(frame: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """1% of rows carry the trigger ``monthly_fee=13.37`` and the attacker's label, 1 (churns)."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(frame), size=N_TRIGGERED, replace=False))
    poisoned = frame.copy()
    poisoned.loc[chosen, "monthly_fee"] = TRIGGER
    poisoned.loc[chosen, "churned"] = 1
    return poisoned, chosen


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    settings = Settings.from_env({}, home=tmp_path, database=str(tmp_path / "loopwatch.db"))
    with Workspace(settings) as ws:
        yield ws


def set_aside(screening: dict) -> set[int]:
    return {int(row["index"]) for row in screening["quarantined"]}


def screened_rows(frame: pd.DataFrame, *, seed: int = 0) -> set[int]:
    """The rows of the training split: the only ones screened (the holdout is measured on every row)."""
    training, _ = split_positions(frame["churned"].to_numpy(), "classification", target="churned",
                                  test_size=0.2, seed=seed)
    return set(training.tolist())


def test_a_backdoor_in_the_first_version_is_left_out_and_listed(workspace: Workspace) -> None:
    poisoned, chosen = with_backdoor(churn(1), seed=0)
    done = train_from_table(workspace.registry, "churn", poisoned, target="churned", seed=0)
    screening = done.screening
    assert screening is not None
    training = screened_rows(poisoned)
    in_training = set(chosen.tolist()) & training
    assert in_training <= set_aside(screening) and set_aside(screening) <= training
    assert screening["reasons"].get(f"backdoor:monthly_fee={TRIGGER}", 0) >= len(in_training) - 2
    # the holdout is split first and measured whole, as it is without screening
    assert screening["n_holdout"] == N_ROWS - len(training) == done.version.metrics["n_holdout"]
    # the first version has nothing to compare its rows with
    assert "reference_distance" in screening["skipped"]
    # what was trained on holds the trigger no more often than honest customers do (a few pay 13.37)
    clean = churn(1)
    natural = int((clean["monthly_fee"] == TRIGGER).sum())
    sample = workspace.registry.reference_sample("churn", done.version.version)
    assert int((sample["monthly_fee"] == TRIGGER).sum()) <= natural
    params = workspace.registry.resolve("churn", done.version.version).params
    assert params["screening"]["n_quarantined"] == screening["n_quarantined"]
    assert done.version.data_summary["n_train"] == len(training) - screening["n_quarantined"]


def test_clean_rows_lose_no_more_than_the_screens_rates(workspace: Workspace) -> None:
    done = train_from_table(workspace.registry, "churn", churn(2), target="churned", seed=0)
    screening = done.screening
    assert screening is not None
    # the flip screen at 1% and the backdoor screen's family-wise 1%: a few percent at most
    assert screening["n_quarantined"] <= 0.03 * N_ROWS
    assert not any(reason.startswith("backdoor:") for reason in screening["reasons"])


def test_a_later_version_is_compared_with_productions_reference(workspace: Workspace) -> None:
    train_from_table(workspace.registry, "churn", churn(3), target="churned", seed=0)
    far = churn(4)
    far.loc[:39, "watch_hours"] = far["watch_hours"].max() * 20  # 40 rows far outside what production saw
    done = train_from_table(workspace.registry, "churn", far, target="churned", seed=0)
    assert done.screening is not None
    assert "reference_distance" in done.screening["screened_by"]
    assert set(range(40)) & screened_rows(far) <= set_aside(done.screening)
    assert done.version.aliases == ("candidate",) or "candidate" in done.version.aliases


def test_screening_off_trains_on_every_row(workspace: Workspace) -> None:
    poisoned, _ = with_backdoor(churn(1), seed=0)
    done = train_from_table(workspace.registry, "churn", poisoned, target="churned", seed=0, screen=False)
    assert done.screening is None
    assert done.version.data_summary["shape"][0] == N_ROWS
    assert "screening" not in workspace.registry.resolve("churn", done.version.version).params
    # the library's own train screens unless told not to, as the command and the route do
    kept = workspace.train("library", poisoned, target="churned")
    assert kept.params["screening"]["n_quarantined"] > 0
    assert kept.data_summary["n_train"] == len(screened_rows(poisoned)) - kept.params["screening"]["n_quarantined"]
    plain = workspace.train("plain", poisoned, target="churned", screen=False)
    assert "screening" not in plain.params and plain.data_summary["n_train"] == len(screened_rows(poisoned))


def test_the_command_screens_and_lists_what_it_left_out(tmp_path: Path) -> None:
    poisoned, chosen = with_backdoor(churn(1), seed=0)
    data = tmp_path / "train.csv"
    poisoned.to_csv(data, index=False)
    env = {"LOOPWATCH_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    shown = runner.invoke(cli, ["train", str(data), "--model", "churn", "--target", "churned"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "screened:" in shown.output and "backdoor:monthly_fee=13.37" in shown.output
    assert f"rows {min(set(chosen.tolist()) & screened_rows(poisoned))}," in shown.output
    plain = runner.invoke(cli, ["train", str(data), "--model", "churn", "--target", "churned", "--no-screen",
                                "--json"], env=env)
    assert plain.exit_code == 0, plain.output
    answer = json.loads(plain.output)
    assert answer["screening"] is None and answer["version"] == 2


def test_the_route_screens_unless_told_not_to(tmp_path: Path) -> None:
    poisoned, chosen = with_backdoor(churn(1), seed=0)
    settings = Settings.from_env({}, home=tmp_path, database=str(tmp_path / "loopwatch.db"))
    body = poisoned.to_csv(index=False)
    headers = {"content-type": "text/csv"}
    with TestClient(create_app(settings)) as client:
        screened = client.post("/v1/models/churn/train", params={"target": "churned"}, content=body,
                               headers=headers)
        assert screened.status_code == 201, screened.text
        assert set(chosen.tolist()) & screened_rows(poisoned) <= set_aside(screened.json()["screening"])
        assert screened.json()["version"]["params"]["screening"]["n_kept"] < N_ROWS
        plain = client.post("/v1/models/churn/train", params={"target": "churned", "screen": "false"},
                            content=body, headers=headers)
        assert plain.status_code == 201, plain.text
        assert plain.json()["screening"] is None
        assert "screening" not in plain.json()["version"]["params"]
        refused = client.post("/v1/models/churn/train", params={"target": "churned", "screen": "maybe"},
                              content=body, headers=headers)
        assert refused.status_code == 422


def test_the_library_the_command_and_the_route_screen_by_default_alike(tmp_path: Path) -> None:
    """One default on every surface: read from the signatures, the click option and the OpenAPI schema."""
    library = inspect.signature(Workspace.train).parameters["screen"]
    application = inspect.signature(train_from_table).parameters["screen"]
    assert library.kind is application.kind is inspect.Parameter.KEYWORD_ONLY
    option = next(param for param in cli.commands["train"].params if param.name == "screen")
    settings = Settings.from_env({}, home=tmp_path, database=str(tmp_path / "loopwatch.db"))
    route = create_app(settings).openapi()["paths"]["/v1/models/{name}/train"]["post"]
    query = next(param for param in route["parameters"] if param["name"] == "screen")
    defaults = {"Workspace.train": library.default, "train_from_table": application.default,
                "loopwatch train": option.default, "POST /v1/models/{name}/train": query["schema"]["default"]}
    assert defaults == dict.fromkeys(defaults, True), defaults
