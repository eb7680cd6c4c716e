"""POST /v1/models/{name}/events, in process against a real SQLite store: stored events,
refusals with every problem listed, idempotency, external versions, limits."""

from __future__ import annotations

import math
import threading

from loopwatch.errors import Overloaded
from loopwatch.stores.base import EventQuery
from tests.api.helpers import assert_error

EVENTS = "/v1/models/churn/events"


def make_events(rows: list[dict], *, request_id: str = "r-1", **extra) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        {"request_id": request_id, "row_index": i, "timestamp": "2026-03-01T12:00:00Z", "features": row,
         "prediction": i % 2, "probabilities": {"0": 0.25, "1": 0.75} if i % 2 else [0.9, 0.1], **extra}
        for i, row in enumerate(rows)
    ]


def stored(trained, **filters):  # type: ignore[no-untyped-def]
    return trained.store.query_events(EventQuery(model_name="churn", limit=10_000, **filters)).events


def test_events_are_stored_as_ingested_with_their_fields(client, trained, rows) -> None:
    events = make_events(rows[:5], entity_id="cust-9", latency_ms=12.5, client_version="pipe-1.4")
    response = client.post(EVENTS, json={"events": events})

    assert response.status_code == 200, response.text
    assert response.json() == {"model": "churn", "accepted": 5, "duplicates": 0, "versions": {}}
    found = sorted(stored(trained), key=lambda e: e.row_index)
    assert [e.row_index for e in found] == list(range(5))
    for event, sent, row in zip(found, events, rows):
        assert event.request_type == "ingested"
        assert event.request_id == "r-1" and event.model_version == 1
        assert event.prediction == [sent["prediction"]]
        assert event.entity_id == "cust-9"
        assert event.runtime_ms == 12.5
        assert event.timestamp.isoformat() == "2026-03-01T12:00:00+00:00"
        assert event.data == row
        assert math.isclose(sum(event.probability), 1.0)
    assert found[1].probability == [0.25, 0.75] and found[0].probability == [0.9, 0.1]


def test_without_ids_the_server_makes_one_per_batch_and_latency_is_not_measured(client, trained, rows) -> None:
    events = [{"features": row, "prediction": 1} for row in rows[:3]]
    assert client.post(EVENTS, json={"events": events}).status_code == 200
    found = stored(trained)
    assert len({e.request_id for e in found}) == 1
    assert sorted(e.row_index for e in found) == [0, 1, 2]
    assert all(math.isnan(e.runtime_ms) for e in found)  # not a fast request: not measured


def test_a_retry_is_counted_as_duplicates_and_other_content_is_a_409(client, trained, rows) -> None:
    events = make_events(rows[:3])
    assert client.post(EVENTS, json={"events": events}).json()["accepted"] == 3
    again = client.post(EVENTS, json={"events": events + make_events(rows[3:5], request_id="r-2")})
    assert again.status_code == 200
    assert again.json()["accepted"] == 2 and again.json()["duplicates"] == 3

    changed = [dict(events[0], prediction=1 - events[0]["prediction"])] + make_events(rows[:1], request_id="r-3")
    error = assert_error(client.post(EVENTS, json={"events": changed}), 409, "conflict")
    assert error["detail"]["conflicts"] == [{"request_id": "r-1", "row_index": 0}]
    assert len(stored(trained)) == 5  # the batch was refused whole: r-3 was not stored


def test_a_bad_batch_is_refused_whole_with_every_problem(client, trained, rows) -> None:
    events = make_events(rows[:4])
    events[0]["features"] = {**rows[0], "tenure": "long"}
    events[1]["prediction"] = 7
    events[2]["probabilities"] = {"0": 0.5, "1": 0.9}
    events[3]["timestamp"] = "2026-03-01T12:00:00"
    events[3]["latency_ms"] = -1
    error = assert_error(client.post(EVENTS, json={"events": events}), 422)
    problems = {(p["event"], p["field"]) for p in error["detail"]["problems"]}
    assert (1, "prediction") in problems and (2, "probabilities") in problems
    assert (3, "timestamp") in problems and (3, "latency_ms") in problems
    assert any(p[0] == 0 and p[1].startswith("features.") for p in problems)
    assert stored(trained) == []


def test_unknown_fields_and_predict_posing_as_ingested_are_refused(client, trained, rows) -> None:
    events = make_events(rows[:1])
    events[0]["secret"] = 1
    error = assert_error(client.post(EVENTS, json={"events": events}), 422)
    assert error["detail"]["problems"] == [{"event": 0, "field": "secret", "problem": "unknown field"}]
    response = client.post("/v1/models/churn/predict", json={"rows": rows[:1], "request_type": "ingested"})
    assert_error(response, 422)
    assert stored(trained) == []


def test_an_unknown_model_is_404_and_too_many_events_413(client, settings, rows) -> None:
    assert_error(client.post("/v1/models/nope/events", json={"events": make_events(rows[:1])}), 404)
    many = [{"features": rows[0], "prediction": 1}] * (settings.max_rows_per_request + 1)
    assert_error(client.post(EVENTS, json={"events": many}), 413)


def test_external_labels_become_versions_once(client, trained, rows) -> None:
    first = client.post(EVENTS, json={"events": make_events(rows[:2], model_version="fraud-2026-02")})
    assert first.json()["versions"] == {"fraud-2026-02": 2}
    second = client.post(EVENTS, json={"events": make_events(rows[2:4], request_id="r-2",
                                                              model_version="fraud-2026-02")
                                       + make_events(rows[4:5], request_id="r-3", model_version="fraud-2026-03")})
    assert second.json()["versions"] == {"fraud-2026-02": 2, "fraud-2026-03": 3}
    assert {e.model_version for e in stored(trained)} == {2, 3}
    version = trained.registry.resolve("churn", 2)
    assert version.params["external_version"] == "fraud-2026-02"
    assert version.schema == trained.registry.resolve("churn", 1).schema
    assert version.profile_sha256 == trained.registry.resolve("churn", 1).profile_sha256
    shown = client.get("/v1/models/churn/versions/2")
    assert shown.status_code == 200 and shown.json()["params"]["external_version"] == "fraud-2026-02"


def test_concurrent_first_sightings_make_one_version(trained) -> None:
    from datetime import datetime, timezone

    results: list[int] = []
    barrier = threading.Barrier(8)

    def sight() -> None:
        barrier.wait()
        results.append(trained.store.resolve_external_version(
            "churn", "v-race", base_version=1, created_at=datetime.now(timezone.utc)))

    threads = [threading.Thread(target=sight) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {2}
    assert [v.version for v in trained.store.list_versions("churn")] == [1, 2]


def test_a_full_writer_queue_is_a_503_with_retry_after(client, rows, monkeypatch) -> None:
    state = client.app.state.loopwatch

    def full(batch):  # type: ignore[no-untyped-def]
        raise Overloaded("the prediction log is busy; retry shortly", retry_after=3)

    monkeypatch.setattr(state.writer, "submit_ingest", full)
    response = client.post(EVENTS, json={"events": make_events(rows[:1])})
    assert_error(response, 503)
    assert response.headers["Retry-After"] == "3"


def test_with_auth_on_ingest_needs_its_scope_and_the_key_is_the_client(settings, trained, rows) -> None:
    from tests.api.auth_helpers import issue, secure_client

    ingest_key = issue(trained.store, "ingest", name="external service")
    predict_key = issue(trained.store, "predict", name="served here")
    body = {"events": make_events(rows[:2])}
    with secure_client(settings) as secure:
        assert_error(secure.post(EVENTS, json=body), 401)
        error = assert_error(secure.post(EVENTS, json=body, headers=predict_key.headers), 403)
        assert error["detail"]["needed"] == "ingest"
        # an ingest key cannot ask loopwatch's models either
        assert_error(secure.post("/v1/models/churn/predict", json={"rows": rows[:1]},
                                 headers=ingest_key.headers), 403)
        response = secure.post(EVENTS, json=body, headers={**ingest_key.headers, "X-Client-ID": predict_key.key_id})
        assert response.status_code == 200, response.text
    assert {e.client_id for e in stored(trained)} == {ingest_key.key_id}
    assert {e.request_type for e in stored(trained)} == {"ingested"}
