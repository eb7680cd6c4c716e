"""Retraining on labelled production data, the gate on later labels, and the labelling
queue, over a real SQLite store.

The world: v1 learnt an old concept (y follows x1). In production the concept changes
(y follows x2) for a week, and then reverts. Labels arrive for each prediction, ten of
them not a class at all. A last, unlabelled period brings novel rows and a plan that
floods in.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli import commands_selection
from loopwatch.errors import Conflict, InvalidInput, NotFound
from loopwatch.application.prediction import PredictCall
from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.poisoning.screening import screen_training_data
from loopwatch.records import Label
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.service import create_app
from loopwatch.service.routers import selection
from loopwatch.application.labelling_queue import labelling_candidates
from loopwatch.application.retraining import WINDOW_COLUMNS, RetrainResult, labelled_window
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.conftest import fast_settings
from tests.api.helpers import copy_database

UTC = timezone.utc
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
TRAIN = (DAY0, DAY0 + timedelta(days=5))  # new concept, labelled: the retraining window
LATER = (DAY0 + timedelta(days=5), DAY0 + timedelta(days=7))  # new concept, labelled
REVERTED = (DAY0 + timedelta(days=7), DAY0 + timedelta(days=9))  # old concept again, labelled
UNLABELLED = (DAY0 + timedelta(days=9), DAY0 + timedelta(days=10))
N_NOT_A_CLASS = 10


def world(n: int, *, seed: int, concept: str, plans: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    driver = x1 if concept == "old" else x2
    y = (driver + rng.normal(0, 0.2, n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "plan": rng.choice(["a", "b", "c"], n, p=plans), "y": y})


def log_period(ws: Workspace, frame: pd.DataFrame, start: datetime, days: int, *, label: bool, tag: str) -> None:
    """Predict ``frame`` in requests of 50 spread over ``days``, then label every row."""
    labels = []
    records = frame.drop(columns=["y"]).to_dict(orient="records")
    step = timedelta(days=days) / max(1, len(records) // 50)
    for k, first in enumerate(range(0, len(records), 50)):
        moment = start + k * step
        logged = ws.predictor.predict(
            PredictCall(model_name="m", rows=records[first : first + 50], request_id=f"{tag}-{k}",
                        client_id="web", request_type="api", timestamp=moment)
        )
        assert ws.writer.write(logged).status == "stored"
        for i in range(logged.n_rows):
            labels.append(Label(model_name="m", label=int(frame["y"].iloc[first + i]), label_time=moment + timedelta(days=1),
                                request_id=logged.request_id, row_index=i, client_id="crm"))
    if label:
        outcomes = ws.store.write_labels(labels)
        assert {o.status for o in outcomes} == {"stored"}



@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("retraining") / "loopwatch.db"
    with Workspace(fast_settings(path)) as ws:
        ws.train("m", world(1500, seed=0, concept="old"), target="y")
        log_period(ws, world(1500, seed=1, concept="new"), TRAIN[0], 5, label=True, tag="train")
        wrong = [Label(model_name="m", label="maybe", label_time=TRAIN[0] + timedelta(days=6),
                       request_id="train-3", row_index=i, client_id="crm") for i in range(N_NOT_A_CLASS)]
        assert {o.status for o in ws.store.write_labels(wrong)} == {"corrected"}
        log_period(ws, world(1000, seed=2, concept="new"), LATER[0], 2, label=True, tag="later")
        log_period(ws, world(1000, seed=3, concept="old"), REVERTED[0], 2, label=True, tag="reverted")
        unlabelled = world(400, seed=4, concept="old", plans=(0.1, 0.1, 0.8))
        unlabelled.loc[:19, ["x1", "x2"]] = 9.0  # far outside anything v1 saw
        log_period(ws, unlabelled, UNLABELLED[0], 1, label=False, tag="new")
    return path


@pytest.fixture(scope="module")
def retrained(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RetrainResult]:
    """The template plus v2, the candidate retrained on the new concept's labelled week."""
    path = tmp_path_factory.mktemp("retrained") / "loopwatch.db"
    copy_database(template, path)
    with Workspace(fast_settings(path)) as ws:
        result = ws.retrain("m", since=TRAIN[0], until=TRAIN[1], include_reference=False)
    return path, result


def opened(template: Path, tmp_path: Path) -> Iterator[Workspace]:
    path = tmp_path / "loopwatch.db"
    copy_database(template, path)
    with Workspace(fast_settings(path)) as workspace:
        yield workspace


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Iterator[Workspace]:
    """v1 in production, every period logged."""
    yield from opened(template, tmp_path)


@pytest.fixture
def ws2(retrained: tuple[Path, RetrainResult], tmp_path: Path) -> Iterator[Workspace]:
    """As ``ws``, plus the retrained candidate v2."""
    yield from opened(retrained[0], tmp_path)


def test_the_labelled_window_joins_events_with_their_labels(ws: Workspace) -> None:
    frame = labelled_window(ws.store, ws.registry, "m", since=LATER[0], until=LATER[1])
    assert len(frame) == 1000
    assert list(frame.columns) == ["x1", "x2", "plan", *WINDOW_COLUMNS]
    assert set(frame["label_source"]) == {"crm"} and set(frame["request_type"]) == {"api"}
    assert frame["has_data"].all() and set(frame["model_version"]) == {1}
    assert (frame["label_time"] - frame["timestamp"] == pd.Timedelta(days=1)).all()
    # the inputs are what was sent: the label follows x2 in this period
    assert ((frame["x2"] > 0).astype(int) == frame["label"]).mean() > 0.9
    assert labelled_window(ws.store, ws.registry, "m", since=UNLABELLED[0]).empty


def test_a_retrained_candidate_beats_production_after_the_concept_changed(
    ws2: Workspace, retrained: tuple[Path, RetrainResult]
) -> None:
    ws, result = ws2, retrained[1]
    assert (result.version, result.from_version) == (2, 1)
    assert ws.registry.aliases("m", fresh=True) == {"production": 1, "candidate": 2}
    # the certain check sets aside every label that is not a class; the poisoning screens also
    # set aside a small share of honest rows on purpose (their stated false-positive rate)
    assert result.rows_window == 1500 and result.rows_quarantined >= N_NOT_A_CLASS
    assert result.screening["reasons"]["label_not_a_class"] == N_NOT_A_CLASS
    assert result.rows_quarantined - N_NOT_A_CLASS <= 0.05 * 1500
    assert result.rows_used == 1500 - result.rows_quarantined and result.rows_reference == 0
    assert result.metrics["accuracy"] > 0.9
    version = ws.registry.resolve("m", 2)
    assert version.params["retrained"]["from_version"] == 1 and version.schema.classes == (0, 1)

    decision, change = ws.gate("m", since=LATER[0], until=LATER[1], seed=0)
    assert decision.passed and change is None
    assert (decision.production_version, decision.candidate_version, decision.n) == (1, 2, 1000)
    assert decision.candidate > decision.production + 0.3 and decision.ci_low > 0.3
    # no shadow runtimes and no budget: production's served latency only, nothing timed
    assert decision.latency_source is None and decision.latency_ms_candidate is None
    assert decision.latency_ms_production > 0
    assert ws.registry.aliases("m", fresh=True)["production"] == 1

    promoted, change = ws.gate("m", since=LATER[0], until=LATER[1], promote=True)
    assert promoted.passed and change is not None and change.reason == "gate"
    assert (change.previous_version, change.version) == (1, 2)
    assert ws.registry.aliases("m", fresh=True)["production"] == 2


def test_the_gate_refuses_a_candidate_when_the_concept_reverts(ws2: Workspace) -> None:
    ws = ws2
    decision, change = ws.gate("m", since=REVERTED[0], until=REVERTED[1], promote=True)
    assert not decision.passed and change is None
    assert decision.ci_high < 0
    assert ws.registry.aliases("m", fresh=True) == {"production": 1, "candidate": 2}
    for metric in ("roc_auc", "log_loss", "f1"):
        assert not ws.gate("m", since=REVERTED[0], until=REVERTED[1], metric=metric, n_boot=200)[0].passed
        assert ws.gate("m", since=LATER[0], until=LATER[1], metric=metric, n_boot=200)[0].passed


def test_a_latency_budget_the_candidate_cannot_meet_fails_the_gate(ws2: Workspace) -> None:
    decision, _ = ws2.gate("m", since=LATER[0], until=LATER[1], latency_budget_ms=0.001, n_boot=200)
    assert not decision.passed and decision.latency_ms_candidate > 0.001
    assert decision.latency_source == "offline" and decision.candidate > decision.production
    assert "over the budget" in decision.reasons[-1]


def test_retraining_and_gating_refuse_what_cannot_be_trusted(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="usable labelled rows"):
        ws.retrain("m", since=UNLABELLED[0], until=UNLABELLED[1])
    with pytest.raises(InvalidInput, match="at least 5000"):
        ws.retrain("m", since=TRAIN[0], until=TRAIN[1], min_rows=5000)
    with pytest.raises(NotFound, match="no candidate"):
        ws.gate("m", since=LATER[0], until=LATER[1])


def test_the_gate_refuses_windows_it_cannot_judge(ws2: Workspace) -> None:
    with pytest.raises(InvalidInput, match="overlaps"):
        ws2.gate("m", since=TRAIN[0] + timedelta(days=4), until=LATER[1])
    with pytest.raises(InvalidInput, match="fewer than two"):
        ws2.gate("m", since=UNLABELLED[0], until=UNLABELLED[1])
    with pytest.raises(Conflict):
        ws2.gate("m", since=LATER[0], until=LATER[1], candidate=1)


def test_an_overlapping_gate_window_names_both_windows_and_the_way_out(ws2: Workspace) -> None:
    """The README once retrained from a day on and gated from a later day: the gate would have
    scored the candidate on its own training rows. It is refused, and the message says how to
    choose a window that is not."""
    trained = f"{_iso(TRAIN[0])} to {_iso(TRAIN[1])}"
    with pytest.raises(InvalidInput) as refused:
        ws2.gate("m", since=TRAIN[0] + timedelta(days=4))
    message = str(refused.value)
    assert f"the gate window ({_iso(TRAIN[0] + timedelta(days=4))} to the end)" in message
    assert f"version 2 was trained on ({trained})" in message
    assert f"since {_iso(TRAIN[1])} or later" in message
    assert refused.value.detail["training_window"] == {"since": _iso(TRAIN[0]), "until": _iso(TRAIN[1])}
    with pytest.raises(InvalidInput, match=r"\(the start to .*\) overlaps"):
        ws2.gate("m", until=TRAIN[0] + timedelta(seconds=1))
    # the window right after the training window shares no prediction with it: judged, not refused
    assert ws2.gate("m", since=TRAIN[1], until=LATER[1], n_boot=100)[0].candidate_version == 2
    where = ["--home", str(ws2.settings.home), "--database", ws2.settings.database_url]
    cli = CliRunner().invoke(commands_selection.gate, ["m", "--since", _iso(TRAIN[0]), *where])
    assert cli.exit_code == 2 and "overlaps" in cli.output and "Traceback" not in cli.output


def test_an_open_ended_training_window_leaves_no_gate_window_and_says_so(ws: Workspace) -> None:
    ws.retrain("m", since=LATER[0], include_reference=False)  # to the end: every later label is training
    with pytest.raises(InvalidInput, match=r"to the end\): .*retrain with an end \(until T\)"):
        ws.gate("m", since=REVERTED[0])
    # before the training window is fine: those predictions were not trained on
    assert ws.gate("m", since=TRAIN[0], until=LATER[0], n_boot=100)[0].candidate_version == 2


def test_the_labelling_queue_picks_unlabelled_novel_and_drifted_rows(ws: Workspace) -> None:
    candidates = labelling_candidates(ws.store, ws.registry, "m")
    # every unlabelled prediction and only those: the periods before were labelled in full
    assert len(candidates) == 400 and set(candidates["request_id"].str[:4]) == {"new-"}
    novel = candidates["request_id"].eq("new-0") & candidates["row_index"].lt(20)
    assert candidates.loc[novel, "novelty"].min() >= 0.99
    assert candidates.loc[~novel, "novelty"].median() < 0.9
    plans = ws.store.query_events(EventQuery(model_name="m", since=UNLABELLED[0], limit=1000)).events
    plan_of = {(e.request_id, e.row_index): e.data["plan"] for e in plans}
    flooded = np.array([plan_of[k] == "c" for k in zip(candidates["request_id"], candidates["row_index"])])
    assert candidates.loc[flooded, "drifted_segment"].mean() > 0.9
    assert candidates.loc[~flooded, "drifted_segment"].mean() < 0.5
    uncertainty = candidates["uncertainty"]
    assert uncertainty.between(0, 1).all() and uncertainty.std() > 0.1

    items = ws.labelling_queue("m", budget=40, random_share=0.25, seed=1)
    assert len(items) == 40 and sum(i.random for i in items) == 10
    by_key = candidates.set_index(["request_id", "row_index"])
    score = [by_key.loc[(i.request_id, i.row_index), "uncertainty"] for i in items]
    assert np.mean(score[10:]) > np.mean(score[:10])  # informative picks are the less certain ones
    assert all(set(i.reasons) & {"uncertain", "novel", "drifted_segment"} for i in items[10:])
    # weighing novelty alone, the novel rows come first
    by_novelty = ws.labelling_queue("m", budget=30, random_share=0.0, weights={"uncertainty": 0, "drifted_segment": 0})
    assert {(i.request_id, i.row_index) for i in by_novelty[:20]} == {("new-0", r) for r in range(20)}
    assert all(i.reasons[:1] == ["novel"] for i in by_novelty[:20])
    assert {(i.request_id, i.row_index) for i in items} <= set(zip(candidates["request_id"], candidates["row_index"]))
    assert [i.to_dict() for i in items] == [i.to_dict() for i in ws.labelling_queue("m", budget=40, random_share=0.25, seed=1)]


# --- over HTTP and the command line ---------------------------------------------------------


@pytest.fixture
def http(ws2: Workspace) -> Iterator[TestClient]:
    """The service on ``ws2``'s database, with the selection routes mounted."""
    app = create_app(ws2.settings)
    app.include_router(selection.router, prefix="/v1")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_routes(http: TestClient) -> None:
    queue = http.get("/v1/models/m/labelling-queue", params={"budget": 10, "since": _iso(UNLABELLED[0])})
    assert queue.status_code == 200, queue.text
    body = queue.json()
    assert len(body["items"]) == 10 and body["n_random"] == 2
    assert set(body["items"][0]) == {"request_id", "row_index", "entity_id", "score", "reasons", "random"}
    exported = http.get("/v1/models/m/labelling-queue", params={"budget": 10, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "request_id,row_index,entity_id,score,random,reasons" and len(lines) == 11

    gate = http.post("/v1/models/m/gate", json={"since": _iso(LATER[0]), "until": _iso(LATER[1]), "n_boot": 200,
                                                 "promote": True})
    assert gate.status_code == 200, gate.text
    assert gate.json()["decision"]["passed"] and gate.json()["promoted"]["version"] == 2

    retrain = http.post("/v1/models/m/retrain", json={"since": _iso(TRAIN[0]), "until": _iso(TRAIN[1])})
    assert retrain.status_code == 201, retrain.text
    result = retrain.json()
    # v2 is production now: v3 starts from it, with v2's reference sample (the retraining rows)
    assert (result["version"], result["from_version"]) == (3, 2)
    used_before = 1500 - N_NOT_A_CLASS - 0.05 * 1500
    assert used_before <= result["rows_reference"] <= 1500 - N_NOT_A_CLASS
    assert result["rows_used"] == result["rows_reference"] + (1500 - result["rows_quarantined"])


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("get", "/v1/models/m/labelling-queue?since=2026-03-02T00:00:00", None, 422),
        ("get", "/v1/models/m/labelling-queue?budget=-1", None, 422),
        ("get", "/v1/models/m/labelling-queue?format=xml", None, 422),
        ("get", "/v1/models/nobody/labelling-queue", None, 404),
        ("post", "/v1/models/m/gate", {"margin": "0.5"}, 422),
        ("post", "/v1/models/m/gate", b'{"margin": 1e999}', 422),
        ("post", "/v1/models/m/gate", b'{"margin": NaN}', 422),
        ("post", "/v1/models/m/gate", {"metric": "precision"}, 422),
        ("post", "/v1/models/m/gate", {"surprise": 1}, 422),
        ("post", "/v1/models/m/gate", {"since": "2026-03-07T00:00:00Z", "latency_budget_ms": 0}, 422),
        ("post", "/v1/models/m/gate", {"since": "2026-03-02T00:00:00Z"}, 422),  # overlaps v2's training
        ("post", "/v1/models/m/gate", {"since": "2026-03-07T00:00:00Z", "candidate": 1}, 409),
        ("post", "/v1/models/nobody/gate", {}, 404),
        ("post", "/v1/models/m/retrain", {"since": "2026-03-11T00:00:00Z"}, 422),
        ("post", "/v1/models/m/retrain", {"estimator": "magic", "since": "2026-03-02T00:00:00Z"}, 422),
    ],
)
def test_bad_requests_get_the_one_error_shape(
    http: TestClient, method: str, path: str, payload: dict | bytes | None, status: int  # type: ignore[type-arg]
) -> None:
    if isinstance(payload, bytes):
        options = {"content": payload, "headers": {"content-type": "application/json"}}
    else:
        options = {} if payload is None else {"json": payload}
    response = getattr(http, method)(path, **options)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]


def test_the_commands(ws2: Workspace, retrained: tuple[Path, RetrainResult]) -> None:
    runner = CliRunner()
    where = ["--home", str(ws2.settings.home), "--database", ws2.settings.database_url]
    later = ["--since", _iso(LATER[0]), "--until", _iso(LATER[1])]
    reverted = ["--since", _iso(REVERTED[0]), "--until", _iso(REVERTED[1])]
    queue = runner.invoke(commands_selection.label_queue, ["m", "--budget", "5", "--format", "csv", *where])
    assert queue.exit_code == 0, queue.output
    assert len(queue.output.splitlines()) == 6
    as_json = runner.invoke(commands_selection.label_queue, ["m", "--budget", "3", "--format", "json", *where])
    assert len(loads(as_json.output.encode())) == 3
    refused = runner.invoke(commands_selection.gate, ["m", *reverted, "--json", *where])
    assert refused.exit_code == 1 and not loads(refused.output.encode())["decision"]["passed"]
    passed = runner.invoke(commands_selection.gate, ["m", *later, "--promote", *where])
    assert passed.exit_code == 0 and "production is now v2" in passed.output
    failed = runner.invoke(commands_selection.retrain, ["m", "--since", _iso(UNLABELLED[0]), *where])
    assert failed.exit_code == 2 and "usable labelled rows" in failed.output


# --- the screening hook ------------------------------------------------------------------


def test_screening_sets_aside_rows_it_is_sure_about() -> None:
    schema = FeatureSchema(
        features=(Feature(name="x", kind="numeric"), Feature(name="n", kind="numeric", nullable=True),
                  Feature(name="plan", kind="categorical", categories=("a", "b"))),
        target="y", task="classification", classes=(0, 1),
    )
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, "3", np.inf, 5.0, 6.0, None],
            "n": [None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "plan": ["a", "z", "a", "a", 7, "b", "a"],
            "y": [0, "1", 1, 0, "maybe", None, 1.0],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    result = screen_training_data(frame, label_column="y", schema=schema, sources=["crm"] * 7)
    assert result.kept.tolist() == [True, True, False, False, False, False, False]
    assert dict(result.quarantined) == {
        12: ["schema:x"], 13: ["schema:x"], 14: ["label_not_a_class"], 15: ["label_missing"], 16: ["schema:x"],
    }
    # labels become the model's own class values: "1" is the class 1, an unseen category is no schema error
    assert result.labels.tolist()[:3] == [0, 1, 1]
    assert result.screened_by == ["labels", "schema"]
    summary = result.to_dict()
    assert summary["n_kept"] == 2 and summary["reasons"] == {"schema:x": 3, "label_not_a_class": 1, "label_missing": 1}
    assert loads(dumps(summary)) == summary


def test_screening_regression_targets_and_classes_from_a_reference() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.5, float("inf"), True, "2"]})
    regression = FeatureSchema(features=(Feature(name="x", kind="numeric"),), target="y", task="regression")
    result = screen_training_data(frame, label_column="y", schema=regression)
    assert result.kept.tolist() == [True, False, False, False]
    assert {i: why for i, why in result.quarantined} == {1: ["label_not_finite"], 2: ["label_not_finite"],
                                                        3: ["label_not_finite"]}
    reference = pd.DataFrame({"x": [0.0, 1.0], "y": ["no", "yes"]})
    labelled = pd.DataFrame({"x": [1.0, 2.0], "y": ["yes", "perhaps"]})
    by_reference = screen_training_data(labelled, label_column="y", reference=reference)
    assert by_reference.kept.tolist() == [True, False] and by_reference.screened_by == ["labels"]
    with pytest.raises(InvalidInput):
        screen_training_data(labelled, label_column="target")
    with pytest.raises(InvalidInput):
        screen_training_data(labelled, label_column="y", sources=["a"])
