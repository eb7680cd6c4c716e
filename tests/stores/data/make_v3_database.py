"""Make ``v3.db``: a SQLite database written by loopwatch at schema version 3.

It was made with the code of commit 2d8d4f0 (migrations 1-3), before migration 4
existed, so that tests/stores/test_migration_4.py upgrades a file the old code
really wrote::

    git archive 2d8d4f0 src | tar -x -C /tmp/v3
    PYTHONPATH=/tmp/v3/src python tests/stores/data/make_v3_database.py tests/stores/data/v3.db

It uses only the Store API of that version, with fixed contents.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timedelta, timezone

from loopwatch.records import Fingerprint, LoggedRequest, ModelSettings, Rejection, TrainingEvent
from loopwatch.records.jsonutil import dumps
from loopwatch.stores import open_store

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=timezone.utc)
FP = Fingerprint(loopwatch="0.1.0", python="3.11.2", libraries={"numpy": "2.0.0"}, artifact_sha256="a" * 64)


def version(store, name: str, n: int) -> int:  # type: ignore[no-untyped-def]
    artifact = f"model {name} {n}".encode() + bytes(range(256))
    reference = f"reference {name} {n}".encode()
    profile = f"profile {name} {n}".encode()
    return store.create_model_version(
        name=name, created_at=T0 + timedelta(days=n), task="classification", estimator="logistic_regression",
        artifact=artifact, artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        reference=reference, reference_sha256=hashlib.sha256(reference).hexdigest(),
        schema={"features": [{"name": "x", "kind": "numeric", "nullable": False}], "target": "y",
                "task": "classification", "classes": ["no", "yes"]},
        metrics={"accuracy": 0.9}, data_summary={"rows": 100}, params={"C": 1.0},
        profile=profile, profile_sha256=hashlib.sha256(profile).hexdigest(),
    )


def request(request_id: str, model: str, n: int, at: datetime, replay: bool = False) -> LoggedRequest:
    predictions = [["yes" if i % 2 else "no"] for i in range(n)]
    return LoggedRequest(
        request_id=request_id, model_name=model, model_version=1, request_type="api", client_id="web",
        fingerprint=FP, body_sha256=hashlib.sha256(request_id.encode()).hexdigest(),
        response=dumps({"request_id": request_id, "predictions": predictions}), runtime_ms=4.0,
        received_at=at, replayed=replay, predictions=predictions,
        probabilities=[[0.7, 0.3] if i % 2 == 0 else [0.2, 0.8] for i in range(n)],
        request_summary={"rows": n}, row_summaries=[{"missing": []} for _ in range(n)],
        data=[{"x": float(i), "note": "é \\ \" \n"} for i in range(n)],
        timestamps=[at - timedelta(days=3, hours=i) for i in range(n)] if replay else None,
    )


def main(path: str) -> None:
    store = open_store(path)
    assert store.applied_migrations() == [1, 2, 3], store.applied_migrations()
    for n in (1, 2):
        version(store, "churn", n)
    version(store, "iris", 1)
    store.set_alias("churn", "production", 1, reason="registered", at=T0)
    store.set_alias("churn", "candidate", 2, reason="registered", at=T0 + timedelta(hours=1))
    store.set_alias("iris", "production", 1, reason="registered", at=T0)
    store.set_model_settings("iris", ModelSettings(log_data=False, retention_days=30))
    store.write_requests([
        request("req-a", "churn", 3, T0),
        request("req-b", "churn", 2, T0 + timedelta(hours=2)),
        request("req-c", "churn", 4, T0 + timedelta(days=1), replay=True),
        request("req-d", "iris", 1, T0 + timedelta(days=2)),
    ])
    store.write_rejections([
        Rejection(model_name="churn", timestamp=T0, client_id="web", reason="schema_violation",
                  status=422, message="x must be a number"),
    ])
    store.write_training_event(TrainingEvent(
        event_id="train-1", model_name="churn", model_version=1, timestamp=T0, duration_ms=120.0,
        data_summary={"rows": 100}, metrics={"accuracy": 0.9}, params={"C": 1.0}, client_id="cli",
    ))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
