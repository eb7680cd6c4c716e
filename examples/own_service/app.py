"""A team's own prediction service, monitored by loopwatch without loopwatch serving it.

A plain FastAPI app serving a scikit-learn regressor that the team trained and saved itself
(``MODEL_PATH``, a joblib file). Each prediction is logged to loopwatch with
:mod:`loopwatch.client` (``LOOPWATCH_URL``, and ``LOOPWATCH_API_KEY`` when the service asks
for keys); each outcome, when it becomes known, is sent as a label the same way. The
request path never waits on loopwatch: with loopwatch down, predictions are still served.

Run it with ``uvicorn examples.own_service.app:app``.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from loopwatch.client import Client

MODEL_NAME = os.environ.get("LOOPWATCH_MODEL", "flights-air")
MODEL_VERSION = os.environ.get("MODEL_VERSION", "hgb-2013-01")


class PredictIn(BaseModel):
    features: dict[str, Any]
    request_id: str | None = None
    #: When the prediction is for; the service's clock when absent (a replay supplies it).
    time: str | None = None


class OutcomeIn(BaseModel):
    request_id: str
    air_time: float
    time: str | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.model = joblib.load(os.environ["MODEL_PATH"])
    app.state.columns = list(app.state.model.feature_names_in_)
    app.state.client = Client(url=os.environ["LOOPWATCH_URL"], api_key=os.environ.get("LOOPWATCH_API_KEY"),
                              client_version="own-service-1")

    @app.state.client.monitored(model=MODEL_NAME, model_version=MODEL_VERSION)
    def predict(features: dict[str, Any]) -> float:
        frame = pd.DataFrame([features], columns=app.state.columns)
        return float(app.state.model.predict(frame)[0])

    app.state.predict = predict
    yield
    app.state.client.close()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict(body: PredictIn) -> dict[str, Any]:
    # the team's own id for the prediction: its outcome is sent later under the same id
    request_id = body.request_id or uuid.uuid4().hex
    air_time = app.state.predict(body.features, request_id=request_id, timestamp=body.time)
    return {"request_id": request_id, "air_time": air_time}


@app.post("/outcomes")
def outcome(body: OutcomeIn) -> dict[str, str]:
    app.state.client.log_label(model=MODEL_NAME, request_id=body.request_id, label=body.air_time,
                               label_time=body.time)
    return {"status": "queued"}


@app.get("/stats")
def stats() -> dict[str, Any]:
    """What the client has sent, dropped and refused so far (for the team's own dashboards)."""
    s = app.state.client.stats()
    return {"sent": s.sent, "duplicates": s.duplicates, "dropped": s.dropped, "rejected": s.rejected,
            "failed": s.failed, "buffered": s.buffered, "last_error": s.last_error}
