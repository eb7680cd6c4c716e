"""The OpenAPI document: well formed (checked by hand: openapi-spec-validator is not a
dependency), complete, every path answers, and errors documented in the one shape."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Iterator

import pandas as pd
import pytest

from loopwatch.auth.manage import issue_key
from loopwatch.records.incidents import IncidentRecord
from loopwatch.stores.base import EventQuery
from tests.api.helpers import PREDICT

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}

#: The HTTP surface these tests know; other groups may add routes (held to the general rules).
SURFACE = {
    ("post", "/v1/models/{name}/predict"),
    ("post", "/v1/models/{name}/train"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{name}"),
    ("get", "/v1/models/{name}/versions"),
    ("get", "/v1/models/{name}/versions/{version}"),
    ("post", "/v1/models/{name}/promote"),
    ("post", "/v1/models/{name}/rollback"),
    ("get", "/v1/models/{name}/settings"),
    ("put", "/v1/models/{name}/settings"),
    ("get", "/v1/logs"),
    ("get", "/v1/logs/export"),
    ("delete", "/v1/logs/requests/{request_id}"),
    ("get", "/v1/rejections"),
    ("get", "/v1/training-events"),
    ("get", "/v1/fingerprints/{fingerprint_id}"),
    ("get", "/v1/health/live"),
    ("get", "/v1/health/ready"),
    ("get", "/metrics"),
}


@pytest.fixture
def doc(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_document_is_well_formed(doc: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert doc["info"]["title"] == "loopwatch"
    assert doc["info"]["version"] == metadata.version("loopwatch")
    operation_ids = []
    for method, path, op in operations(doc):
        where = f"{method.upper()} {path}"
        assert path.startswith("/") and "//" not in path, where
        assert op.get("summary", "").strip(), f"{where} has no summary"
        assert op.get("tags"), f"{where} has no tag"
        operation_ids.append(op["operationId"])
        assert op["responses"], where
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), (where, status)
            assert response.get("description"), (where, status)
        # path parameters: exactly the template's, each required
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), where
        assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path"), where
        for param in op.get("parameters", []):
            assert param["in"] in {"path", "query", "header", "cookie"} and "schema" in param, (where, param)
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for ref in set(refs(doc)):
        assert isinstance(resolve(doc, ref), dict), f"dangling $ref {ref}"
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # the service never sends that shape


def test_every_route_is_documented_with_a_summary(client, doc: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in operations(doc)}
    assert SURFACE <= documented, SURFACE - documented
    from fastapi.routing import APIRoute, iter_route_contexts

    for context in iter_route_contexts(client.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            assert route.summary, context.path
            assert route.include_in_schema, context.path
            assert {(m.lower(), context.path) for m in route.methods} <= documented


def test_every_documented_path_answers_with_a_documented_status(
    client, trained, doc: dict[str, Any], rows, churn_training: pd.DataFrame
) -> None:
    assert client.post(PREDICT, json={"rows": rows[:2]}, headers={"X-Request-ID": "doc-req"}).status_code == 200
    fingerprint = trained.store.query_events(EventQuery(request_id="doc-req")).events[0].fingerprint_id
    now = datetime.now(timezone.utc)
    trained.store.upsert_incident(IncidentRecord(
        incident_id="churn:covariate_shift:doc", model_name="churn", kind="covariate_shift", loop="eda",
        status="open", first_seen=now, last_seen=now, detected_at=now, summary="doc", evidence={},
    ))
    values = {"name": "churn", "version": "1", "request_id": "doc-req", "fingerprint_id": fingerprint,
              "incident_id": "churn:covariate_shift:doc",
              "key_id": issue_key(trained.store, name="doc", scopes=["read"], now=now)[0].key_id}
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/v1/models/{name}/predict"): {"json": {"rows": rows[:1]}},
        ("post", "/v1/models/{name}/train"): {
            "params": {"target": "churned"},
            "content": churn_training.head(200).to_csv(index=False),
            "headers": {"content-type": "text/csv"},
        },
        ("post", "/v1/models/{name}/promote"): {"json": {}},
        ("put", "/v1/models/{name}/settings"): {"json": {"log_data": True, "retention_days": 400}},
    }
    # train before promote, promote before rollback, delete last
    order = sorted(operations(doc), key=lambda o: ("train" not in o[1], "rollback" in o[1], o[0] == "delete", o[1]))
    for method, path, op in order:
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        response = client.request(method.upper(), url, **bodies.get((method, path), {}))
        where = f"{method.upper()} {url}"
        if (method, path) in SURFACE:
            assert response.status_code < 400, (where, response.status_code, response.text[:300])
        else:  # a route these tests do not know: it exists, and does not fail
            assert response.status_code != 404 and response.status_code < 500, (where, response.text[:300])
        assert str(response.status_code) in op["responses"], (where, response.status_code)


def test_predict_documents_rows_version_and_timestamps(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/models/{name}/predict"]["post"]
    body = op["requestBody"]
    assert body["required"] is True
    schema = resolve(doc, body["content"]["application/json"]["schema"]["$ref"])
    assert schema["required"] == ["rows"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert {"rows", "version", "timestamp", "timestamps", "request_type", "client_version", "entity_ids"} == set(props)
    assert props["rows"]["type"] == "array" and props["rows"]["minItems"] == 1
    row = props["rows"]["items"]
    assert row["type"] == "object"
    assert {t["type"] for t in row["additionalProperties"]["anyOf"]} == {"number", "string", "boolean", "null"}
    version_kinds = props["version"]["anyOf"]
    assert {"type": "string", "enum": ["production", "candidate"]} in version_kinds
    integer = next(k for k in version_kinds if k.get("type") == "integer")
    assert integer["minimum"] == 1 and integer["maximum"] == 2**31 - 1
    timestamps = next(k for k in props["timestamps"]["anyOf"] if k.get("type") == "array")
    assert timestamps["items"] == {"type": "string", "format": "date-time"}
    assert {"type": "string", "format": "date-time"} in props["timestamp"]["anyOf"]
    for header in ("x-request-id", "x-client-id", "x-client-version"):
        assert any(p["in"] == "header" and p["name"] == header for p in op["parameters"]), header
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(resolve(doc, ok)["properties"]) == {"request_id", "model", "version", "predictions", "probabilities", "classes"}


def test_error_responses_reference_the_one_error_model(doc: dict[str, Any]) -> None:
    error_out = doc["components"]["schemas"]["ErrorOut"]
    assert error_out["required"] == ["error"]
    body = resolve(doc, error_out["properties"]["error"]["$ref"])
    assert set(body["required"]) == {"status", "code", "message"}
    assert set(body["properties"]) == {"status", "code", "message", "detail"}

    checked = 0
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/v1/health/ready":  # readiness answers 503 with its checks
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
            checked += 1
    assert checked >= 5 * (len(SURFACE) - 3)  # all but the health routes and /metrics
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]["responses"]
    assert {"404", "409", "413", "415", "422", "503"} <= set(predict)
    assert "415" in doc["paths"]["/v1/models/{name}/train"]["post"]["responses"]
    ready = doc["paths"]["/v1/health/ready"]["get"]["responses"]["503"]
    assert ready["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HealthOut"}


def test_the_docs_page_is_served(client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
