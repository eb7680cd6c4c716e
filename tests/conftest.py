"""Shared fixtures. Tests never touch a user's real database or models:
every test gets its own LOOPWATCH_HOME under a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

pytest_plugins = ["tests.postgres_fixtures"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "loopwatch-home"
    for name in list(__import__("os").environ):
        if name.startswith("LOOPWATCH_") and name not in {"LOOPWATCH_REQUIRE_POSTGRES", "LOOPWATCH_PG_BINDIR", "LOOPWATCH_PG_TMPDIR"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("LOOPWATCH_HOME", str(home))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return home


@pytest.fixture(scope="session")
def churn_training() -> pd.DataFrame:
    """A small training table from the demo's simulator (features + "churned")."""
    from loopwatch.simulate import ChurnScenario

    return ChurnScenario(seed=11, days=7, predictions_per_day=50).training_data(n=1500)


@pytest.fixture
def settings(isolated_home: Path):  # type: ignore[no-untyped-def]
    from loopwatch.config import Settings

    return Settings.from_env()


@pytest.fixture
def workspace(settings):  # type: ignore[no-untyped-def]
    from loopwatch.application.workspace import Workspace

    with Workspace(settings) as ws:
        yield ws


@pytest.fixture
def trained(workspace, churn_training: pd.DataFrame):  # type: ignore[no-untyped-def]
    """A workspace whose "churn" model has version 1 in production."""
    workspace.train("churn", churn_training, target="churned")
    return workspace


@pytest.fixture
def client(settings, trained) -> Iterator:  # type: ignore[no-untyped-def]
    """An in-process HTTP client of the app, on the same database as ``trained``."""
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield http


def churn_rows(frame: pd.DataFrame, n: int) -> list[dict]:
    """The first n rows as JSON-ready records (no target, NaN as None)."""
    features = frame.drop(columns=["churned"]).head(n)
    return features.astype(object).where(features.notna(), None).to_dict(orient="records")


def fast_settings(path: Path):  # type: ignore[no-untyped-def]
    """Settings for a workspace on the SQLite file ``path``. The tests need no crash safety:
    ``synchronous=NORMAL`` saves an fsync per logged request."""
    from loopwatch.config import Settings

    return Settings.from_env({}, home=path.parent, database=str(path), sqlite_synchronous="NORMAL")
