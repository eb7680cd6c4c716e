"""Registry.rebaseline: a version's reference rebuilt from its own traffic, then served by
Registry.profile (never a stale cached one), on both backends."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from loopwatch.errors import IntegrityError, InvalidInput
from loopwatch.models.artifacts import sha256_hex
from loopwatch.models.training import TrainedModel, train_model
from loopwatch.application.prediction import PredictCall, Predictor
from loopwatch.records import ModelSettings
from loopwatch.registry import Registry
from loopwatch.stores import Store
from tests.conftest import churn_rows

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc
DAY = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(churn_training: pd.DataFrame) -> TrainedModel:
    return train_model(churn_training.head(600), "churned", seed=0)


def _log(registry: Registry, store: Store, rows: list[dict], start: datetime, request_id: str) -> None:
    call = PredictCall(
        model_name="churn", rows=rows, request_id=request_id,
        timestamps=[start + timedelta(minutes=10 * i) for i in range(len(rows))],
    )
    store.write_requests([Predictor(registry).predict(call)])


def _shifted(frame: pd.DataFrame, n: int) -> list[dict]:
    rows = churn_rows(frame, n)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and key != "churned":
                row[key] = value * 3 + 50  # a new normal, far from training
    return rows


def test_a_rebaseline_becomes_the_profile_of_its_version(
    store: Store, trained: TrainedModel, churn_training: pd.DataFrame
) -> None:
    registry = Registry(store)
    version = registry.register("churn", trained)
    training_profile = registry.profile("churn", 1)  # now cached
    assert version.profile_sha256 is not None and training_profile.n == trained.profile.n  # type: ignore[union-attr]
    _log(registry, store, _shifted(churn_training.iloc[600:], 60), DAY, "in-window")
    _log(registry, store, churn_rows(churn_training.iloc[700:], 5), DAY + timedelta(days=2), "after")

    record = registry.rebaseline("churn", 1, DAY, DAY + timedelta(days=1), reason="new pricing", at=DAY)
    assert (record.number, record.since, record.until, record.reason) == (1, DAY, DAY + timedelta(days=1), "new pricing")
    rebased = registry.profile("churn", 1)
    assert rebased is not training_profile and rebased.n == 60  # only the window's 60 rows
    assert rebased.features == training_profile.features
    assert set(rebased.outputs.columns) == set(training_profile.outputs.columns)  # type: ignore[union-attr]
    assert registry.profile("churn") is rebased  # by alias too, and from the cache
    # another process's registry sees it too, read from the store and checked against its hash
    other = Registry(store).profile("churn", 1)
    assert other is not rebased and other.n == 60
    assert sha256_hex(store.get_artifact(record.profile_sha256)) == record.profile_sha256
    # the shifted numeric features moved the reference: their means are far above training
    for feature, summary in rebased.univariate.numeric.items():
        assert summary.quantile(0.5) > training_profile.univariate.numeric[feature].quantile(0.5) + 40, feature
    latest = store.latest_rebaseline("churn", 1)
    assert latest is not None and latest[0] == record


def test_a_rebaseline_needs_logged_inputs(store: Store, trained: TrainedModel, churn_training: pd.DataFrame) -> None:
    registry = Registry(store)
    registry.register("churn", trained)
    _log(registry, store, churn_rows(churn_training, 10), DAY, "few")
    with pytest.raises(InvalidInput, match="at least 20"):
        registry.rebaseline("churn", 1, DAY, DAY + timedelta(days=1), reason="r", at=DAY)
    registry.update_settings("churn", ModelSettings(log_data=False))
    _log(registry, store, churn_rows(churn_training, 30), DAY, "private")
    with pytest.raises(InvalidInput, match="logged inputs"):
        registry.rebaseline("churn", 1, DAY, DAY + timedelta(days=1), reason="r", at=DAY)
    assert store.list_rebaselines("churn") == []
    assert registry.profile("churn", 1).n == trained.profile.n  # type: ignore[union-attr]


def test_a_tampered_rebaseline_profile_is_refused(
    store: Store, trained: TrainedModel, churn_training: pd.DataFrame
) -> None:
    registry = Registry(store)
    registry.register("churn", trained)
    _log(registry, store, churn_rows(churn_training, 25), DAY, "window")
    record = registry.rebaseline("churn", 1, DAY, DAY + timedelta(days=1), reason="r", at=DAY)
    statement = "UPDATE artifacts SET content = ? WHERE sha256 = ?"
    if store.dialect == "sqlite":
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        conn.execute(statement, (b"tampered", record.profile_sha256))
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store.url) as conn:
            conn.execute(statement.replace("?", "%s"), (b"tampered", record.profile_sha256))
    with pytest.raises(IntegrityError):
        Registry(store).profile("churn", 1)
