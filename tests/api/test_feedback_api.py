"""Feedback over HTTP: entity ids on predictions, labels, business metrics, label coverage.

The real app on a real SQLite file (the API template), and on PostgreSQL for the
texts PostgreSQL cannot hold; hostile bodies are a 4xx in the one error shape.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.stores.base import EventQuery
from tests.api.helpers import PREDICT, assert_error

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc
JSON = {"content-type": "application/json"}
DAY = datetime(2025, 3, 3, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def predict(client: TestClient, rows: list[dict], request_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(PREDICT, json={"rows": rows, **body}, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    return response.json()


def feedback(client: TestClient, labels: list[dict], model: str = "churn", **headers: str) -> Any:
    return client.post("/v1/feedback", json={"model": model, "labels": labels}, headers=headers)


# --- entity ids on predictions ----------------------------------------------------------------


def test_predictions_carry_entity_ids_into_the_log(client, trained, rows) -> None:
    predict(client, rows[:3], "with-entities", entity_ids=["cust-1", None, "cust-3"])
    events = trained.store.query_events(EventQuery(request_id="with-entities")).events
    assert [e.entity_id for e in events] == ["cust-1", None, "cust-3"]
    page = client.get("/v1/logs", params={"request_id": "with-entities"}).json()
    assert [e["entity_id"] for e in page["events"]] == ["cust-1", None, "cust-3"]
    lines = client.get("/v1/logs/export", params={"request_id": "with-entities"}).text.splitlines()
    assert [json.loads(line)["entity_id"] for line in lines] == ["cust-1", None, "cust-3"]
    # without entity ids a retry still hashes as before: same id and body, the stored answer
    first = predict(client, rows[:1], "plain")
    again = client.post(PREDICT, json={"rows": rows[:1]}, headers={"X-Request-ID": "plain"})
    assert again.json() == first and again.headers["X-Idempotent-Replay"] == "true"
    # with entity ids, another list is another body
    assert client.post(PREDICT, json={"rows": rows[:3], "entity_ids": ["x", None, "cust-3"]},
                       headers={"X-Request-ID": "with-entities"}).status_code == 409


@pytest.mark.parametrize(
    "entity_ids",
    [["a"], ["a", "b", "c", "d"], ["a", "", None], ["a", "x" * 201, None], ["a", 5, None], "abc",
     ["a", "b\u0000", None], [["a"], None, None], {"a": 1}],
)
def test_bad_entity_ids_are_422_and_log_nothing(client, trained, rows, entity_ids: Any) -> None:
    response = client.post(PREDICT, json={"rows": rows[:3], "entity_ids": entity_ids})
    assert_error(response, 422)
    assert trained.store.count_events() == 0


# --- labels -------------------------------------------------------------------------------------


def test_labels_are_stored_deduplicated_corrected_and_reported(client, trained, rows) -> None:
    predict(client, rows[:3], "req-1", timestamp=iso(DAY), entity_ids=["c1", "c2", None])
    at = iso(DAY + timedelta(days=2))
    response = feedback(
        client,
        [{"request_id": "req-1", "row_index": 0, "label": 1, "label_time": at},
         {"entity_id": "c2", "label": 0, "label_time": at},
         {"request_id": "req-1", "row_index": 9, "label": 1, "label_time": at},
         {"entity_id": "nobody", "label": 1, "label_time": at}],
        **{"X-Client-ID": "crm-export"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("stored", "duplicates", "corrected", "unmatched")} == {
        "stored": 2, "duplicates": 0, "corrected": 0, "unmatched": 2
    }
    assert [(o["index"], o["status"]) for o in body["outcomes"]] == [(2, "unmatched"), (3, "unmatched")]
    assert "row 9" in body["outcomes"][0]["reason"] and "nobody" in body["outcomes"][1]["reason"]
    labels = list(trained.store.iter_labels("churn"))
    assert [(s.row_index, s.label, s.client_id, s.entity_id) for s in labels] == [
        (0, 1, "crm-export", "c1"), (1, 0, "crm-export", "c2")
    ]
    assert labels[0].prediction_time == DAY and labels[0].label_time == DAY + timedelta(days=2)

    again = feedback(client, [{"request_id": "req-1", "row_index": 0, "label": 1, "label_time": at},
                              {"request_id": "req-1", "row_index": 1, "label": 1, "label_time": at}]).json()
    assert (again["stored"], again["duplicates"], again["corrected"], again["unmatched"]) == (0, 1, 1, 0)
    assert [(o["index"], o["status"], o["request_id"], o["row_index"]) for o in again["outcomes"]] == [
        (0, "duplicate", "req-1", 0), (1, "corrected", "req-1", 1)
    ]
    assert [h.label for h in trained.store.label_history("churn", "req-1", 1)] == [0, 1]


def test_labels_for_an_unknown_model_are_404(client, trained) -> None:
    at = iso(DAY)
    assert_error(feedback(client, [{"entity_id": "c", "label": 1, "label_time": at}], model="ghost"), 404, "not_found")


def test_a_batch_over_max_rows_per_request_is_413(trained) -> None:
    labels = [{"entity_id": f"c{i}", "label": 1, "label_time": iso(DAY)} for i in range(4)]
    observations = [{"name": "revenue", "timestamp": iso(DAY + timedelta(days=i)), "value": 1} for i in range(4)]
    with TestClient(create_app(Settings.from_env(max_rows_per_request=3)), raise_server_exceptions=False) as client:
        assert_error(feedback(client, labels), 413, "payload_too_large")
        assert feedback(client, labels[:3]).status_code == 200
        assert_error(client.post("/v1/business-metrics", json={"observations": observations}), 413)
        assert client.post("/v1/business-metrics", json={"observations": observations[:3]}).json() == {"written": 3}
    assert trained.store.query_rejections() == []  # feedback is not a refused prediction


GOOD_LABEL = {"request_id": "r", "row_index": 0, "label": 1, "label_time": "2025-03-03T00:00:00Z"}
HOSTILE_FEEDBACK = [
    "{", "[]", "null", '"text"', "{}", '{"model": "churn"}', '{"model": "churn", "labels": []}',
    '{"model": "churn", "labels": {}}', '{"model": "", "labels": [GOOD]}', '{"model": 5, "labels": [GOOD]}',
    '{"model": "churn", "labels": [GOOD], "extra": 1}', '{"model": "churn", "labels": [null]}',
    '{"model": "churn", "labels": [1]}', '{"model": "ch\\u0000urn", "labels": [GOOD]}',
]
HOSTILE_LABELS = [
    {"label": 1, "label_time": "2025-03-03T00:00:00Z"},  # names no prediction
    {**GOOD_LABEL, "entity_id": "c"},  # names it twice
    {"request_id": "r", "label": 1, "label_time": "2025-03-03T00:00:00Z"},
    {"row_index": 0, "label": 1, "label_time": "2025-03-03T00:00:00Z"},
    {**GOOD_LABEL, "row_index": -1}, {**GOOD_LABEL, "row_index": "0"}, {**GOOD_LABEL, "row_index": True},
    {**GOOD_LABEL, "row_index": 2**31}, {**GOOD_LABEL, "row_index": 1.5},
    {**GOOD_LABEL, "label": None}, {**GOOD_LABEL, "label": [1]}, {**GOOD_LABEL, "label": {"a": 1}},
    {**GOOD_LABEL, "label": "x" * 1001},
    {**GOOD_LABEL, "label_time": "2025-03-03T00:00:00"}, {**GOOD_LABEL, "label_time": "2025-03-03"},
    {**GOOD_LABEL, "label_time": 1741000000}, {**GOOD_LABEL, "label_time": "yesterday"},
    {**GOOD_LABEL, "label_time": "9999-12-31T23:00:00-05:00"}, {**GOOD_LABEL, "label_time": None},
    {**GOOD_LABEL, "request_id": ""}, {**GOOD_LABEL, "request_id": "x" * 129},
    {**GOOD_LABEL, "request_id": "a\u0000b"}, {**GOOD_LABEL, "request_id": 7},
    {"entity_id": "", "label": 1, "label_time": "2025-03-03T00:00:00Z"},
    {"entity_id": "x" * 201, "label": 1, "label_time": "2025-03-03T00:00:00Z"},
    {"entity_id": "e\u0000", "label": 1, "label_time": "2025-03-03T00:00:00Z"},
    {**GOOD_LABEL, "surprise": 1},
]
RAW_LABELS = ['{"label": NaN', '{"label": Infinity', '{"label": -Infinity', '{"label": 1e999',
              '{"label": "\\ud800"']


def _raw_feedback(label_text: str) -> str:
    rest = ', "request_id": "r", "row_index": 0, "label_time": "2025-03-03T00:00:00Z"}'
    return '{"model": "churn", "labels": [' + label_text + rest + "]}"


def _hostile_bodies() -> list[str]:
    good = json.dumps(GOOD_LABEL)
    return ([b.replace("GOOD", good) for b in HOSTILE_FEEDBACK]
            + [json.dumps({"model": "churn", "labels": [label]}) for label in HOSTILE_LABELS]
            + [_raw_feedback(text) for text in RAW_LABELS])


def test_hostile_feedback_bodies_are_4xx_never_500_and_store_nothing(client, trained, rows) -> None:
    predict(client, rows[:1], "r")
    for body in _hostile_bodies():
        response = client.post("/v1/feedback", content=body, headers=JSON)
        assert 400 <= response.status_code < 500, (body[:200], response.status_code, response.text[:300])
        assert_error(response, response.status_code)
    assert list(trained.store.iter_labels("churn")) == []
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/v1/feedback", content=json.dumps({"model": "churn", "labels": [GOOD_LABEL]}),
                               headers={"content-type": content_type})
        assert_error(response, 415, "unsupported_media_type")
    # the good label itself is fine
    assert feedback(client, [GOOD_LABEL]).json()["stored"] == 1


# --- business metrics ---------------------------------------------------------------------------


def test_business_metrics_are_written_once_and_replaced_by_a_new_value(client, trained) -> None:
    observations = [
        {"name": "revenue", "timestamp": iso(DAY), "value": 1200.5},
        {"name": "revenue", "timestamp": iso(DAY), "value": 300, "segment": "eu"},
        {"name": "churn_rate", "timestamp": "2025-03-04T01:00:00+01:00", "value": 0.03},
    ]
    post = lambda obs: client.post("/v1/business-metrics", json={"observations": obs},  # noqa: E731
                                   headers={"X-Client-ID": "finance"})
    assert post(observations).json() == {"written": 3}
    assert post(observations).json() == {"written": 0}
    assert post([{**observations[0], "value": 1300}]).json() == {"written": 1}
    found = trained.store.query_business_metrics()
    assert [(o.name, o.segment, o.value, o.client_id) for o in found] == [
        ("revenue", None, 1300.0, "finance"), ("revenue", "eu", 300.0, "finance"),
        ("churn_rate", None, 0.03, "finance"),
    ]
    assert found[2].timestamp == DAY + timedelta(days=1)


GOOD_OBSERVATION = {"name": "revenue", "timestamp": "2025-03-03T00:00:00Z", "value": 1.5}
HOSTILE_OBSERVATIONS = [
    {**GOOD_OBSERVATION, "value": "1.5"}, {**GOOD_OBSERVATION, "value": True}, {**GOOD_OBSERVATION, "value": None},
    {**GOOD_OBSERVATION, "value": [1]}, {**GOOD_OBSERVATION, "name": ""}, {**GOOD_OBSERVATION, "name": "x" * 201},
    {**GOOD_OBSERVATION, "name": "a\u0000"}, {**GOOD_OBSERVATION, "segment": ""},
    {**GOOD_OBSERVATION, "segment": "s\u0000"}, {**GOOD_OBSERVATION, "timestamp": "2025-03-03T00:00:00"},
    {**GOOD_OBSERVATION, "timestamp": 0}, {**GOOD_OBSERVATION, "timestamp": "9999-12-31T23:00:00-05:00"},
    {**GOOD_OBSERVATION, "extra": 1}, {"timestamp": "2025-03-03T00:00:00Z", "value": 1},
    {**GOOD_OBSERVATION, "value": 10**400},
]


def test_hostile_business_metric_bodies_are_422(client, trained) -> None:
    bodies = [json.dumps({"observations": [o]}) for o in HOSTILE_OBSERVATIONS]
    bodies += ["{}", '{"observations": []}', '{"observations": [{"name": "r", "timestamp": '
               '"2025-03-03T00:00:00Z", "value": NaN}]}', '{"observations": null}']
    for body in bodies:
        response = client.post("/v1/business-metrics", content=body, headers=JSON)
        assert_error(response, 422)
    assert trained.store.query_business_metrics() == []


# --- label coverage -----------------------------------------------------------------------------


def test_label_coverage_per_day_with_delay_percentiles(client, trained, rows) -> None:
    rng = np.random.default_rng(3)
    expected: dict[str, dict[str, Any]] = {}
    for day in range(3):
        start = DAY + timedelta(days=day)
        n = 4 + day
        stamps = [start + timedelta(hours=2 * i) for i in range(n)]
        predict(client, (rows * 2)[:n], f"day{day}", timestamps=[iso(s) for s in stamps])
        labelled = [i for i in range(n) if i % 2 == 0 or day == 2]
        delays = rng.uniform(1, 96, size=len(labelled))
        labels = [{"request_id": f"day{day}", "row_index": i, "label": 1,
                   "label_time": (stamps[i] + timedelta(hours=float(d))).isoformat()}
                  for i, d in zip(labelled, delays)]
        assert feedback(client, labels).json()["stored"] == len(labelled)
        hours = pd.Series([(datetime.fromisoformat(x["label_time"]) - stamps[x["row_index"]]).total_seconds() / 3600
                           for x in labels])
        expected[iso(start)] = {"predictions": n, "labelled": len(labelled), "coverage": len(labelled) / n,
                                "p50": hours.quantile(0.5), "p90": hours.quantile(0.9), "max": hours.max()}
    response = client.get("/v1/models/churn/labels/coverage", params={"window": "1d"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == 15 and body["labelled"] == sum(e["labelled"] for e in expected.values())
    assert [w["start"] for w in body["windows"]] == list(expected)
    for window in body["windows"]:
        want = expected[window["start"]]
        assert (window["predictions"], window["labelled"]) == (want["predictions"], want["labelled"])
        assert window["coverage"] == pytest.approx(want["coverage"])
        for key in ("p50", "p90", "max"):
            assert window["delay_hours"][key] == pytest.approx(want[key], rel=1e-9), key
    bounded = client.get("/v1/models/churn/labels/coverage",
                         params={"since": iso(DAY + timedelta(days=1)), "until": iso(DAY + timedelta(days=2))}).json()
    assert [w["start"] for w in bounded["windows"]] == [iso(DAY + timedelta(days=1))]
    weekly = client.get("/v1/models/churn/labels/coverage", params={"window": "1w"}).json()
    assert [(w["predictions"], w["labelled"]) for w in weekly["windows"]] == [(15, body["labelled"])]


def test_label_coverage_refuses_what_it_cannot_answer(client, trained) -> None:
    assert_error(client.get("/v1/models/ghost/labels/coverage"), 404, "not_found")
    for params in ({"window": "count:10"}, {"window": "fortnight"}, {"window": "0d"},
                   {"since": "2025-03-03T00:00:00"}, {"until": "not a time"}, {"window": "x" * 21}):
        assert_error(client.get("/v1/models/churn/labels/coverage", params=params), 422)
    empty = client.get("/v1/models/churn/labels/coverage").json()
    assert (empty["predictions"], empty["labelled"], empty["coverage"], empty["windows"]) == (0, 0, None, [])


# --- texts PostgreSQL cannot hold ---------------------------------------------------------------


@pytest.fixture
def postgres_client(postgres_dsn: str, churn_training: pd.DataFrame) -> Iterator[TestClient]:
    from loopwatch.application.workspace import Workspace

    settings = Settings.from_env(database=postgres_dsn)
    with Workspace(settings) as ws:
        ws.train("churn", churn_training.head(300), target="churned")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.postgres
def test_nul_characters_are_422_on_postgresql_too(postgres_client: TestClient, rows) -> None:
    at = "2025-03-03T00:00:00Z"
    assert_error(postgres_client.post(PREDICT, json={"rows": rows[:1], "entity_ids": ["a\u0000"]}), 422)
    predict(postgres_client, rows[:1], "r", entity_ids=["cust"])
    for label in ({"entity_id": "c\u0000", "label": 1, "label_time": at},
                  {"request_id": "r\u0000", "row_index": 0, "label": 1, "label_time": at}):
        assert_error(feedback(postgres_client, [label]), 422)
    for observation in ({"name": "a\u0000", "timestamp": at, "value": 1},
                        {"name": "a", "segment": "\u0000", "timestamp": at, "value": 1}):
        assert_error(postgres_client.post("/v1/business-metrics", json={"observations": [observation]}), 422)
    # a NUL inside a text label is data, stored as JSON text, and comes back
    body = feedback(postgres_client, [{"entity_id": "cust", "label": "a\u0000b", "label_time": at}]).json()
    assert body["stored"] == 1
    coverage = postgres_client.get("/v1/models/churn/labels/coverage").json()
    assert (coverage["predictions"], coverage["labelled"]) == (1, 1)
