"""Nulls the training data never had: declared nullable after training, or filled in by the
model and reported, or (for a model that cannot fill them in) refused with row and feature.

What was chosen: a null in a feature the schema declares nullable (training saw it missing)
or the model's settings declare nullable (``loopwatch models settings M --nullable f``, the
settings route, ``Registry.update_settings``) is accepted and counted as missing. A null in
any other feature is accepted when the model's pipeline fills it in itself (loopwatch's own
pipelines all do: the numeric median imputer, the one-hot encoder that ignores unknown
categories), counted as missing, and the monitor's window report lists it under
``data_quality.unexpected_missing`` (an alarm from 2% of a window's rows); a model of
another shape keeps the 422 with the row and the feature.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.errors import InvalidInput, SchemaViolation
from loopwatch.models.imputation import imputed_features
from loopwatch.models.training import train_model
from loopwatch.application.monitoring import monitor
from loopwatch.records import ModelSettings
from loopwatch.service import create_app
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.api.helpers import assert_error


def table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    grade = rng.integers(1, 4, n)
    return pd.DataFrame({"x": x, "grade": grade, "y": (x + grade + rng.normal(size=n) > 2).astype(int)})


def rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    frame = table(n, seed).drop(columns="y")
    return [{"x": float(r.x), "grade": int(r.grade)} for r in frame.itertuples()]


@pytest.fixture
def ws(settings: Settings) -> Any:
    with Workspace(settings) as workspace:
        workspace.train("m", table(), target="y", categorical=["grade"])
        yield workspace


def window_quality(ws: Workspace) -> dict[str, Any]:
    report = monitor(ws.store, ws.registry, "m", window="count:1000")
    assert len(report.windows) == 1
    window = report.windows[0]
    return {"unexpected": window.report.data_quality.unexpected_missing, "alarms": window.alarms,
            "missing_rate": window.report.data_quality.missing_rate}


def test_a_null_the_model_fills_in_is_served_counted_and_reported(ws: Workspace) -> None:
    schema = ws.registry.resolve("m").schema
    assert not any(f.nullable for f in schema.features)
    assert ws.registry.load("m").imputes == {"x", "grade"}
    sent = rows(100)
    for i in range(0, 10):
        sent[i] = {**sent[i], "x": None}
    sent[10] = {**sent[10], "grade": None}
    result = ws.predict("m", sent)
    assert len(result.predictions) == 100
    logged = list(ws.store.iter_events(EventQuery(model_name="m")))
    assert sum(e.data["x"] is None for e in logged) == 10
    assert sum(e.input_data_summary["n_missing"] for e in logged) == 11
    quality = window_quality(ws)
    assert quality["unexpected"] == {"x": 10, "grade": 1}
    assert quality["missing_rate"]["x"] == pytest.approx(0.10)
    # 10% of the window is an alarm; one row in a hundred is below the 2% share: a finding only
    assert "quality:unexpected_missing:x" in quality["alarms"]
    assert "quality:unexpected_missing:grade" not in quality["alarms"]

    # declared nullable after training: still counted as missing, no longer a finding
    ws.registry.update_settings("m", ModelSettings(nullable=("x", "grade")))
    quality = window_quality(ws)
    assert quality["unexpected"] == {} and not any("unexpected" in a for a in quality["alarms"])
    assert quality["missing_rate"]["x"] == pytest.approx(0.10)


def test_a_model_that_cannot_fill_nulls_in_keeps_the_422_until_declared(ws: Workspace) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = table()
    trained = train_model(frame, "y", categorical=["grade"], profile=False)
    strict = Pipeline([
        ("features", ColumnTransformer([("numeric", StandardScaler(), ["x"]),
                                        ("categorical", OneHotEncoder(handle_unknown="error"), ["grade"])])),
        ("model", LogisticRegression()),
    ]).fit(frame[["x", "grade"]].astype({"grade": str}), frame["y"])
    assert imputed_features(strict) == frozenset()
    assert imputed_features(trained.pipeline) == {"x", "grade"}
    ws.registry.register("strict", replace(trained, pipeline=strict))
    with pytest.raises(SchemaViolation) as caught:
        ws.predict("strict", [rows(1)[0], {"x": None, "grade": 2}])
    assert caught.value.detail["problems"] == [
        {"row": 1, "feature": "x", "problem": "null is not allowed: the feature is not nullable and the model "
                                              "cannot fill it in"}]


def test_settings_name_only_features_of_the_model(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="not features of model 'm': 'nope'"):
        ws.registry.update_settings("m", ModelSettings(nullable=("x", "nope")))
    stored = ws.registry.update_settings("m", ModelSettings(nullable=("x", "grade", "x")))
    assert stored.nullable == ("grade", "x") and ws.registry.settings("m", fresh=True).nullable == ("grade", "x")


def test_cli_declares_and_clears_nullable_features(ws: Workspace, settings: Settings) -> None:
    runner = CliRunner()
    env = {"LOOPWATCH_HOME": str(settings.home), "LOOPWATCH_DATABASE": settings.database}
    done = runner.invoke(cli, ["models", "settings", "m", "--nullable", "x, grade"], env=env)
    assert done.exit_code == 0, done.output
    assert '"nullable":["grade","x"]' in done.output.replace(" ", "")
    # other settings keep the declared features
    done = runner.invoke(cli, ["models", "settings", "m", "--no-log-data"], env=env)
    assert '"nullable":["grade","x"]' in done.output.replace(" ", "") and '"log_data":false' in done.output
    done = runner.invoke(cli, ["models", "settings", "m", "--nullable", "bogus"], env=env)
    assert done.exit_code == 2 and "not features of model 'm'" in done.output and "Traceback" not in done.output
    done = runner.invoke(cli, ["models", "settings", "m", "--nullable", ""], env=env)
    assert done.exit_code == 0 and '"nullable":[]' in done.output.replace(" ", "")


def test_http_settings_route_declares_nullable_features(ws: Workspace, settings: Settings) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        put = http.put("/v1/models/m/settings", json={"log_data": True, "nullable": ["x"]})
        assert put.status_code == 200, put.text
        assert put.json()["nullable"] == ["x"]
        assert http.get("/v1/models/m/settings").json()["nullable"] == ["x"]
        assert_error(http.put("/v1/models/m/settings", json={"nullable": ["nope"]}), 422)
        assert_error(http.put("/v1/models/m/settings", json={"nullable": "x"}), 422)
        # a null in the declared feature is served
        done = http.post("/v1/models/m/predict", json={"rows": [{"x": None, "grade": 2}]})
        assert done.status_code == 200, done.text
