"""Shadow scoring with a real registry, a real SQLite store and the real group-commit
writer: the candidate's predictions are logged beside production's, never returned,
and never slow or fail the caller."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.features import validate_rows
from loopwatch.application.prediction import PredictCall
from loopwatch.records import Label, LoggedRequest
from loopwatch.application.retraining import compare_on_window
from loopwatch.service.shadow import ShadowScorer
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.api.helpers import workspace_on_copy
from tests.conftest import churn_rows


@pytest.fixture
def ws(settings: Settings, trained_template_with_candidate: Path) -> Iterator[Workspace]:
    """"churn" v1 in production and v2 as the candidate."""
    for workspace in workspace_on_copy(trained_template_with_candidate, settings):
        assert workspace.store.get_aliases("churn") == {"production": 1, "candidate": 2}
        yield workspace


@pytest.fixture
def scorer(ws: Workspace) -> Iterator[ShadowScorer]:
    shadow = ShadowScorer(ws.registry, ws.writer, max_queue=100)
    yield shadow
    shadow.close()


def served(ws: Workspace, rows: list[dict], request_id: str, **call: object) -> LoggedRequest:
    """Predict as the service does and commit the events; the logged request."""
    logged = ws.predictor.predict(
        PredictCall(model_name="churn", rows=rows, request_id=request_id, client_id="web", **call)  # type: ignore[arg-type]
    )
    assert ws.writer.write(logged).status == "stored"
    return logged


def events(ws: Workspace, request_id: str) -> list:  # type: ignore[type-arg]
    return ws.store.query_events(EventQuery(request_id=request_id)).events


def test_the_candidate_scores_each_served_request_in_the_shadow(
    ws: Workspace, scorer: ShadowScorer, churn_training: pd.DataFrame
) -> None:
    rows = churn_rows(churn_training, 7)
    logged = served(ws, rows, "req-1")
    before = [e.to_dict() for e in events(ws, "req-1")]
    assert scorer.submit(logged, rows, client_version="1.2")
    assert scorer.flush(10)
    shadow = events(ws, "req-1:shadow")
    assert [e.row_index for e in shadow] == list(range(7))
    assert {e.request_type for e in shadow} == {"shadow"} and {e.model_version for e in shadow} == {2}
    assert [e.timestamp for e in shadow] == [e.timestamp for e in events(ws, "req-1")]
    assert {e.client_id for e in shadow} == {"web"} and {e.entity_id for e in shadow} == {None}
    assert ws.store.get_fingerprint(shadow[0].fingerprint_id).client_version == "1.2"
    # what v2 predicts for these rows, computed independently of the scorer
    v2 = ws.registry.load("churn", 2)
    proba = v2.pipeline.predict_proba(validate_rows(v2.version.schema, rows).frame)
    np.testing.assert_allclose([e.probability for e in shadow], proba)
    assert [e.prediction[0] for e in shadow] == [v2.pipeline.classes_[i].item() for i in proba.argmax(axis=1)]
    # the served events and the stored answer are untouched
    assert [e.to_dict() for e in events(ws, "req-1")] == before
    assert ws.store.get_request("req-1").response == logged.response
    assert scorer.stats() | {"depth": 0} == {
        "submitted": 1, "dropped": 0, "skipped": 0, "scored": 1, "written": 1, "failed": 0, "depth": 0
    }


def test_replayed_event_times_are_kept(ws: Workspace, scorer: ShadowScorer, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 3)
    moments = [datetime(2026, 1, 5, 10, i, tzinfo=timezone.utc) for i in range(3)]
    logged = served(ws, rows, "old-1", timestamps=moments, request_type="replay")
    scorer.submit(logged, rows)
    assert scorer.flush(10)
    shadow = events(ws, "old-1:shadow")
    assert [e.timestamp for e in shadow] == moments and all(e.replayed for e in shadow)


def test_no_candidate_or_the_candidate_serving_means_no_shadow(
    ws: Workspace, scorer: ShadowScorer, churn_training: pd.DataFrame
) -> None:
    rows = churn_rows(churn_training, 2)
    ws.registry.set_alias("churn", "candidate", 1, reason="test")  # the candidate is the version serving
    time.sleep(0.01)
    logged = served(ws, rows, "by-v1")
    assert logged.model_version == 1
    scorer.submit(logged, rows)
    assert scorer.flush(10)
    # promoting the candidate clears the alias: production's answers are not shadowed by themselves
    ws.registry.set_alias("churn", "candidate", 2, reason="test")
    ws.registry.promote("churn")
    assert ws.registry.aliases("churn", fresh=True) == {"production": 2}
    time.sleep(0.01)
    scorer.submit(served(ws, rows, "no-candidate"), rows)
    assert scorer.flush(10)
    assert events(ws, "by-v1:shadow") == [] and events(ws, "no-candidate:shadow") == []
    assert scorer.stats()["skipped"] == 2 and scorer.stats()["written"] == 0


def test_a_full_queue_drops_shadow_work_without_blocking(ws: Workspace, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 20)
    logged = [served(ws, rows, f"burst-{i}") for i in range(60)]
    scorer = ShadowScorer(ws.registry, ws.writer, max_queue=2)
    try:
        waits = []
        for request in logged:
            started = time.perf_counter()
            scorer.submit(request, rows)
            waits.append(time.perf_counter() - started)
        assert scorer.flush(30)
        stats = scorer.stats()
    finally:
        scorer.close()
    assert max(waits) < 0.05  # never waits for the scorer (a prediction takes milliseconds)
    assert stats["dropped"] > 0 and stats["submitted"] + stats["dropped"] == 60
    shadowed = sum(bool(events(ws, f"burst-{i}:shadow")) for i in range(60))
    assert shadowed == stats["written"] == stats["submitted"]


def test_failures_are_counted_and_the_thread_carries_on(
    ws: Workspace, scorer: ShadowScorer, churn_training: pd.DataFrame
) -> None:
    rows = churn_rows(churn_training, 2)
    logged = served(ws, rows, "good-1")
    scorer.submit(logged, [{"nonsense": 1}])  # rows the candidate refuses
    scorer.submit(logged, rows)
    assert scorer.submit(logged, rows)  # a retry of the same shadow: stored once
    shadow_of_shadow = ws.predictor.predict(
        PredictCall(model_name="churn", rows=rows, request_id="s:shadow", request_type="shadow")
    )
    assert not scorer.submit(shadow_of_shadow, rows)
    assert scorer.flush(10)
    stats = scorer.stats()
    assert (stats["failed"], stats["scored"], stats["written"]) == (1, 2, 2)
    assert len(events(ws, "good-1:shadow")) == 2


def test_close_drains_then_refuses(ws: Workspace, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 3)
    logged = [served(ws, rows, f"drain-{i}") for i in range(5)]
    scorer = ShadowScorer(ws.registry, ws.writer)
    for request in logged:
        scorer.submit(request, rows)
    scorer.close()
    assert all(events(ws, f"drain-{i}:shadow") for i in range(5))
    assert not scorer.submit(logged[0], rows) and scorer.stats()["dropped"] == 1
    scorer.close()  # twice is harmless


def test_a_closed_writer_drops_the_shadow(ws: Workspace, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 2)
    logged = served(ws, rows, "late")
    scorer = ShadowScorer(ws.registry, ws.writer)
    ws.writer.close()
    scorer.submit(logged, rows)
    scorer.close()
    assert scorer.stats()["dropped"] == 1 and events(ws, "late:shadow") == []


def test_the_gate_reads_the_candidates_latency_from_its_shadow(
    ws: Workspace, scorer: ShadowScorer, churn_training: pd.DataFrame
) -> None:
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    labels = []
    for k in range(20):
        rows = churn_rows(churn_training.iloc[k * 10 :], 10)
        logged = served(ws, rows, f"lab-{k}", timestamp=start + timedelta(hours=k))
        scorer.submit(logged, rows)
        truth = churn_training["churned"].iloc[k * 10 : k * 10 + 10].tolist()
        labels += [Label(model_name="churn", label=y, label_time=start + timedelta(days=2), request_id=f"lab-{k}",
                         row_index=i) for i, y in enumerate(truth)]
    assert {o.status for o in ws.store.write_labels(labels)} == {"stored"}
    assert scorer.flush(30)
    decision = compare_on_window(ws.store, ws.registry, "churn", since=start, until=start + timedelta(days=1),
                                 latency_budget_ms=1e6, n_boot=200)
    shadow_runtimes = [events(ws, f"lab-{k}:shadow")[0].runtime_ms for k in range(20)]
    assert decision.latency_source == "shadow" and decision.n == 200
    assert decision.latency_ms_candidate == pytest.approx(np.percentile(shadow_runtimes, 95))
    assert decision.candidate_version == 2 and decision.production_version == 1


def test_label_coverage_counts_the_served_predictions_not_their_shadows(
    settings: Settings, trained_template_with_candidate: Path, churn_training: pd.DataFrame
) -> None:
    """Every served prediction labelled is full coverage, whatever the candidate scored beside it."""
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app
    from tests.api.helpers import PREDICT

    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        assert ws.store.get_aliases("churn")["candidate"] == 2
    rows = churn_rows(churn_training, 4)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for i in range(3):
            assert http.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": f"cov-{i}"}).status_code == 200
        assert http.app.state.loopwatch.shadow.flush(10)  # type: ignore[attr-defined]
        shadows = http.get("/v1/logs", params={"request_type": "shadow"}).json()["events"]
        assert len(shadows) == 12  # the candidate did score every row
        labels = [{"request_id": f"cov-{i}", "row_index": r, "label": 1,
                   "label_time": datetime.now(timezone.utc).isoformat()} for i in range(3) for r in range(4)]
        stored = http.post("/v1/feedback", json={"model": "churn", "labels": labels})
        assert stored.status_code == 200 and stored.json()["stored"] == 12, stored.text
        coverage = http.get("/v1/models/churn/labels/coverage", params={"window": "1d"}).json()
    assert (coverage["predictions"], coverage["labelled"], coverage["coverage"]) == (12, 12, 1.0)
