"""The registry: versions, aliases, promotion and rollback, reference samples, verified loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopwatch.errors import Conflict, IntegrityError, InvalidInput, NotFound
from loopwatch.models.training import split_positions
from loopwatch.registry import decode_frame, encode_frame


def test_first_version_is_production_and_later_ones_candidates(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    v2 = trained.train("churn", churn_training, target="churned", estimator="random_forest")
    assert v2.version == 2 and v2.aliases == ("candidate",)
    assert trained.registry.aliases("churn", fresh=True) == {"production": 1, "candidate": 2}
    assert trained.registry.resolve("churn").version == 1
    assert trained.registry.resolve("churn", "candidate").version == 2
    assert trained.registry.resolve("churn", "2").version == 2


def test_promote_and_roll_back(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    registry = trained.registry
    with pytest.raises(Conflict, match="no candidate"):
        registry.promote("churn")
    with pytest.raises(Conflict, match="no earlier"):
        registry.rollback("churn")
    trained.train("churn", churn_training, target="churned", seed=1)
    trained.train("churn", churn_training, target="churned", seed=2)
    assert registry.promote("churn").version == 3  # the candidate
    # production serves the candidate now: the candidate alias is cleared, and that is recorded
    assert registry.aliases("churn", fresh=True) == {"production": 3}
    cleared = trained.store.alias_history("churn", "candidate")[-1]
    assert (cleared.version, cleared.previous_version, cleared.reason) == (None, 3, "promote: production now serves it")
    with pytest.raises(Conflict, match="no candidate"):
        registry.promote("churn")  # nothing left to promote, instead of a silent no-op
    assert registry.promote("churn", 2).version == 2
    change = registry.rollback("churn")
    assert (change.version, change.previous_version) == (3, 2)
    assert registry.aliases("churn", fresh=True) == {"production": 3}  # 2 was never the candidate
    history = trained.store.alias_history("churn", "production")
    assert [h.reason for h in history][:3] == ["registered", "promote", "promote"]


def test_a_rollback_undoes_the_whole_promotion(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    registry = trained.registry
    trained.train("churn", churn_training, target="churned", seed=1)  # v2, the candidate
    registry.promote("churn")
    assert registry.aliases("churn", fresh=True) == {"production": 2}
    registry.rollback("churn")
    assert registry.aliases("churn", fresh=True) == {"production": 1, "candidate": 2}
    assert [(h.version, h.previous_version, h.reason) for h in trained.store.alias_history("churn", "candidate")] == [
        (2, None, "registered"), (None, 2, "promote: production now serves it"), (2, None, "rollback")]
    # the gate's promotion (and any other way production takes the candidate) clears it too
    registry.set_alias("churn", "production", 2, reason="gate")
    assert registry.aliases("churn", fresh=True) == {"production": 2}
    # production moved to a version that is not the candidate: the candidate stays
    trained.train("churn", churn_training, target="churned", seed=2)  # v3
    registry.promote("churn", 1)
    assert registry.aliases("churn", fresh=True) == {"production": 1, "candidate": 3}


def test_loading_checks_the_hash_every_time(trained) -> None:  # type: ignore[no-untyped-def]
    meta = trained.registry.resolve("churn")
    sqlite_path = trained.store.path
    trained.store.close()
    import sqlite3

    with sqlite3.connect(sqlite_path) as conn:
        content = conn.execute("SELECT content FROM artifacts WHERE sha256 = ?", (meta.artifact_sha256,)).fetchone()[0]
        tampered = bytearray(content)
        tampered[100] ^= 0xFF
        conn.execute("UPDATE artifacts SET content = ? WHERE sha256 = ?", (bytes(tampered), meta.artifact_sha256))
    from loopwatch.registry import Registry

    with pytest.raises(IntegrityError):
        Registry(trained.store).load("churn")


def test_unknown_models_and_versions(trained) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="no model named"):
        trained.registry.load("nope")
    with pytest.raises(NotFound, match="no version 9"):
        trained.registry.load("churn", 9)
    with pytest.raises(InvalidInput):
        trained.registry.set_alias("churn", "staging", 1, reason="x")
    with pytest.raises(InvalidInput):
        trained.train("bad name!", pd.DataFrame({"a": range(20), "y": [0, 1] * 10}), target="y")


def _same_rows(sample: pd.DataFrame, expected: pd.DataFrame) -> None:
    columns = list(expected.columns)
    assert len(sample) == len(expected)  # small tables are kept whole
    pd.testing.assert_frame_equal(
        sample[columns].sort_values(columns).reset_index(drop=True),
        expected.sort_values(columns).reset_index(drop=True),
        check_dtype=False,
    )


def test_reference_sample_is_kept_with_the_version(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    # screened (the default): the training split's rows that the screens kept
    screening = trained.registry.resolve("churn", 1).params["screening"]
    training, _ = split_positions(churn_training["churned"].to_numpy(), "classification", target="churned",
                                  test_size=0.2, seed=0)
    kept = sorted(set(training.tolist()) - {int(row["index"]) for row in screening["quarantined"]})
    _same_rows(trained.registry.reference_sample("churn", 1), churn_training.iloc[kept])
    # trained on every row: the whole table, holdout included
    trained.train("plain", churn_training, target="churned", screen=False)
    _same_rows(trained.registry.reference_sample("plain", 1), churn_training)


def test_frame_encoding_round_trips_kinds_and_missing_values() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, -2.0],
            "i": [1, 2, 3],
            "s": ["a", None, "c"],
            "b": [True, False, True],
        }
    )
    back = decode_frame(encode_frame(frame))
    assert back["f"].isna().tolist() == [False, True, False]
    assert back["i"].tolist() == [1, 2, 3] and back["i"].dtype == np.int64
    assert [None if pd.isna(v) else v for v in back["s"]] == ["a", None, "c"]
    assert back["b"].tolist() == [True, False, True]
    assert encode_frame(frame) == encode_frame(frame)  # deterministic bytes, stable hash


def test_training_runs_are_events(trained) -> None:  # type: ignore[no-untyped-def]
    events = trained.store.training_events("churn")
    assert len(events) == 1
    event = events[0]
    assert event.model_version == 1 and event.duration_ms > 0
    assert event.metrics["roc_auc"] > 0.6
    assert event.data_summary["target"]["kind"] == "classes"
    assert set(event.data_summary["features"]) >= {"age", "country"}
