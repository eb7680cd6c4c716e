"""A corpus of hostile bodies, sent to every endpoint that takes one: predict, ingest,
feedback, business metrics, the monitoring configuration and train.

Each endpoint has a template: an ordinary request with three slots, a number field
(``NUM``), an integer field (``INT``) and a text field (``STR``). Filled with ordinary
values the template is accepted (a control test below); each case of the corpus puts one
hostile value in one slot, or replaces the whole body or its headers. Every answer must be
a 413, 415 or 422 in the one error shape, short (nothing hostile echoed back), and nothing
already stored may change: events, labels, business metrics, monitoring configurations and
model versions are compared before and after each request.

Known gaps are marked ``xfail(strict=True)`` with the file where the fix belongs: when the
fix lands, the case passes, the strict marker turns that into a failure, and the marker goes.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, copy_database
from tests.conftest import churn_rows

NUM, INT, STR = '"__NUM__"', '"__INT__"', '"__STR__"'
JSON = "application/json"
LABEL_TIME = "2026-01-05T00:00:00Z"
MEGABYTE_STRING = json.dumps("x" * 1_000_001)
MILLION = "[" + ",".join(["0"] * 1_000_000) + "]"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    #: The top-level list a client fills (sent with a million elements by one case).
    list_key: str
    #: Builds the template (raw JSON text with the slots) from the test data.
    template: Callable[[list[dict[str, Any]], list[dict[str, Any]]], str]
    #: Ordinary values for the slots (the control); a slot the endpoint lacks is None.
    ordinary: dict[str, str | None]


def _predict(rows: list[dict[str, Any]], _: list[dict[str, Any]]) -> str:
    return json.dumps({"rows": [{**rows[0], "watch_hours": "__NUM__"}], "entity_ids": ["__STR__"],
                       "version": "__INT__"})


def _ingest(rows: list[dict[str, Any]], _: list[dict[str, Any]]) -> str:
    return json.dumps({"events": [{"request_id": "__STR__", "row_index": "__INT__", "prediction": 1,
                                   "features": {**rows[0], "watch_hours": "__NUM__"}, "probabilities": [0.2, 0.8],
                                   "model_version": "ext-1", "latency_ms": 3.5}]})


def _feedback(_: list[dict[str, Any]], __: list[dict[str, Any]]) -> str:
    return json.dumps({"model": "churn", "labels": [
        {"request_id": "__STR__", "row_index": "__INT__", "label": 1, "label_time": LABEL_TIME},
        {"request_id": "seeded", "row_index": "__NUM__", "label": 1, "label_time": LABEL_TIME},
    ]})


def _business(_: list[dict[str, Any]], __: list[dict[str, Any]]) -> str:
    return json.dumps({"observations": [{"name": "__STR__", "timestamp": LABEL_TIME, "value": "__NUM__"}]})


def _config(_: list[dict[str, Any]], __: list[dict[str, Any]]) -> str:
    return json.dumps({"latency_budget_ms": "__NUM__", "segment_feature": "__STR__", "min_labels": "__INT__"})


def _train(_: list[dict[str, Any]], table: list[dict[str, Any]]) -> str:
    return json.dumps({"rows": [{**table[0], "watch_hours": "__NUM__", "plan": "__STR__"}, *table[1:]]})


ENDPOINTS = {
    "predict": Endpoint("POST", PREDICT, "rows", _predict, {"NUM": "3.5", "INT": "1", "STR": '"cust-1"'}),
    "ingest": Endpoint("POST", "/v1/models/churn/events", "events", _ingest,
                       {"NUM": "3.5", "INT": "1", "STR": '"ing-1"'}),
    "feedback": Endpoint("POST", "/v1/feedback", "labels", _feedback, {"NUM": "0", "INT": "1", "STR": '"seeded"'}),
    "business": Endpoint("POST", "/v1/business-metrics", "observations", _business,
                         {"NUM": "12.5", "INT": None, "STR": '"revenue"'}),
    "config": Endpoint("PUT", "/v1/models/churn/monitoring-config", "webhooks", _config,
                       {"NUM": "50", "INT": "100", "STR": '"plan"'}),
    "train": Endpoint("POST", "/v1/models/churn/train?target=churned", "rows", _train,
                      {"NUM": "3.5", "INT": None, "STR": '"basic"'}),
}


def fill(endpoint: Endpoint, text: str, **values: str) -> str:
    for slot, token in (("NUM", NUM), ("INT", INT), ("STR", STR)):
        value = values.get(slot, endpoint.ordinary[slot])
        if token in text and value is not None:
            text = text.replace(token, value)
    return text


# --- the corpus -------------------------------------------------------------------------

#: One hostile value in one slot: (slot, raw JSON literal).
SLOT_CASES: dict[str, tuple[str, str]] = {
    "NaN": ("NUM", "NaN"),
    "Infinity": ("NUM", "Infinity"),
    "-Infinity": ("NUM", "-Infinity"),
    "1e999": ("NUM", "1e999"),
    "-1e999": ("NUM", "-1e999"),
    "10**400": ("NUM", str(10**400)),
    "the string 0.5 for a number": ("NUM", '"0.5"'),
    "true for a number": ("NUM", "true"),
    "false for a number": ("NUM", "false"),
    "an object for a number": ("NUM", '{"value": 1}'),
    "nested 10,000 deep (arrays)": ("NUM", "[" * 10_000 + "]" * 10_000),
    "nested 10,000 deep (objects)": ("NUM", '{"a":' * 10_000 + "1" + "}" * 10_000),
    "an array of 10**6 numbers": ("NUM", MILLION),
    "a negative integer": ("INT", "-1"),
    "2**63": ("INT", str(2**63)),
    "2**64": ("INT", str(2**64)),
    "-(2**70)": ("INT", str(-(2**70))),
    "1.5 for an integer": ("INT", "1.5"),
    "the string 1 for an integer": ("INT", '"1"'),
    "true for an integer": ("INT", "true"),
    "an escaped NUL": ("STR", '"ab\\u0000cd"'),
    "a lone high surrogate": ("STR", '"\\ud800"'),
    "a lone low surrogate": ("STR", '"ab\\udfff"'),
    "a 1 MB string": ("STR", MEGABYTE_STRING),
}

#: Whole bodies or headers: a function of (endpoint, the valid body) -> (body bytes, headers).
BODY_CASES: dict[str, Callable[[Endpoint, bytes], tuple[bytes, dict[str, str]]]] = {
    "a raw NUL byte in a string": lambda e, b: (b.replace(b'"ordinary-text', b'"ordinary\x00text'), {}),
    "invalid UTF-8": lambda e, b: (b.replace(b'"ordinary-text', b'"ordinary\xff\xfetext'), {}),
    "text/plain": lambda e, b: (b, {"content-type": "text/plain"}),
    "no content type": lambda e, b: (b, {"content-type": ""}),
    "form encoded": lambda e, b: (b"rows=1&model=churn", {"content-type": "application/x-www-form-urlencoded"}),
    "XML": lambda e, b: (b"<rows><row/></rows>", {"content-type": "application/xml"}),
    "gzip with Content-Encoding (not honoured)": lambda e, b: (gzip.compress(b), {"content-encoding": "gzip"}),
    "a gzip bomb": lambda e, b: (_bomb(), {"content-encoding": "gzip"}),
    "a duplicate key whose last value is invalid": lambda e, b: (
        b[:-1] + f', "{next(iter(json.loads(b)))}": []}}'.encode(), {}
    ),
    "an unknown field": lambda e, b: (b[:-1] + b', "zzz_unknown": 1}', {}),
    "an empty body": lambda e, b: (b"", {}),
    "null": lambda e, b: (b"null", {}),
    "a JSON string": lambda e, b: (b'"rows"', {}),
    "a top-level array of 10**6": lambda e, b: (MILLION.encode(), {}),
    # 10**5, not 10**6: each element is validated today (see the test of the time it takes below)
    "10**5 elements in the main list": lambda e, b: (
        json.dumps({**json.loads(b), e.list_key: [0] * 100_000}).encode(), {}
    ),
    "a body over the size limit": lambda e, b: (b'{"x": "' + b"x" * (17 * 1024 * 1024) + b'"}', {}),
}

#: Known gaps: (endpoint, case) -> an ``xfail(strict=True)`` mark naming the file where the fix belongs.
GAPS: dict[tuple[str, str], Any] = {}


def _bomb() -> bytes:
    """10 MB of JSON in about 10 KB of gzip."""
    return gzip.compress(b'{"rows": [' + b"0," * 5_000_000 + b"0]}", compresslevel=9)


def _params() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for case, (slot, _) in SLOT_CASES.items():
            if ENDPOINTS[endpoint].ordinary[slot] is None:
                continue  # the endpoint has no field of that kind (no integer in business or train)
            yield pytest.param(endpoint, case, id=f"{endpoint}: {case}", marks=GAPS.get((endpoint, case), ()))
        for case in BODY_CASES:
            yield pytest.param(endpoint, case, id=f"{endpoint}: {case}", marks=GAPS.get((endpoint, case), ()))


# --- the service and what it has stored -------------------------------------------------


@dataclass
class Service:
    client: TestClient
    workspace: Workspace
    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]

    def snapshot(self) -> dict[str, Any]:
        store = self.workspace.store
        return {
            "events": store.count_events(),
            "labels": sorted(repr(sorted(vars(label).items())) for label in store.iter_labels("churn")),
            "business": sorted(repr(sorted(vars(o).items())) for o in store.query_business_metrics()),
            "configs": [c.version for c in store.list_monitor_configs("churn")],
            "versions": [v.version for v in store.list_versions("churn")],
            "models": sorted(m.name for m in store.list_models()),
        }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, trained_template: Path,
            churn_training: pd.DataFrame) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("hostile")
    copy_database(trained_template, home / "loopwatch.db")
    settings = Settings.from_env({}, home=home, database=str(home / "loopwatch.db"), schedule_enabled=False)
    rows = churn_rows(churn_training, 5)
    table = churn_training.head(40).astype(object).where(churn_training.head(40).notna(), None)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client, Workspace(settings) as ws:
        # something stored of every kind, for the corpus to leave alone
        seeded = client.post(PREDICT, json={"rows": rows, "entity_ids": [f"cust-{i}" for i in range(5)]},
                             headers={"X-Request-ID": "seeded"})
        assert seeded.status_code == 200, seeded.text
        labels = [{"request_id": "seeded", "row_index": 0, "label": 1, "label_time": LABEL_TIME}]
        assert client.post("/v1/feedback", json={"model": "churn", "labels": labels}).json()["stored"] == 1
        observations = [{"name": "revenue", "timestamp": LABEL_TIME, "value": 10.0}]
        assert client.post("/v1/business-metrics", json={"observations": observations}).status_code == 200
        assert client.put("/v1/models/churn/monitoring-config", json={"latency_budget_ms": 40}).status_code == 200
        yield Service(client, ws, rows, table.to_dict(orient="records"))


def _valid_body(endpoint: Endpoint, service: Service) -> bytes:
    """The template with ordinary values, its text slot marked so raw-byte cases can find it."""
    text = fill(endpoint, endpoint.template(service.rows, service.table), STR='"ordinary-text"')
    return text.encode()


@pytest.mark.parametrize(("endpoint_name", "case"), list(_params()))
def test_every_hostile_body_is_a_4xx_in_the_error_shape_and_changes_nothing(
    service: Service, endpoint_name: str, case: str
) -> None:
    endpoint = ENDPOINTS[endpoint_name]
    headers = {"content-type": JSON, "X-Client-ID": "hostile"}
    if case in SLOT_CASES:
        slot, literal = SLOT_CASES[case]
        body = fill(endpoint, endpoint.template(service.rows, service.table), **{slot: literal}).encode()
    else:
        body, extra = BODY_CASES[case](endpoint, _valid_body(endpoint, service))
        headers.update(extra)
    if headers.get("content-type") == "":
        del headers["content-type"]
    before = service.snapshot()

    response = service.client.request(endpoint.method, endpoint.path, content=body, headers=headers)

    assert response.status_code in (413, 415, 422), (response.status_code, response.text[:300])
    assert_error(response, response.status_code)
    assert len(response.content) < 10_000  # nothing hostile echoed back at length
    assert service.snapshot() == before


@pytest.mark.parametrize("endpoint_name", list(ENDPOINTS))
def test_the_templates_with_ordinary_values_are_accepted(endpoint_name: str, client, rows,  # type: ignore[no-untyped-def]
                                                         churn_training: pd.DataFrame) -> None:
    """The control: each hostile case differs from an accepted request only where it is hostile."""
    endpoint = ENDPOINTS[endpoint_name]
    table = churn_training.head(40).astype(object).where(churn_training.head(40).notna(), None)
    body = fill(endpoint, endpoint.template(rows, table.to_dict(orient="records")))
    response = client.request(endpoint.method, endpoint.path, content=body.encode(), headers={"content-type": JSON})
    assert 200 <= response.status_code < 300, response.text[:300]


def test_a_long_list_is_refused_without_validating_each_element(service: Service) -> None:
    body = json.dumps({"rows": [0] * 300_000}).encode()
    started = time.perf_counter()
    response = service.client.post(PREDICT, content=body, headers={"content-type": JSON})
    elapsed = time.perf_counter() - started
    assert response.status_code in (413, 422)
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_duplicate_keys_are_read_once_the_last_one_wins(service: Service) -> None:
    """orjson keeps the last of duplicate keys, and each body is parsed once, so what is
    validated is what is used: no parser differential inside loopwatch to smuggle through."""
    first_invalid = b'{"rows": "not rows", "rows": ' + json.dumps(service.rows[:1]).encode() + b"}"
    answer = service.client.post(PREDICT, content=first_invalid, headers={"content-type": JSON})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
