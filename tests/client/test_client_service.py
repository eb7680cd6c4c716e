"""``loopwatch.client`` against the real service (``loopwatch serve`` in its own process) for
the routes every model has: labels and business metrics."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from loopwatch.client import Client
from loopwatch.config import Settings
from loopwatch.demo.runner import ServiceProcess
from loopwatch.application.prediction import PredictCall
from loopwatch.application.workspace import Workspace
from tests.conftest import churn_rows

UTC = timezone.utc
DAY = datetime(2025, 3, 3, tzinfo=UTC)


def test_labels_and_business_metrics_reach_the_real_service(tmp_path: Path, churn_training: pd.DataFrame) -> None:
    database = tmp_path / "loopwatch.db"
    settings = Settings.from_env({}, home=tmp_path, database=str(database))
    with Workspace(settings) as ws:
        ws.train("churn", churn_training.head(400), target="churned")
        logged = ws.predictor.predict(PredictCall(
            model_name="churn", rows=churn_rows(churn_training, 3), request_id="order-1", timestamp=DAY,
            entity_ids=["c0", "c1", "c2"]))
        assert ws.writer.write(logged).status == "stored"

    with ServiceProcess(str(database)) as service, Client(url=service.url) as client:
        client.log_label(model="churn", request_id="order-1", row_index=0, label=1, label_time="2025-03-05T10:00:00Z")
        client.log_label(model="churn", request_id="order-1", row_index=1, label=0, label_time="2025-03-05T11:00:00Z")
        client.log_label(model="churn", entity_id="c2", label=1, label_time=datetime(2025, 3, 6, tzinfo=UTC))
        client.log_label(model="churn", entity_id="c2", label=1, label_time=datetime(2025, 3, 6, tzinfo=UTC))
        client.log_business_metric(name="revenue", value=1250.0, timestamp=DAY, segment="eu")
        assert client.flush(timeout=30)
        stats = client.stats()
    assert (stats.sent, stats.duplicates, stats.rejected, stats.failed) == (4, 1, 0, 0), stats

    with Workspace(settings) as ws:
        labels = sorted((s.row_index, s.label) for s in ws.store.iter_labels("churn"))
        (revenue,) = ws.store.query_business_metrics(name="revenue")
    assert labels == [(0, 1), (1, 0), (2, 1)]
    assert (revenue.value, revenue.segment, revenue.timestamp) == (1250.0, "eu", DAY)
