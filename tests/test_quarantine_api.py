"""Quarantine end to end over a real SQLite store: a feedback source that flips labels is named
as its labels arrive, retraining quarantines its rows and leaves them out, a release puts rows
back, and the routes and the CLI list and release.

The world: v1 is trained on customers whose churn follows a logistic model. Five days of
predictions are logged, each row for an entity; every label comes from "crm" (the truth),
except a quarter of the rows, labelled first by "partner-feed", which flips 40% of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli.main import cli
from loopwatch.application.prediction import PredictCall
from loopwatch.application.quarantine import screen_feedback
from loopwatch.records import Label
from loopwatch.records.jsonutil import loads
from loopwatch.service import create_app
from loopwatch.application.workspace import Workspace
from tests.conftest import fast_settings
from tests.api.helpers import copy_database
from tests.poisoning.worlds import customers

UTC = timezone.utc
DAY0 = datetime(2026, 4, 6, tzinfo=UTC)
WINDOW = (DAY0, DAY0 + timedelta(days=5))
N_ROWS = 1500
N_NOT_A_CLASS = 4



@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quarantine") / "loopwatch.db"
    rng = np.random.default_rng(0)
    with Workspace(fast_settings(path)) as ws:
        ws.train("m", customers(2000, seed=0), target="churned")
        frame = customers(N_ROWS, seed=1)
        truth = frame.pop("churned").to_numpy()
        rows = frame.to_dict(orient="records")
        labels = []
        for k, first in enumerate(range(0, N_ROWS, 50)):
            moment = DAY0 + timedelta(hours=2 * k)
            logged = ws.predictor.predict(PredictCall(
                model_name="m", rows=rows[first : first + 50], request_id=f"r{k}", client_id="web",
                timestamp=moment, entity_ids=[f"c{first + i}" for i in range(50)],
            ))
            assert ws.writer.write(logged).status == "stored"
            for i in range(50):
                row = first + i
                partner = rng.random() < 0.25
                label = int(1 - truth[row]) if partner and rng.random() < 0.4 else int(truth[row])
                labels.append(Label(model_name="m", label=label, label_time=moment + timedelta(hours=6),
                                    entity_id=f"c{row}", client_id="partner-feed" if partner else "crm"))
        wrong = [Label(model_name="m", label="maybe", label_time=DAY0 + timedelta(days=6), request_id="r3",
                       row_index=i, client_id="crm") for i in range(N_NOT_A_CLASS)]
        assert {o.status for o in ws.store.write_labels(labels)} == {"stored"}
        assert {o.status for o in ws.store.write_labels(wrong)} == {"corrected"}
    return path


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Iterator[Workspace]:
    path = tmp_path / "loopwatch.db"
    copy_database(template, path)
    with Workspace(fast_settings(path)) as workspace:
        yield workspace


def test_the_skewed_source_is_named_as_its_labels_arrive(ws: Workspace) -> None:
    found = screen_feedback(ws.store, "m", since=WINDOW[0], until=WINDOW[1] + timedelta(days=1))
    assert [e.source for e in found] == ["partner-feed"]
    evidence = found[0].to_dict()
    assert evidence["disagreement"] > evidence["disagreement_others"] + 0.15 and evidence["adjusted_p"] < 1e-6
    assert evidence["n_labels"] + evidence["n_others"] == N_ROWS - N_NOT_A_CLASS  # those arrive on day 6
    # one day alone is enough, and a period without labels names nobody
    assert [e.source for e in screen_feedback(ws.store, "m", since=DAY0, until=DAY0 + timedelta(days=2))] == [
        "partner-feed"
    ]
    assert screen_feedback(ws.store, "m", since=DAY0 - timedelta(days=3), until=DAY0) == []


def test_retraining_quarantines_and_a_release_puts_rows_back(ws: Workspace) -> None:
    result = ws.retrain("m", since=WINDOW[0], until=WINDOW[1], include_reference=False)
    reasons = result.screening["reasons"]
    assert reasons["label_not_a_class"] == N_NOT_A_CLASS and reasons["source:partner-feed"] > 300
    assert result.rows_quarantined == result.screening["n_quarantined"] and result.rows_released == 0
    assert result.rows_used == N_ROWS - result.rows_quarantined
    counts = ws.store.count_quarantine("m")
    assert counts == {"quarantined": result.rows_quarantined, "released": 0}
    held = ws.store.list_quarantine("m", limit=None)
    assert {e.source for e in held if "source:partner-feed" in e.reasons} == {"partner-feed"}

    from loopwatch.application.quarantine import release

    chosen = [e.id for e in held if e.releasable][:5]
    released = release(ws.store, ws.registry, "m", chosen, by="ana")
    assert [e.id for e in released] == chosen and all(e.released_by == "ana" for e in released)
    again = ws.retrain("m", since=WINDOW[0], until=WINDOW[1], include_reference=False)
    assert again.rows_released == 5 and again.rows_quarantined == result.rows_quarantined - 5
    assert again.rows_used == result.rows_used + 5
    # the second screening did not forget the release nor duplicate the rows
    assert ws.store.count_quarantine("m") == {"quarantined": result.rows_quarantined - 5, "released": 5}


def test_the_routes_list_and_release(ws: Workspace) -> None:
    ws.retrain("m", since=WINDOW[0], until=WINDOW[1], include_reference=False)
    with TestClient(create_app(ws.settings), raise_server_exceptions=False) as http:
        page = http.get("/v1/models/m/quarantine", params={"limit": 10})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["status"] == "held" and len(body["rows"]) == 10 and body["counts"]["released"] == 0
        assert set(body["rows"][0]) >= {"id", "reasons", "source", "quarantined_at", "released_at", "releasable"}
        ids = [row["id"] for row in body["rows"] if row["releasable"]][:3]
        done = http.post("/v1/models/m/quarantine/release", json={"ids": ids}, headers={"X-Client-ID": "ops"})
        assert done.status_code == 200, done.text
        assert [(r["id"], r["released_by"]) for r in done.json()["released"]] == [(i, "ops") for i in ids]
        released = http.get("/v1/models/m/quarantine", params={"status": "released"}).json()
        assert [r["id"] for r in released["rows"]] == ids and released["counts"]["released"] == 3
        everything = http.get("/v1/models/m/quarantine", params={"status": "all", "limit": 10_000}).json()
        assert len(everything["rows"]) == sum(everything["counts"].values())

        certain = [r["id"] for r in everything["rows"] if not r["releasable"]]
        assert len(certain) == N_NOT_A_CLASS
        cases = [
            ("post", "/v1/models/m/quarantine/release", {"ids": ["r0:999"]}, 404),
            ("post", "/v1/models/m/quarantine/release", {"ids": [certain[0]]}, 422),
            ("post", "/v1/models/m/quarantine/release", {"ids": ["no-colon"]}, 422),
            ("post", "/v1/models/m/quarantine/release", {"ids": ["r0:\u0000"]}, 422),
            ("post", "/v1/models/m/quarantine/release", {"ids": []}, 422),
            ("post", "/v1/models/m/quarantine/release", {"ids": "r0:1"}, 422),
            ("post", "/v1/models/m/quarantine/release", {"ids": [ids[0]], "extra": 1}, 422),
            ("post", "/v1/models/nobody/quarantine/release", {"ids": [ids[0]]}, 404),
            ("get", "/v1/models/nobody/quarantine", None, 404),
            ("get", "/v1/models/m/quarantine?limit=0", None, 422),
            ("get", "/v1/models/m/quarantine?limit=10001", None, 422),
            ("get", "/v1/models/m/quarantine?status=maybe", None, 422),
            ("get", "/v1/models/m/quarantine?offset=-1", None, 422),
        ]
        for method, path, payload, status in cases:
            answer = http.request(method.upper(), path, json=payload)
            assert answer.status_code == status, (path, payload, answer.text)
            assert set(answer.json()["error"]) >= {"status", "code", "message"}
        # a refused release changed nothing
        assert http.get("/v1/models/m/quarantine").json()["counts"]["released"] == 3


def test_the_cli_lists_and_releases(ws: Workspace) -> None:
    ws.retrain("m", since=WINDOW[0], until=WINDOW[1], include_reference=False)
    runner = CliRunner()
    home = ["--database", ws.settings.database_url]
    listed = runner.invoke(cli, ["quarantine", "m", "--json", "--limit", "5", *home])
    assert listed.exit_code == 0, listed.output
    rows = loads(listed.output)["rows"]
    assert len(rows) == 5
    table = runner.invoke(cli, ["quarantine", "m", "--limit", "3", *home])
    assert table.exit_code == 0 and "held out of training" in table.output
    chosen = [r["id"] for r in rows if r["releasable"]][:2]
    released = runner.invoke(cli, ["quarantine", "m", *sum((["--release", i] for i in chosen), []), "--by", "bo",
                                   *home])
    assert released.exit_code == 0, released.output
    assert "released 2 rows" in released.output
    after = loads(runner.invoke(cli, ["quarantine", "m", "--status", "released", "--json", *home]).output)
    assert [r["id"] for r in after["rows"]] == chosen and {r["released_by"] for r in after["rows"]} == {"bo"}
    missing = runner.invoke(cli, ["quarantine", "m", "--release", "r0:9999", *home])
    assert missing.exit_code == 2 and "not quarantined" in missing.output
