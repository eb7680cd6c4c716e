"""The API tests share one trained "churn" model: it is trained once per session and
copied (SQLite backup API) into each test's own database, so every test still starts
from a fresh database of its own without paying for training again."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.application.workspace import Workspace
from tests.api.helpers import copy_database, workspace_on_copy
from tests.conftest import churn_rows


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("trained-template") / "loopwatch.db"
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", churn_training, target="churned")
    return path


@pytest.fixture(scope="session")
def trained_template_with_candidate(
    tmp_path_factory: pytest.TempPathFactory, trained_template: Path, churn_training: pd.DataFrame
) -> Path:
    """The template plus "churn" v2 (trained on 300 rows) as the candidate."""
    path = tmp_path_factory.mktemp("trained-template-v2") / "loopwatch.db"
    copy_database(trained_template, path)
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", churn_training.head(300), target="churned")
    return path


@pytest.fixture
def trained(settings: Settings, trained_template: Path) -> Iterator[Workspace]:
    """Overrides the root fixture with the same content: "churn" v1 in production."""
    for ws in workspace_on_copy(trained_template, settings):
        assert ws.store.get_aliases("churn") == {"production": 1}
        yield ws


@pytest.fixture
def rows(churn_training: pd.DataFrame) -> list[dict]:
    """Five valid rows; row 0..4 of the training data without the target."""
    return churn_rows(churn_training, 5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def churn_database(request: pytest.FixtureRequest, tmp_path: Path, churn_training: pd.DataFrame) -> str:
    """A database holding "churn" v1, for tests that start a service process on it: a copy
    of the session's SQLite template (a path), or trained into PostgreSQL (a URL)."""
    if request.param == "sqlite":
        path = tmp_path / "churn.db"
        copy_database(request.getfixturevalue("trained_template"), path)
        return str(path)
    url = request.getfixturevalue("postgres_dsn")
    with Workspace(Settings.from_env({}, home=tmp_path, database=url)) as ws:
        ws.train("churn", churn_training.head(300), target="churned")
    return url
