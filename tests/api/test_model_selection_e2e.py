"""Model selection end to end, through ``loopwatch serve`` as its own uvicorn process
(and, below it, the regressions of the bugs that test's review found).

The world: churn v1 learnt the simulator's stable concept. In production the label
rule flips (a customer the old world would keep now churns, and the other way
round), so v1 is clearly worse on every labelled window. The loop closes over HTTP
only: predictions with entity ids, labels by entity id through ``POST /v1/feedback``,
the labelling queue, a retrain on the labelled window, shadow scoring of the
candidate while v1 keeps answering, the gate on a later window, promotion and
rollback.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli import commands_selection
from loopwatch.config import Settings
from loopwatch.demo import ServiceProcess
from loopwatch.errors import InvalidInput
from loopwatch.application.prediction import PredictCall
from loopwatch.records import Label, ModelSettings
from loopwatch.service import create_app
from loopwatch.service.shadow import ShadowScorer
from loopwatch.simulate import TARGET, ChurnScenario
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, wait_for, workspace_on_copy
from tests.conftest import churn_rows

UTC = timezone.utc
#: Event times of the replayed traffic: whole days, far enough back that every label
#: (a day after its prediction) is in the past too.
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=20)
TRAIN = (BASE, BASE + timedelta(days=5))  # labelled (most of it): the retraining window
GATE = (BASE + timedelta(days=5), BASE + timedelta(days=7))  # labelled after the candidate exists
PER_REQUEST = 50
N_TRAIN, N_TRAIN_LABELLED, N_GATE = 700, 500, 400
BUDGET, RANDOM_SHARE = 40, 0.25


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def feature_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = frame.drop(columns=[TARGET])
    return features.astype(object).where(features.notna(), None).to_dict(orient="records")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scenario() -> ChurnScenario:
    return ChurnScenario(seed=5, days=7, predictions_per_day=50)


@pytest.fixture
def service(tmp_path: Path, scenario: ChurnScenario) -> Iterator[ServiceProcess]:
    """``loopwatch serve`` on a database where churn v1 (the stable concept) is in production."""
    database = str(tmp_path / "selection.db")
    with Workspace(Settings.from_env({}, home=tmp_path, database=database)) as ws:
        ws.train("churn", scenario.training_data(n=1500), target=TARGET)
    with ServiceProcess(database, log_path=tmp_path / "serve.log") as running:
        yield running


def send_traffic(http: httpx.Client, frame: pd.DataFrame, *, tag: str, window: tuple[datetime, datetime]) -> list[str]:
    """Predict ``frame`` in requests of PER_REQUEST rows spread over ``window``; entity ids
    ``<tag>-<row>``. Returns the request ids."""
    rows = feature_rows(frame)
    n_requests = -(-len(rows) // PER_REQUEST)
    step = (window[1] - window[0]) / n_requests
    request_ids = []
    for k in range(n_requests):
        part = range(k * PER_REQUEST, min(len(rows), (k + 1) * PER_REQUEST))
        body = {
            "rows": [rows[i] for i in part],
            "entity_ids": [f"{tag}-{i}" for i in part],
            "timestamp": iso(window[0] + k * step),
        }
        answer = http.post(PREDICT, json=body, headers={"X-Request-ID": f"{tag}-{k}", "X-Client-ID": "web"})
        assert answer.status_code == 200, answer.text
        request_ids.append(f"{tag}-{k}")
    return request_ids


def send_flipped_labels(http: httpx.Client, frame: pd.DataFrame, *, tag: str, moment: datetime) -> None:
    """Label rows by entity id with the flipped concept: 1 - the stable world's outcome."""
    labels = [
        {"entity_id": f"{tag}-{i}", "label": int(1 - y), "label_time": iso(moment)}
        for i, y in enumerate(frame[TARGET].tolist())
    ]
    answer = http.post("/v1/feedback", json={"model": "churn", "labels": labels}, headers={"X-Client-ID": "crm"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == len(labels) and answer.json()["unmatched"] == 0


def events(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event the logs API returns for ``params``, across pages."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = http.get("/v1/logs", params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        found += page.json()["events"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def aliases(http: httpx.Client) -> dict[str, int]:
    answer = http.get("/v1/models/churn")
    assert answer.status_code == 200, answer.text
    return answer.json()["aliases"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_label_retrain_shadow_gate_promote_and_roll_back(service: ServiceProcess, scenario: ChurnScenario) -> None:
    train_frame = ChurnScenario(seed=6, days=7, predictions_per_day=50).training_data(n=N_TRAIN)
    gate_frame = ChurnScenario(seed=7, days=7, predictions_per_day=50).training_data(n=N_GATE)
    probe = feature_rows(gate_frame.head(20))
    with httpx.Client(base_url=service.url, timeout=60.0) as http:
        # --- production traffic, labelled later under the flipped concept -----------------
        send_traffic(http, train_frame, tag="train", window=TRAIN)
        send_flipped_labels(http, train_frame.head(N_TRAIN_LABELLED), tag="train", moment=TRAIN[1])
        before = http.post(PREDICT, json={"rows": probe}, headers={"X-Request-ID": "probe-before"})
        assert before.status_code == 200 and before.json()["version"] == 1

        # --- the labelling queue: the budget, the random share, no labelled row -------------
        query = {"budget": BUDGET, "random_share": RANDOM_SHARE, "since": iso(TRAIN[0]), "until": iso(TRAIN[1])}
        answer = http.get("/v1/models/churn/labelling-queue", params=query)
        assert answer.status_code == 200, answer.text
        queue = answer.json()
        items = queue["items"]
        assert len(items) == BUDGET and queue["n_random"] == round(BUDGET * RANDOM_SHARE)
        assert sum(item["random"] for item in items) == queue["n_random"]
        assert all(item["reasons"] == ["random"] for item in items if item["random"])
        assert len({(item["request_id"], item["row_index"]) for item in items}) == BUDGET
        unlabelled = {f"train-{i}" for i in range(N_TRAIN_LABELLED, N_TRAIN)}
        assert {item["entity_id"] for item in items} <= unlabelled
        as_csv = http.get("/v1/models/churn/labelling-queue", params={**query, "format": "csv"})
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [(r["request_id"], int(r["row_index"]), r["random"] == "true") for r in table] == [
            (item["request_id"], item["row_index"], item["random"]) for item in items
        ]

        # --- retrain on the labelled window -> the candidate -------------------------------
        retrain = http.post(
            "/v1/models/churn/retrain",
            json={"since": iso(TRAIN[0]), "until": iso(TRAIN[1]), "include_reference": False},
        )
        assert retrain.status_code == 201, retrain.text
        result = retrain.json()
        assert result["from_version"] == 1 and result["rows_window"] == N_TRAIN_LABELLED
        # the poisoning screens set aside a few honest rows on purpose (their false-positive rate)
        assert result["rows_quarantined"] <= 0.05 * N_TRAIN_LABELLED
        assert result["rows_used"] == N_TRAIN_LABELLED - result["rows_quarantined"]
        candidate = result["version"]
        assert aliases(http) == {"production": 1, "candidate": candidate}

        # --- the caller still gets v1, byte for byte; the candidate scores in the shadow -----
        after = http.post(PREDICT, json={"rows": probe}, headers={"X-Request-ID": "probe-after"})
        assert after.status_code == 200
        assert after.content == before.content.replace(b'"probe-before"', b'"probe-after"')
        gate_requests = send_traffic(http, gate_frame, tag="gate", window=GATE)
        for request_id in ("probe-after", gate_requests[-1]):
            served = events(http, request_id=request_id)
            shadow = wait_for(lambda rid=request_id: events(http, request_id=f"{rid}:shadow"), timeout=30)
            assert len(shadow) == len(served) and {e["model_version"] for e in served} == {1}
            assert {e["request_type"] for e in shadow} == {"shadow"}
            assert {e["model_version"] for e in shadow} == {candidate}
            assert {e["entity_id"] for e in shadow} == {None}
            assert [e["timestamp"] for e in shadow] == [e["timestamp"] for e in served]
        assert not events(http, request_id="probe-before:shadow")  # no candidate existed then
        wait_for(
            lambda: len(events(http, model="churn", request_type="shadow", since=iso(GATE[0]), until=iso(GATE[1])))
            == N_GATE,
            timeout=30,
        )

        # --- the gate on the later labelled window, then promotion and rollback -------------
        send_flipped_labels(http, gate_frame, tag="gate", moment=GATE[1])
        overlapping = http.post("/v1/models/churn/gate", json={"since": iso(TRAIN[0]), "until": iso(GATE[1])})
        assert overlapping.status_code == 422, overlapping.text
        gate = http.post(
            "/v1/models/churn/gate",
            json={"since": iso(GATE[0]), "until": iso(GATE[1]), "latency_budget_ms": 10_000, "promote": True},
        )
        assert gate.status_code == 200, gate.text
        decision, promoted = gate.json()["decision"], gate.json()["promoted"]
        assert decision["passed"] and decision["n"] == N_GATE and decision["ci_low"] > 0
        assert decision["candidate"] > decision["production"] + 0.2
        assert decision["latency_source"] == "shadow" and decision["latency_ms_candidate"] is not None
        assert (decision["production_version"], decision["candidate_version"]) == (1, candidate)
        assert promoted["alias"] == "production" and promoted["version"] == candidate
        assert promoted["previous_version"] == 1 and aliases(http)["production"] == candidate
        assert http.post(PREDICT, json={"rows": probe}).json()["version"] == candidate

        rollback = http.post("/v1/models/churn/rollback")
        assert rollback.status_code == 200, rollback.text
        assert rollback.json()["version"] == 1 and aliases(http)["production"] == 1
        again = http.post(PREDICT, json={"rows": probe}, headers={"X-Request-ID": "probe-again"})
        assert again.content == before.content.replace(b'"probe-before"', b'"probe-again"')
        # the candidate alias still names the new version: it is shadowed again
        assert wait_for(lambda: events(http, request_id="probe-again:shadow"), timeout=30)[0]["model_version"] == candidate


# --- regressions ---------------------------------------------------------------------------


def test_a_shadow_whose_request_id_a_client_already_used_counts_as_failed(
    settings: Settings, trained_template_with_candidate: Path, churn_training: pd.DataFrame
) -> None:
    """The writer answers a clash with a "conflict" outcome, not an exception: the shadow
    wrote nothing and must not be counted as written."""
    rows = churn_rows(churn_training, 3)
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        for request_id in ("abc:shadow", "abc"):
            call = PredictCall(model_name="churn", rows=rows, request_id=request_id, client_id="web")
            assert ws.writer.write(ws.predictor.predict(call)).status == "stored"
        served = ws.predictor.predict(PredictCall(model_name="churn", rows=rows, request_id="abc", client_id="web"))
        scorer = ShadowScorer(ws.registry, ws.writer)
        try:
            assert scorer.submit(served, rows) and scorer.flush(10)
            stats = scorer.stats()
        finally:
            scorer.close()
        assert (stats["scored"], stats["written"], stats["failed"]) == (1, 0, 1)
        taken = ws.store.query_events(EventQuery(request_id="abc:shadow")).events
        assert {e.request_type for e in taken} == {"api"} and {e.model_version for e in taken} == {1}


def test_selection_bodies_are_strict(settings: Settings, trained_template_with_candidate: Path) -> None:
    """Lax parsing made "yes" a true `promote` (production moved) and "100" a count."""
    for ws in workspace_on_copy(trained_template_with_candidate, settings):
        with TestClient(create_app(settings), raise_server_exceptions=False) as http:
            for body in ({"promote": "yes"}, {"promote": 1}, {"n_boot": "100"}, {"n_boot": 100.0}, {"seed": "1"}):
                assert_error(http.post("/v1/models/churn/gate", json=body), 422, "invalid_input")
            for body in ({"include_reference": "yes"}, {"min_rows": 200.0}, {"seed": True}):
                assert_error(http.post("/v1/models/churn/retrain", json=body), 422, "invalid_input")
        assert ws.store.get_aliases("churn") == {"production": 1, "candidate": 2}


@pytest.fixture
def few_labels(settings: Settings, trained_template: Path, churn_training: pd.DataFrame) -> Iterator[Workspace]:
    """churn v1 and three windows: 20 labelled rows with a single positive label (day 0),
    15 labelled rows whose inputs were not logged (day 1), 10 unlabelled rows (day 2)."""
    day0 = datetime(2026, 6, 1, tzinfo=UTC)
    for ws in workspace_on_copy(trained_template, settings):
        rows = churn_rows(churn_training, 20)
        for day, n, labels in ((0, 20, [1] + [0] * 19), (1, 15, [0, 1] * 7 + [0]), (2, 10, None)):
            if day == 1:
                ws.registry.update_settings("churn", ModelSettings(log_data=False))
            call = PredictCall(model_name="churn", rows=rows[:n], request_id=f"day{day}", client_id="web",
                               timestamp=day0 + timedelta(days=day))
            assert ws.writer.write(ws.predictor.predict(call)).status == "stored"
            if labels:
                ws.store.write_labels([
                    Label(model_name="churn", label=y, label_time=day0 + timedelta(days=day + 1),
                          request_id=f"day{day}", row_index=i, client_id="crm") for i, y in enumerate(labels)
                ])
        ws.registry.update_settings("churn", ModelSettings(log_data=True))
        yield ws


def test_retraining_refusals_are_clear_errors(few_labels: Workspace) -> None:
    """scikit-learn refusing the window (the lone positive row split off into the holdout
    leaves one class to fit) was a traceback in the CLI; now it is an InvalidInput."""
    day0 = datetime(2026, 6, 1, tzinfo=UTC)
    refused = None
    for seed in range(40):
        try:
            few_labels.retrain("churn", since=day0, until=day0 + timedelta(days=1), include_reference=False,
                               min_rows=10, seed=seed)
        except InvalidInput as exc:
            refused = exc
            break
    assert refused is not None and "cannot train on the labelled window" in refused.message
    with pytest.raises(InvalidInput, match="15 more have no logged inputs"):
        few_labels.retrain("churn", since=day0 + timedelta(days=1), until=day0 + timedelta(days=2), min_rows=10)


def test_label_queue_out_file_gets_data_not_a_drawn_table(few_labels: Workspace, tmp_path: Path) -> None:
    where = ["--database", few_labels.settings.database_url, "--since", "2026-06-03T00:00:00Z"]
    runner = CliRunner()
    for name in ("queue.csv", "queue.json"):
        out = tmp_path / name
        result = runner.invoke(commands_selection.label_queue, ["churn", "--budget", "4", "--out", str(out), *where])
        assert result.exit_code == 0, result.output
        if name.endswith(".csv"):
            table = list(csv.DictReader(io.StringIO(out.read_text())))
            assert [r["request_id"] for r in table] == ["day2"] * 4
        else:
            items = json.loads(out.read_text())
            assert len(items) == 4 and sum(item["random"] for item in items) == 1
