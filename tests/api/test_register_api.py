"""POST /v1/models/{name}/register: the service loads only the types its own settings trust.

An XGBoost classifier fitted outside loopwatch on real January flights is sent as skops bytes
by an admin key. Refused (422, naming the types) while LOOPWATCH_TRUSTED_TYPES does not list
them, whatever the body says; accepted and served once it does. A key without the admin scope
gets 403. A monitor-only registration over the same route refuses predict with a clear 409.
"""

from __future__ import annotations

import base64
from typing import Any

import pandas as pd
import pytest

from loopwatch.models.artifacts import dump_model
from tests import realdata
from tests.api.auth_helpers import issue, secure_client

FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]
XGB_TYPES = ("xgboost.core.Booster", "xgboost.sklearn.XGBClassifier")


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    frame = realdata.flights()
    return frame[frame["time"] < "2013-02-01"].drop(columns="time").sample(3_000, random_state=5)


@pytest.fixture(scope="module")
def xgb_bytes(january: pd.DataFrame) -> bytes:
    from xgboost import XGBClassifier

    fit = january.iloc[:2_000]
    model = XGBClassifier(n_estimators=30, max_depth=4, random_state=0, n_jobs=1)
    model.fit(fit[FEATURES], fit["late"])
    return dump_model(model)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def body(january: pd.DataFrame, artifact: bytes) -> dict[str, Any]:
    return {"artifact": base64.b64encode(artifact).decode(), "reference": rows(january.iloc[:2_000]),
            "holdout": rows(january.iloc[2_000:]), "target": "late"}


def test_types_off_the_server_list_are_refused_and_a_non_admin_key_is_403(settings, january, xgb_bytes) -> None:
    with secure_client(settings) as client:
        admin = issue(client.app.state.loopwatch.store, "admin")  # type: ignore[attr-defined]
        reader = issue(client.app.state.loopwatch.store, "read", "predict", "feedback")  # type: ignore[attr-defined]
        sent = body(january, xgb_bytes)
        assert client.post("/v1/models/late/register", json=sent, headers=reader.headers).status_code == 403
        refused = client.post("/v1/models/late/register", json=sent, headers=admin.headers)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_input"
        assert sorted(error["detail"]["untrusted_types"]) == list(XGB_TYPES)
        assert "LOOPWATCH_TRUSTED_TYPES" in error["message"]
        # the body cannot trust anything itself: an unknown field is refused
        smuggled = client.post("/v1/models/late/register", json={**sent, "trust": list(XGB_TYPES)},
                               headers=admin.headers)
        assert smuggled.status_code == 422
        # a file that is not skops is a 422 too, never a 500
        junk = base64.b64encode(b"PK junk").decode()
        garbage = client.post("/v1/models/late/register", json={**sent, "artifact": junk}, headers=admin.headers)
        assert garbage.status_code == 422, garbage.text
        assert client.get("/v1/models/late", headers=admin.headers).status_code == 404


def test_types_on_the_server_list_are_accepted_recorded_and_served(settings, january, xgb_bytes) -> None:
    with secure_client(settings, trusted_types=",".join(XGB_TYPES)) as client:
        admin = issue(client.app.state.loopwatch.store, "admin")  # type: ignore[attr-defined]
        caller = issue(client.app.state.loopwatch.store, "predict")  # type: ignore[attr-defined]
        done = client.post("/v1/models/late/register", json=body(january, xgb_bytes), headers=admin.headers)
        assert done.status_code == 201, done.text
        version = done.json()["version"]
        assert version["params"]["trusted_types"] == list(XGB_TYPES)
        assert version["artifact_sha256"] == __import__("hashlib").sha256(xgb_bytes).hexdigest()
        assert version["estimator"] == "xgboost.sklearn.XGBClassifier"
        assert 0.5 < version["metrics"]["roc_auc"] < 1.0  # measured on the holdout
        shown = client.get("/v1/models/late", headers=admin.headers).json()
        assert "xgboost.core.Booster" in str(shown)
        predicted = client.post("/v1/models/late/predict", json={"rows": rows(january[FEATURES].head(5))},
                                headers=caller.headers)
        assert predicted.status_code == 200, predicted.text
        assert len(predicted.json()["probabilities"]) == 5


def test_a_monitor_only_model_registers_over_http_and_refuses_predict(settings, january) -> None:
    reference = january.assign(pred=(january["distance"] > 1000).astype(int))
    reference["p_1"] = (reference["distance"] / reference["distance"].max()).round(3)
    reference["p_0"] = 1 - reference["p_1"]
    reference["pred"] = (reference["p_1"] > 0.5).astype(int)
    with secure_client(settings) as client:
        admin = issue(client.app.state.loopwatch.store, "admin")  # type: ignore[attr-defined]
        done = client.post("/v1/models/ext/register", headers=admin.headers, json={
            "reference": rows(reference), "target": "late", "prediction_column": "pred",
            "probability_prefix": "p_"})
        assert done.status_code == 201, done.text
        version = done.json()["version"]
        assert version["estimator"] == "monitor-only" and version["params"]["monitor_only"] is True
        assert [f["name"] for f in version["schema"]["features"]] == FEATURES
        refused = client.post("/v1/models/ext/predict", json={"rows": rows(january[FEATURES].head(2))},
                              headers=admin.headers)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "not_applicable"
        assert "/v1/models/ext/events" in refused.json()["error"]["message"]
