"""The logging: events out through Python's logging, fingerprints, durable writes via the CLI path."""

from __future__ import annotations

import json
import logging


from loopwatch.records import software_fingerprint
from tests.conftest import churn_rows


def test_every_event_is_one_json_line_on_the_events_logger(trained, churn_training, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="loopwatch.events")
    result = trained.predict("churn", churn_rows(churn_training, 5), client_id="batch-job")
    lines = [r.getMessage() for r in caplog.records if r.name == "loopwatch.events"]
    events = [json.loads(line) for line in lines]
    mine = [e for e in events if e.get("request_id") == result.request_id]
    assert [e["row_index"] for e in mine] == [0, 1, 2, 3, 4]
    for event, prediction in zip(mine, result.predictions):
        assert event["prediction"] == prediction
        assert event["client_id"] == "batch-job"
        assert event["model_version"] == 1
        assert event["timestamp"].endswith("Z")
        assert event["request_type"] == "cli"


def test_training_goes_out_on_the_events_logger(workspace, churn_training, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="loopwatch.events")
    workspace.train("churn", churn_training, target="churned")
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "loopwatch.events"]
    training = [e for e in events if e.get("event") == "training"]
    assert len(training) == 1 and training[0]["model_version"] == 1
    assert training[0]["metrics"]["roc_auc"] > 0.6


def test_nothing_is_formatted_when_the_events_logger_is_off(trained, churn_training, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="loopwatch.events")
    trained.predict("churn", churn_rows(churn_training, 3))
    assert not [r for r in caplog.records if r.name == "loopwatch.events"]


def test_events_are_durable_before_predict_returns(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.stores import EventQuery, open_store

    result = trained.predict("churn", churn_rows(churn_training, 7))
    # a second, independent connection to the same file sees the committed events at once
    other = open_store(trained.store.url, migrate=False)
    try:
        events = other.query_events(EventQuery(request_id=result.request_id))
        assert len(events.events) == 7
        assert [e.prediction for e in events.events] == result.predictions
        assert [e.probability for e in events.events] == result.probabilities
    finally:
        other.close()


def test_fingerprint_is_stored_once_and_names_the_software(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.stores import EventQuery

    first = trained.predict("churn", churn_rows(churn_training, 2))
    second = trained.predict("churn", churn_rows(churn_training, 2))
    ids = {
        e.fingerprint_id
        for e in trained.store.iter_events(EventQuery(model_name="churn"))
        if e.request_id in {first.request_id, second.request_id}
    }
    assert len(ids) == 1
    fingerprint = trained.store.get_fingerprint(ids.pop())
    meta = trained.registry.resolve("churn")
    assert fingerprint is not None
    assert fingerprint.artifact_sha256 == meta.artifact_sha256
    assert {"numpy", "pandas", "scikit-learn", "skops"} <= set(fingerprint.libraries)
    import sqlite3

    with sqlite3.connect(trained.store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0] == 1


def test_fingerprints_differ_by_client_version_and_artifact() -> None:
    a = software_fingerprint("abc", "1.0")
    assert a.id == software_fingerprint("abc", "1.0").id
    assert a.id != software_fingerprint("abc", "2.0").id
    assert a.id != software_fingerprint("abd", "1.0").id


def test_private_models_log_no_input(trained, churn_training) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.records import ModelSettings
    from loopwatch.stores import EventQuery

    trained.registry.update_settings("churn", ModelSettings(log_data=False))
    result = trained.predict("churn", churn_rows(churn_training, 3))
    events = trained.store.query_events(EventQuery(request_id=result.request_id)).events
    assert [e.data for e in events] == [None, None, None]
    assert all(e.input_data_summary["shape"] == [3, 8] for e in events)
