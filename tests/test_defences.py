"""Evasion defences and the adversarial score at prediction time.

The input defences (clip to the training range, squeeze to a grid) as pure functions; their
per-model choice in the monitoring configuration; and, through the real service on a real
SQLite file, that the model answers the defended rows while the log keeps the rows as sent,
and that every logged row carries its adversarial score. Adversarial training data last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.config import Settings
from loopwatch.models.attacks import augment_with_adversarial, boundary_attack
from loopwatch.errors import InvalidInput
from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.models.defences import (
    SQUEEZE_SHARE,
    apply_defences,
    check_defences,
    clip_to_training_range,
    squeeze_to_grid,
)
from loopwatch.models.training import prepare_features
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, workspace_on_copy
from tests.conftest import churn_rows

CONFIG = "/v1/models/churn/monitoring-config"
SCHEMA = FeatureSchema(
    features=(
        Feature(name="fee", kind="numeric", minimum=5.0, maximum=20.0, mean=12.0, std=4.0),
        Feature(name="tickets", kind="numeric", integer=True, minimum=0.0, maximum=9.0, mean=2.0, std=7.0),
        Feature(name="plan", kind="categorical", categories=("a", "b")),
    ),
    target="y",
    task="classification",
)
FRAME = pd.DataFrame({"fee": [3.0, 12.13, 99.0, np.nan], "tickets": [0.4, 3.0, 12.0, 2.0], "plan": ["a", "b", "a", None]})


# -- the defences as functions --------------------------------------------------------------------

def test_clipping_keeps_every_numeric_feature_in_its_training_range() -> None:
    clipped = clip_to_training_range(FRAME, SCHEMA)
    assert clipped["fee"].tolist()[:3] == [5.0, 12.13, 20.0] and np.isnan(clipped["fee"].iloc[3])
    assert clipped["tickets"].tolist() == [0.4, 3.0, 9.0, 2.0]
    assert clipped["plan"].tolist() == FRAME["plan"].tolist()
    assert FRAME["fee"].iloc[2] == 99.0  # the input is not changed


def test_squeezing_rounds_to_a_grid_from_the_training_minimum() -> None:
    squeezed = squeeze_to_grid(FRAME, SCHEMA)
    step = SQUEEZE_SHARE * 4.0
    assert squeezed["fee"].iloc[1] == pytest.approx(5.0 + round(7.13 / step) * step)
    # an integer feature moves in whole steps, here round(0.1 * 7) = 1
    assert squeezed["tickets"].tolist() == [0.0, 3.0, 12.0, 2.0]
    assert np.isnan(squeezed["fee"].iloc[3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=20))
def test_squeezing_is_idempotent_and_moves_a_value_at_most_half_a_step(values: list[float]) -> None:
    frame = pd.DataFrame({"fee": values, "tickets": 1.0, "plan": "a"})
    once = squeeze_to_grid(frame, SCHEMA)
    twice = squeeze_to_grid(once, SCHEMA)
    np.testing.assert_allclose(twice["fee"], once["fee"], rtol=0, atol=1e-9)
    step = SQUEEZE_SHARE * 4.0
    assert np.all(np.abs(once["fee"].to_numpy() - np.asarray(values)) <= step / 2 + 1e-6)
    both = apply_defences(frame, SCHEMA, ["squeeze", "clip"])
    assert both["fee"].between(5.0, 20.0).all()


def test_defences_are_named_from_a_closed_list() -> None:
    assert check_defences(["clip", "squeeze"]) == check_defences(["squeeze", "clip"]) == ("squeeze", "clip")
    assert check_defences([]) == ()
    with pytest.raises(InvalidInput, match="unknown defences"):
        check_defences(["blur"])
    with pytest.raises(InvalidInput, match="twice"):
        check_defences(["clip", "clip"])
    with pytest.raises(InvalidInput):
        squeeze_to_grid(FRAME, SCHEMA, share=0.0)


def test_the_monitoring_configuration_holds_the_choice() -> None:
    config = MonitoringConfig.from_dict({"defences": ["clip"], "adversarial_fpr": 0.05})
    assert (config.defences, config.adversarial_fpr) == (["clip"], 0.05)
    assert MonitoringConfig().defences == [] and MonitoringConfig().adversarial_fpr == 0.01
    for bad in ({"defences": ["blur"]}, {"defences": "clip"}, {"defences": [1]}, {"adversarial_fpr": 0.7},
                {"adversarial_fpr": True}):
        with pytest.raises(InvalidInput):
            MonitoringConfig.from_dict(bad)


# -- at prediction time, through the real service ---------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("defences-template") / "loopwatch.db"
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", churn_training, target="churned")
    return path


@pytest.fixture
def trained(settings: Settings, template: Path) -> Iterator[Workspace]:
    yield from workspace_on_copy(template, settings)


def _events(ws: Workspace, request_id: str) -> list[Any]:
    return sorted(ws.store.iter_events(EventQuery(request_id=request_id)), key=lambda e: e.row_index)


def test_every_logged_row_carries_its_adversarial_score(client, trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    rows = churn_rows(churn_training, 20)
    far = dict(rows[0], monthly_fee=1e6)  # a valid number a client can send, far from any customer
    answer = client.post(PREDICT, json={"rows": [*rows, far]}, headers={"X-Request-ID": "scored"})
    assert answer.status_code == 200, answer.text
    summaries = [e.input_data_summary for e in _events(trained, "scored")]
    assert all(isinstance(s["adversarial_score"], float) and isinstance(s["adversarial"], bool) for s in summaries)
    assert summaries[-1]["adversarial"] is True
    assert sum(s["adversarial"] for s in summaries[:-1]) <= 3  # clean training rows at a 1% rate
    # the logged score is the version's detector's, at the configured rate
    detector = trained.registry.profile("churn").adversarial
    version = trained.registry.resolve("churn")
    frame = prepare_features(pd.DataFrame(rows), version.schema)
    expected = detector.score_samples(frame, model=trained.registry.load("churn").pipeline)
    np.testing.assert_allclose([s["adversarial_score"] for s in summaries[:-1]], expected, atol=1e-4)


def test_defences_change_the_answer_not_the_log(client, trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    rows = churn_rows(churn_training, 5)
    sent = [dict(rows[0], monthly_fee=500.0, tenure_months=1000.0), dict(rows[1], watch_hours=12.3456)]
    saved = client.put(CONFIG, json={"defences": ["clip", "squeeze"], "adversarial_fpr": 0.05})
    assert saved.status_code == 200, saved.text
    after = client.post(PREDICT, json={"rows": sent}, headers={"X-Request-ID": "defended"}).json()
    version = trained.registry.resolve("churn")
    pipeline = trained.registry.load("churn").pipeline
    frame = prepare_features(pd.DataFrame(sent), version.schema)
    defended = apply_defences(frame, version.schema, ["clip", "squeeze"])
    np.testing.assert_allclose(after["probabilities"], pipeline.predict_proba(defended), rtol=1e-12)
    assert not np.allclose(pipeline.predict_proba(frame), after["probabilities"])
    events = _events(trained, "defended")
    assert [e.data["monthly_fee"] for e in events] == [500.0, rows[1]["monthly_fee"]]  # as sent
    assert events[0].input_data_summary["adversarial"] is True  # scored on what was sent, not clipped


def test_an_unknown_defence_is_a_clear_422(client) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.put(CONFIG, json={"defences": ["blur"]}), 422)
    assert_error(client.put(CONFIG, json={"defences": "clip"}), 422)
    assert_error(client.put(CONFIG, json={"adversarial_fpr": 2}), 422)


def test_a_version_without_a_detector_still_answers(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    # a profile stored before loopwatch kept the detector loads with adversarial = None
    from loopwatch.drift.profile import ReferenceProfile
    from loopwatch.models.training import train_model

    model = train_model(churn_training.head(400), "churned", seed=1)
    model.profile.adversarial = None
    assert ReferenceProfile.from_bytes(model.profile.to_bytes()).adversarial is None
    trained.registry.register("old", model)
    answer = trained.predict("old", churn_rows(churn_training, 2), request_id="old-1")
    assert len(answer.predictions) == 2
    summary = _events(trained, "old-1")[0].input_data_summary
    assert "adversarial_score" not in summary and summary["n_missing"] == 0


def test_a_tampered_profile_leaves_the_model_answering_without_scores(
    trained, settings, churn_training, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    sha = trained.registry.resolve("churn").profile_sha256
    database = settings.database_url[len("sqlite:///"):]
    with sqlite3.connect(database) as conn:
        content = bytearray(conn.execute("SELECT content FROM artifacts WHERE sha256 = ?", (sha,)).fetchone()[0])
        content[len(content) // 2] ^= 0x01
        conn.execute("UPDATE artifacts SET content = ? WHERE sha256 = ?", (bytes(content), sha))
    with caplog.at_level("ERROR", logger="loopwatch.application.prediction"):
        answer = trained.predict("churn", churn_rows(churn_training, 2), request_id="tampered")
    assert len(answer.predictions) == 2
    assert "adversarial_score" not in _events(trained, "tampered")[0].input_data_summary
    assert any("integrity alarm" in r.getMessage() and "reference profile" in r.getMessage() for r in caplog.records)


# -- adversarial training data ----------------------------------------------------------------------

def test_augmenting_adds_flipped_rows_with_their_true_labels(churn_training) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.models.training import train_model

    frame = churn_training.head(800)
    model = train_model(frame, "churned", seed=0, profile=False)
    augmented = augment_with_adversarial(frame, "churned", model.pipeline, share=0.2, seed=0, schema=model.schema)
    assert augmented.equals(augment_with_adversarial(frame, "churned", model.pipeline, share=0.2, seed=0,
                                                     schema=model.schema))  # seeded
    pd.testing.assert_frame_equal(augmented.iloc[: len(frame)], frame.reset_index(drop=True), check_dtype=False)
    added = augmented.iloc[len(frame):]
    assert 0.1 * len(frame) <= len(added) <= 0.2 * len(frame)
    features = prepare_features(added, model.schema)
    # the model gets every added row wrong; the label is the true one, so retraining learns it
    assert (model.pipeline.predict(features) != added["churned"].to_numpy()).all()
    assert set(added.columns) == set(frame.columns)
    for name in model.schema.categorical:
        assert set(added[name].dropna()) <= set(frame[name].dropna())
    for name in model.schema.numeric:
        feature = model.schema.feature(name)
        assert added[name].dropna().between(feature.minimum, feature.maximum).all()
    with pytest.raises(InvalidInput):
        augment_with_adversarial(frame, "churned", model.pipeline, share=0.0, seed=0)
    with pytest.raises(InvalidInput):
        augment_with_adversarial(frame, "nope", model.pipeline, seed=0)


def test_the_boundary_attack_keeps_categories_and_ranges(churn_training) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.models.training import train_model

    model = train_model(churn_training.head(800), "churned", seed=0, profile=False)
    rows = prepare_features(churn_training.iloc[800:900], model.schema)
    attacked = boundary_attack(rows, model.pipeline, model.schema, seed=0)
    assert attacked.success.mean() > 0.9
    pd.testing.assert_frame_equal(attacked.adversarial[model.schema.categorical], rows[model.schema.categorical])
    flipped = model.pipeline.predict(attacked.adversarial) != model.pipeline.predict(rows)
    np.testing.assert_array_equal(flipped, attacked.success)
    assert attacked.to_dict()["success_rate"] == attacked.success.mean()
