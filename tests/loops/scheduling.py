"""A served model with logged traffic, for the scheduler, API and CLI tests of the loops.

Training takes a couple of seconds, so a template database is built once per
session and copied (SQLite backup API) for each test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from loopwatch.config import Settings
from loopwatch.application.prediction import PredictCall
from loopwatch.application.workspace import Workspace
from tests.conftest import churn_rows

UTC = timezone.utc
#: The end of the logged traffic: three days of it (Monday to Wednesday), up to here.
NOW = datetime(2026, 3, 5, tzinfo=UTC)
#: A latency budget no prediction meets: every window with traffic is a latency regression,
#: so a real evaluation raises a real incident. Weekly windows: the traffic is one window,
#: which keeps each evaluation short.
IMPOSSIBLE_BUDGET = {"latency_budget_ms": 0.0001, "window": "1d"}  # two slow days in a row: a regression


def log_traffic(ws: Workspace, frame: pd.DataFrame, *, now: datetime = NOW, days: int = 3,
                requests_per_day: int = 4, rows_per_request: int = 25) -> int:
    """Predict rows of ``frame`` with event times over the ``days`` before ``now``; returns the rows."""
    rows = churn_rows(frame, days * requests_per_day * rows_per_request)
    logged = 0
    for day in range(days):
        for k in range(requests_per_day):
            chunk = rows[logged:logged + rows_per_request]
            moment = now - timedelta(days=days - day) + timedelta(hours=3 * k)
            ws.writer.write(ws.predictor.predict(PredictCall(model_name="churn", rows=chunk, timestamp=moment)))
            logged += len(chunk)
    return logged


def build_template(path: Path, frame: pd.DataFrame) -> Path:
    """A database whose "churn" v1 is in production and has three days of logged traffic."""
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", frame, target="churned")
        log_traffic(ws, frame)
    return path
