"""Models over HTTP: train from CSV, JSON rows and Parquet; list and inspect versions;
promote and roll back; per-model settings; and the 4xx answers of each."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pandas as pd
import pytest

from tests.api.helpers import assert_error
from tests.conftest import churn_rows

FEATURES = ["tenure_months", "monthly_fee", "watch_hours", "support_tickets", "age", "plan", "device", "country"]


@pytest.fixture
def table(churn_training: pd.DataFrame) -> pd.DataFrame:
    """A small training table: training over HTTP in every test must stay quick."""
    return churn_training.head(300)


def csv_body(frame: pd.DataFrame) -> dict[str, Any]:
    return {"content": frame.to_csv(index=False), "headers": {"content-type": "text/csv"}}


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # NaN becomes null


def parquet_body(frame: pd.DataFrame, media: str = "application/vnd.apache.parquet") -> dict[str, Any]:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return {"content": buffer.getvalue(), "headers": {"content-type": media}}


def train(client, name: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    params = {"target": "churned", **kwargs.pop("params", {})}
    return client.post(f"/v1/models/{name}/train", params=params, **kwargs)


def test_train_from_csv_then_json_rows_gives_versions_1_and_2(client, trained, table) -> None:
    csv = table.to_csv(index=False)
    first = train(client, "svc", content=csv, headers={"content-type": "text/csv", "X-Client-ID": "trainer"})
    assert first.status_code == 201, first.text
    v1 = first.json()["version"]
    assert (v1["name"], v1["version"], v1["aliases"]) == ("svc", 1, ["production"])
    assert v1["task"] == "classification" and v1["estimator"] == "logistic_regression"
    assert re.fullmatch(r"[0-9a-f]{64}", v1["artifact_sha256"])
    assert [f["name"] for f in v1["schema"]["features"]] == FEATURES
    assert v1["schema"]["target"] == "churned"
    assert first.json()["duration_ms"] > 0

    second = train(client, "svc", json={"rows": json_rows(table)})
    assert second.status_code == 201, second.text
    v2 = second.json()["version"]
    assert (v2["version"], v2["aliases"]) == (2, ["candidate"])

    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models["svc"]["aliases"] == {"production": 1, "candidate": 2}
    assert models["svc"]["latest_version"] == 2
    runs = client.get("/v1/training-events", params={"model": "svc"}).json()
    assert [(r["model_version"], r["client_id"]) for r in runs] == [(1, "trainer"), (2, None)]
    # the new model serves at once: production by default, the candidate on request
    rows = churn_rows(table, 2)
    assert client.post("/v1/models/svc/predict", json={"rows": rows}).json()["version"] == 1
    assert client.post("/v1/models/svc/predict", json={"rows": rows, "version": "candidate"}).json()["version"] == 2


@pytest.mark.parametrize("media", ["application/vnd.apache.parquet", "application/x-parquet"])
def test_train_from_a_parquet_body(client, trained, table, media: str) -> None:
    response = train(client, "pq", **parquet_body(table, media))
    assert response.status_code == 201, response.text
    version = response.json()["version"]
    assert (version["name"], version["version"]) == ("pq", 1)
    assert [f["name"] for f in version["schema"]["features"]] == FEATURES
    nullable = {f["name"] for f in version["schema"]["features"] if f["nullable"]}
    assert nullable == ({"age"} if table["age"].isna().any() else set())


def test_promote_the_candidate_then_roll_back(client, trained, table) -> None:
    assert train(client, "churn", **csv_body(table)).status_code == 201  # v2, the candidate

    promoted = client.post("/v1/models/churn/promote")
    assert promoted.status_code == 200, promoted.text
    change = promoted.json()
    assert (change["name"], change["alias"], change["version"], change["previous_version"]) == ("churn", "production", 2, 1)
    assert change["reason"] == "promote"
    assert trained.store.get_aliases("churn") == {"production": 2}  # the candidate alias is cleared
    assert client.get("/v1/models/churn").json()["aliases"] == {"production": 2}
    rows = churn_rows(table, 1)
    assert client.post("/v1/models/churn/predict", json={"rows": rows}).json()["version"] == 2

    rolled = client.post("/v1/models/churn/rollback")
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["version"], rolled.json()["previous_version"], rolled.json()["reason"]) == (1, 2, "rollback")
    assert client.get("/v1/models/churn").json()["aliases"] == {"production": 1, "candidate": 2}
    assert client.post("/v1/models/churn/predict", json={"rows": rows}).json()["version"] == 1

    # a named version and alias
    named = client.post("/v1/models/churn/promote", json={"version": 1, "alias": "candidate"})
    assert named.status_code == 200 and (named.json()["alias"], named.json()["version"]) == ("candidate", 1)
    assert_error(client.post("/v1/models/churn/promote", json={"version": 9}), 404, "not_found")
    assert_error(client.post("/v1/models/churn/promote", json={"version": 0}), 422)
    assert_error(client.post("/v1/models/churn/promote", json={"alias": "staging"}), 422)
    assert_error(client.post("/v1/models/churn/promote", json={"version": 2**40}), 422)


def test_nothing_to_roll_back_and_no_candidate_are_409(client, trained) -> None:
    # churn has one version, in production, and no candidate
    error = assert_error(client.post("/v1/models/churn/rollback"), 409, "conflict")
    assert "roll back" in error["message"]
    error = assert_error(client.post("/v1/models/churn/promote"), 409, "conflict")
    assert "candidate" in error["message"]
    assert trained.store.get_aliases("churn") == {"production": 1}
    assert_error(client.post("/v1/models/nope/rollback"), 404, "not_found")
    assert_error(client.post("/v1/models/nope/promote"), 404, "not_found")


def test_list_models_versions_and_one_version_with_its_schema(client, trained) -> None:
    models = client.get("/v1/models")
    assert models.status_code == 200
    (churn,) = models.json()
    assert churn["name"] == "churn"
    assert churn["aliases"] == {"production": 1} and churn["latest_version"] == 1
    assert churn["settings"] == {"log_data": True, "retention_days": None, "nullable": []}

    detail = client.get("/v1/models/churn").json()
    assert [v["version"] for v in detail["versions"]] == [1]
    assert detail["versions"][0]["schema"] is None  # lists leave the schema out
    listed = client.get("/v1/models/churn/versions").json()
    assert [(v["version"], v["aliases"], v["schema"]) for v in listed] == [(1, ["production"], None)]

    one = client.get("/v1/models/churn/versions/1")
    assert one.status_code == 200
    version = one.json()
    schema = version["schema"]
    assert [f["name"] for f in schema["features"]] == FEATURES
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert {n for n, k in kinds.items() if k == "categorical"} == {"plan", "device", "country"}
    assert (schema["target"], schema["task"], schema["classes"]) == ("churned", "classification", [0, 1])
    assert version["artifact_sha256"] == trained.store.get_model_version("churn", 1).artifact_sha256
    assert version["metrics"]

    assert_error(client.get("/v1/models/nope"), 404, "not_found")
    assert_error(client.get("/v1/models/nope/versions"), 404, "not_found")
    assert_error(client.get("/v1/models/churn/versions/2"), 404, "not_found")
    assert_error(client.get("/v1/models/churn/versions/0"), 422)
    assert_error(client.get("/v1/models/churn/versions/one"), 422)
    assert_error(client.get(f"/v1/models/churn/versions/{10**30}"), 422)  # a 500 on SQLite before


def test_settings_get_put_and_validation(client, trained) -> None:
    assert client.get("/v1/models/churn/settings").json() == {"log_data": True, "retention_days": None, "nullable": []}
    put = client.put("/v1/models/churn/settings", json={"log_data": False, "retention_days": 30})
    assert put.status_code == 200 and put.json() == {"log_data": False, "retention_days": 30, "nullable": []}
    assert client.get("/v1/models/churn/settings").json() == {"log_data": False, "retention_days": 30, "nullable": []}
    assert trained.store.get_model_settings("churn").retention_days == 30

    for bad in ({"retention_days": 0}, {"retention_days": -1}, {"retention_days": 36501},
                {"log_data": "maybe"}, {"log_data": False, "keep_forever": True}, [1]):
        assert_error(client.put("/v1/models/churn/settings", json=bad), 422, "invalid_input")
    assert client.get("/v1/models/churn/settings").json() == {"log_data": False, "retention_days": 30, "nullable": []}
    assert_error(client.get("/v1/models/nope/settings"), 404, "not_found")
    assert_error(client.put("/v1/models/nope/settings", json={"log_data": True}), 404, "not_found")


def test_train_refusals_are_4xx_and_register_nothing(client, trained, table) -> None:
    def refused(response, status: int, code: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return assert_error(response, status, code)

    error = refused(train(client, "svc", params={"target": "will_churn"}, **csv_body(table)), 422, "invalid_input")
    assert "will_churn" in error["message"]
    refused(train(client, "svc", content=b"<rows/>", headers={"content-type": "application/xml"}), 415, "unsupported_media_type")
    refused(train(client, "svc", content=b"a,b\n1,2\n3,4,5,6\n", headers={"content-type": "text/csv"}), 422, "unreadable_data")
    refused(train(client, "svc", content=b"\x00\x01\x02\xff", headers={"content-type": "text/csv"}), 422)
    refused(train(client, "svc", content=b"PAR1 not parquet", headers={"content-type": "application/x-parquet"}), 422, "unreadable_data")
    refused(train(client, "svc", content=b'{"rows": ', headers={"content-type": "application/json"}), 422, "unreadable_data")
    refused(train(client, "svc", json={"rows": json_rows(table)[:5]}), 422, "invalid_input")
    refused(train(client, "svc", json={"table": json_rows(table)}), 422, "invalid_input")
    refused(train(client, "svc", json={"rows": [1] * 20}), 422, "invalid_input")
    refused(train(client, "bad name!", **csv_body(table)), 422, "invalid_input")
    refused(train(client, "svc", params={"estimator": "deep_net"}, **csv_body(table)), 422, "invalid_input")
    refused(train(client, "svc", params={"test_size": 1.5}, **csv_body(table)), 422, "invalid_input")
    refused(train(client, "svc", params={"target": ""}, **csv_body(table)), 422, "invalid_input")
    # what scikit-learn or pandas refuse was a 500 before: a text target for regression,
    # nested values in JSON rows, a seed numpy cannot take
    refused(train(client, "svc", params={"target": "plan", "task": "regression"}, **csv_body(table)), 422, "invalid_input")
    nested = [{**row, "churned": [row["churned"]]} for row in json_rows(table)]
    nested_error = refused(train(client, "svc", json={"rows": nested}), 422, "schema_violation")
    assert nested_error["detail"]["problems"][0] == {"row": 0, "column": "churned",
                                                      "problem": "expected a number, a string or null, got array"}
    mixed = [{**row, "watch_hours": "3.5"} if i == 4 else row for i, row in enumerate(json_rows(table))]
    assert "row 4 holds a string among numbers" in refused(
        train(client, "svc", json={"rows": mixed}), 422, "schema_violation")["message"]
    refused(train(client, "svc", content=csv_body(table)["content"]), 415, "unsupported_media_type")
    refused(train(client, "svc", params={"seed": 2**33}, **csv_body(table)), 422, "invalid_input")

    assert [m["name"] for m in client.get("/v1/models").json()] == ["churn"]
    assert [e["model_name"] for e in client.get("/v1/training-events").json()] == ["churn"]
