"""POST /v1/models/{name}/predict, in process: answers, request ids, one event per row,
client identity and fingerprints, replayed event times, versions, idempotent retries,
nullable features and the per-model log_data setting."""

from __future__ import annotations

import math
import platform
import re
from datetime import datetime, timedelta, timezone
from importlib import metadata

import pandas as pd

from loopwatch.stores.base import EventQuery
from tests.api.helpers import PREDICT, assert_error, wait_for_rejections


def events_of(trained, request_id: str):  # type: ignore[no-untyped-def]
    return trained.store.query_events(EventQuery(request_id=request_id, limit=1000)).events


def test_predict_answers_predictions_probabilities_classes_and_generates_a_request_id(client, rows) -> None:
    first = client.post(PREDICT, json={"rows": rows})
    second = client.post(PREDICT, json={"rows": rows[:1]})

    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"request_id", "model", "version", "predictions", "probabilities", "classes"}
    assert body["model"] == "churn" and body["version"] == 1
    assert body["classes"] == [0, 1]
    assert len(body["predictions"]) == len(body["probabilities"]) == len(rows)
    for prediction, probability in zip(body["predictions"], body["probabilities"]):
        assert len(probability) == 2 and math.isclose(sum(probability), 1.0, abs_tol=1e-9)
        # the label is the most probable class
        assert prediction == [body["classes"][probability.index(max(probability))]]
    # generated when absent: in the header and the body, and new for every request
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] == body["request_id"]
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert "X-Idempotent-Replay" not in first.headers


def test_a_sent_request_id_is_echoed_and_every_row_is_one_event(client, trained, rows) -> None:
    response = client.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": "order-7:batch.1_a"})

    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "order-7:batch.1_a"
    body = response.json()
    assert body["request_id"] == "order-7:batch.1_a"
    events = events_of(trained, "order-7:batch.1_a")
    assert [e.row_index for e in events] == list(range(len(rows)))
    assert {e.request_id for e in events} == {"order-7:batch.1_a"}
    assert trained.store.count_events() == len(rows)
    for event, row, prediction, probability in zip(events, rows, body["predictions"], body["probabilities"]):
        assert event.model_name == "churn" and event.model_version == 1
        assert event.prediction == prediction
        assert event.probability == probability
        assert event.data == row
        assert event.request_type == "api"
        assert event.replayed is False
    # the same events through the HTTP log API
    page = client.get("/v1/logs", params={"request_id": "order-7:batch.1_a"}).json()
    assert [(e["request_id"], e["row_index"]) for e in page["events"]] == [
        ("order-7:batch.1_a", i) for i in range(len(rows))
    ]


def test_an_invalid_request_id_is_refused(client, trained, rows) -> None:
    for bad in ("has space", "x" * 129, "semi;colon"):
        assert_error(client.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": bad}), 422)
    assert trained.store.count_events() == 0


def test_client_id_and_client_version_are_recorded_with_a_fingerprint(client, trained, rows) -> None:
    response = client.post(
        PREDICT,
        json={"rows": rows[:2]},
        headers={"X-Request-ID": "fp-1", "X-Client-ID": "billing-batch", "X-Client-Version": "features-2.3.1"},
    )
    assert response.status_code == 200, response.text

    events = events_of(trained, "fp-1")
    assert len(events) == 2
    assert {e.client_id for e in events} == {"billing-batch"}
    assert len({e.fingerprint_id for e in events}) == 1
    found = client.get(f"/v1/fingerprints/{events[0].fingerprint_id}")
    assert found.status_code == 200, found.text
    fingerprint = found.json()
    version = client.get("/v1/models/churn/versions/1").json()
    assert fingerprint["client_version"] == "features-2.3.1"
    assert fingerprint["artifact_sha256"] == version["artifact_sha256"]
    assert fingerprint["artifact_sha256"] == trained.store.get_model_version("churn", 1).artifact_sha256
    assert fingerprint["loopwatch"] == metadata.version("loopwatch")
    assert fingerprint["python"] == platform.python_version()
    assert fingerprint["libraries"]["scikit-learn"] == metadata.version("scikit-learn")
    # filtering the log by client works on what was recorded
    by_client = client.get("/v1/logs", params={"client_id": "billing-batch"}).json()["events"]
    assert len(by_client) == 2


def test_client_version_can_come_in_the_body_and_another_version_is_another_fingerprint(
    client, trained, rows
) -> None:
    a = client.post(PREDICT, json={"rows": rows[:1], "client_version": "v1"}, headers={"X-Request-ID": "cv-a"})
    b = client.post(PREDICT, json={"rows": rows[:1]}, headers={"X-Request-ID": "cv-b", "X-Client-Version": "v2"})
    assert a.status_code == b.status_code == 200
    (event_a,) = events_of(trained, "cv-a")
    (event_b,) = events_of(trained, "cv-b")
    assert event_a.fingerprint_id != event_b.fingerprint_id
    assert client.get(f"/v1/fingerprints/{event_a.fingerprint_id}").json()["client_version"] == "v1"
    assert client.get(f"/v1/fingerprints/{event_b.fingerprint_id}").json()["client_version"] == "v2"
    assert_error(client.get("/v1/fingerprints/not-a-fingerprint"), 404, "not_found")


def test_per_row_timestamps_make_replayed_events_at_those_times(client, trained, rows) -> None:
    stamps = ["2025-03-01T10:00:00Z", "2025-03-01T12:30:00+02:00", "2025-02-28T23:59:59.250-05:00"]
    response = client.post(
        PREDICT, json={"rows": rows[:3], "timestamps": stamps}, headers={"X-Request-ID": "replay-rows"}
    )
    assert response.status_code == 200, response.text

    events = events_of(trained, "replay-rows")
    expected = {
        0: datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc),
        1: datetime(2025, 3, 1, 10, 30, tzinfo=timezone.utc),
        2: datetime(2025, 3, 1, 4, 59, 59, 250000, tzinfo=timezone.utc),
    }
    assert {e.row_index: e.timestamp for e in events} == expected
    assert all(e.replayed for e in events)
    # a time window over event times finds exactly the replayed row inside it
    window = client.get(
        "/v1/logs", params={"since": "2025-03-01T10:00:00Z", "until": "2025-03-01T10:00:01Z"}
    ).json()["events"]
    assert [(e["request_id"], e["row_index"]) for e in window] == [("replay-rows", 0)]


def test_one_timestamp_applies_to_every_row_and_no_timestamp_means_now(client, trained, rows) -> None:
    before = datetime.now(timezone.utc)
    one = client.post(
        PREDICT, json={"rows": rows[:4], "timestamp": "2024-12-24T18:00:00+01:00"}, headers={"X-Request-ID": "one-ts"}
    )
    live = client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": "live"})
    after = datetime.now(timezone.utc)
    assert one.status_code == live.status_code == 200

    replayed = events_of(trained, "one-ts")
    assert len(replayed) == 4
    assert {e.timestamp for e in replayed} == {datetime(2024, 12, 24, 17, tzinfo=timezone.utc)}
    assert all(e.replayed for e in replayed)
    now_events = events_of(trained, "live")
    assert all(not e.replayed for e in now_events)
    assert all(before - timedelta(seconds=1) <= e.timestamp <= after for e in now_events)


def test_naive_or_mismatched_timestamps_are_422_and_log_nothing(client, trained, rows) -> None:
    cases = [
        {"rows": rows[:1], "timestamp": "2025-03-01T10:00:00"},
        {"rows": rows[:2], "timestamps": ["2025-03-01T10:00:00Z", "2025-03-01T10:00:00"]},
        {"rows": rows[:2], "timestamps": ["2025-03-01T10:00:00Z"]},
        # past datetime.max once converted to UTC (a 500 before the fix in prediction._utc)
        {"rows": rows[:1], "timestamp": "9999-12-31T23:59:59-05:00"},
        {"rows": rows[:1], "timestamps": ["0001-01-01T00:00:00+05:00"]},
    ]
    for body in cases:
        error = assert_error(client.post(PREDICT, json=body), 422, "invalid_input")
        assert "timestamp" in error["message"]
    assert trained.store.count_events() == 0
    found = wait_for_rejections(client, len(cases), model="churn")
    assert [(r["status"], r["reason"]) for r in found] == [(422, "invalid_input")] * len(cases)


def test_version_by_number_and_by_alias(client, trained, rows, churn_training: pd.DataFrame) -> None:
    trained.train("churn", churn_training.head(300), target="churned")  # v2 becomes the candidate
    assert trained.store.get_aliases("churn") == {"production": 1, "candidate": 2}

    cases = {"by-default": None, "by-2": 2, "by-1": 1, "by-candidate": "candidate", "by-production": "production"}
    expected = {"by-default": 1, "by-2": 2, "by-1": 1, "by-candidate": 2, "by-production": 1}
    for request_id, version in cases.items():
        body = {"rows": rows[:2]} | ({} if version is None else {"version": version})
        response = client.post(PREDICT, json=body, headers={"X-Request-ID": request_id})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == expected[request_id]
        assert {e.model_version for e in events_of(trained, request_id)} == {expected[request_id]}

    assert_error(client.post(PREDICT, json={"rows": rows[:1], "version": 3}), 404, "not_found")
    assert_error(client.post(PREDICT, json={"rows": rows[:1], "version": "staging"}), 422)
    # the candidate also scores the traffic in shadow mode: those events are not answers
    served = [e for e in trained.store.iter_events(EventQuery(model_name="churn")) if e.request_type != "shadow"]
    assert len(served) == 2 * len(cases)


def test_an_identical_retry_returns_the_stored_response_and_logs_nothing_new(client, trained, rows) -> None:
    headers = {"X-Request-ID": "retry-1", "X-Client-ID": "app"}
    first = client.post(PREDICT, json={"rows": rows}, headers=headers)
    assert first.status_code == 200
    assert trained.store.count_events() == len(rows)

    for _ in range(2):
        again = client.post(PREDICT, json={"rows": rows}, headers=headers)
        assert again.status_code == 200
        assert again.headers["X-Idempotent-Replay"] == "true"
        assert again.headers["X-Request-ID"] == "retry-1"
        assert again.content == first.content  # byte for byte
    assert trained.store.count_events() == len(rows)
    assert [e.row_index for e in events_of(trained, "retry-1")] == list(range(len(rows)))


def test_the_same_id_with_another_body_is_409_and_nothing_is_logged(client, trained, rows) -> None:
    first = client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": "reused"})
    assert first.status_code == 200
    others = [
        {"rows": rows[:3]},
        {"rows": [rows[1], rows[0]]},
        {"rows": rows[:2], "request_type": "batch"},
        {"rows": rows[:2], "timestamp": "2025-01-01T00:00:00Z"},
        {"rows": rows[:2], "version": 1},
    ]
    for body in others:
        error = assert_error(client.post(PREDICT, json=body, headers={"X-Request-ID": "reused"}), 409, "conflict")
        assert error["detail"] == {"request_id": "reused"}
    assert trained.store.count_events() == 2
    assert [e.data for e in events_of(trained, "reused")] == rows[:2]
    # and the original is still replayed on an identical retry
    again = client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": "reused"})
    assert again.status_code == 200 and again.content == first.content


def test_a_nullable_feature_sent_as_null_is_accepted_and_counted_missing(client, trained, rows) -> None:
    schema = {f["name"]: f for f in client.get("/v1/models/churn/versions/1").json()["schema"]["features"]}
    assert schema["age"]["nullable"] is True  # the churn data has missing ages
    sent = [dict(rows[0], age=None), dict(rows[1]), dict(rows[2], age=None)]
    assert rows[1]["age"] is not None

    response = client.post(PREDICT, json={"rows": sent}, headers={"X-Request-ID": "nulls"})
    assert response.status_code == 200, response.text
    events = events_of(trained, "nulls")
    summaries = [e.input_data_summary for e in events]
    assert [s["missing"] for s in summaries] == [["age"], [], ["age"]]
    assert [s["n_missing"] for s in summaries] == [1, 0, 1]
    assert {tuple(s["shape"]) for s in summaries} == {(3, len(schema))}
    assert [e.data["age"] for e in events] == [None, rows[1]["age"], None]


def test_log_data_false_keeps_inputs_out_of_the_log(client, trained, rows) -> None:
    assert client.get("/v1/models/churn/settings").json() == {"log_data": True, "retention_days": None, "nullable": []}
    put = client.put("/v1/models/churn/settings", json={"log_data": False})
    assert put.status_code == 200, put.text
    assert put.json() == {"log_data": False, "retention_days": None, "nullable": []}

    hidden = client.post(PREDICT, json={"rows": rows[:3]}, headers={"X-Request-ID": "private"})
    assert hidden.status_code == 200
    events = events_of(trained, "private")
    assert len(events) == 3
    assert all(e.data is None for e in events)
    assert all(e.prediction is not None and e.input_data_summary["n_missing"] == 0 for e in events)

    assert client.put("/v1/models/churn/settings", json={"log_data": True}).status_code == 200
    shown = client.post(PREDICT, json={"rows": rows[:1]}, headers={"X-Request-ID": "public"})
    assert shown.status_code == 200
    assert [e.data for e in events_of(trained, "public")] == rows[:1]
