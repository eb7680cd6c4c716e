"""Shadow scoring's counts on ``/metrics``: ``loopwatch_shadow_requests_total{outcome=...}``.

The real app on a real SQLite file ("churn" v1 in production, v2 the candidate): served
requests are shadowed by the candidate, and what the scorer counts is what Prometheus reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.service.metrics import ServiceMetrics
from loopwatch.service.shadow import COUNTERS, ShadowScorer
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, workspace_on_copy
from tests.conftest import churn_rows

METRIC = "loopwatch_shadow_requests"


def shadow_counts(text: str) -> dict[str, float]:
    """The outcome -> value samples of the shadow counter in a Prometheus exposition."""
    family = next(f for f in text_string_to_metric_families(text) if f.name == METRIC)
    assert family.type == "counter"
    return {s.labels["outcome"]: s.value for s in family.samples if s.name == METRIC + "_total"}


@pytest.fixture
def http(settings: Settings, trained_template_with_candidate: Path) -> Iterator[TestClient]:
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        assert ws.store.get_aliases("churn") == {"production": 1, "candidate": 2}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_metrics_export_the_shadow_outcomes(http: TestClient, churn_training: pd.DataFrame) -> None:
    before = shadow_counts(http.get("/metrics").text)
    assert before == dict.fromkeys(COUNTERS, 0.0)  # every outcome shows before it happens
    rows = churn_rows(churn_training, 3)
    for i in range(4):
        answer = http.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": f"metered-{i}"})
        assert answer.status_code == 200, answer.text
    state = http.app.state.loopwatch  # type: ignore[attr-defined]
    assert state.shadow.flush(10)
    counts = shadow_counts(http.get("/metrics").text)
    assert counts == {**before, "submitted": 4, "scored": 4, "written": 4}
    assert counts == {k: float(v) for k, v in state.shadow.stats().items() if k != "depth"}
    # a scorer that has stopped drops the work; the request is still answered
    state.shadow.close()
    late = http.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": "after-close"})
    assert late.status_code == 200, late.text
    assert shadow_counts(http.get("/metrics").text)["dropped"] == 1


def test_the_scorer_counts_through_its_hook(
    settings: Settings, trained_template_with_candidate: Path, churn_training: pd.DataFrame
) -> None:
    from loopwatch.application.prediction import PredictCall

    metrics = ServiceMetrics()
    rows = churn_rows(churn_training, 2)
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        logged = [_served(ws, rows, f"hooked-{i}") for i in range(30)]
        refused = ws.predictor.predict(PredictCall(model_name="churn", rows=rows, request_id="x:shadow",
                                                   request_type="shadow"))
        scorer = ShadowScorer(ws.registry, ws.writer, max_queue=1, on_count=metrics.count_shadow)
        try:
            for request in logged:
                scorer.submit(request, rows)
            assert not scorer.submit(refused, rows)  # a shadow is never shadowed, nor counted
            assert scorer.flush(30)
            stats = scorer.stats()
        finally:
            scorer.close()
        counts = shadow_counts(metrics.render()[0].decode())
        assert stats["dropped"] > 0 and stats["submitted"] + stats["dropped"] == 30
        assert counts == {k: float(v) for k, v in stats.items() if k != "depth"}


def test_a_failing_hook_never_reaches_the_caller(
    settings: Settings, trained_template_with_candidate: Path, churn_training: pd.DataFrame
) -> None:
    def broken(outcome: str) -> None:
        raise RuntimeError("metrics backend down")

    rows = churn_rows(churn_training, 2)
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        scorer = ShadowScorer(ws.registry, ws.writer, on_count=broken)
        try:
            assert scorer.submit(_served(ws, rows, "unhooked"), rows)
            assert scorer.flush(10)
            assert scorer.stats()["written"] == 1
        finally:
            scorer.close()


def _served(ws: Workspace, rows: list[dict], request_id: str):  # type: ignore[no-untyped-def,type-arg]
    from loopwatch.application.prediction import PredictCall

    logged = ws.predictor.predict(PredictCall(model_name="churn", rows=rows, request_id=request_id, client_id="web"))
    assert ws.writer.write(logged).status == "stored"
    return logged
