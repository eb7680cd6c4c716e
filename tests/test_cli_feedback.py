"""``loopwatch feedback`` and ``loopwatch business`` on real files and a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from click.testing import CliRunner

from loopwatch.cli.commands_feedback import text_label
from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.application.prediction import PredictCall
from loopwatch.application.workspace import Workspace
from tests.api.helpers import copy_database
from tests.conftest import churn_rows

UTC = timezone.utc
DAY = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    """A database with "churn" v1 and request "req" of 4 rows for entities c0..c3 at DAY."""
    path = tmp_path_factory.mktemp("feedback-template") / "loopwatch.db"
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", churn_training.head(400), target="churned")
        logged = ws.predictor.predict(
            PredictCall(model_name="churn", rows=churn_rows(churn_training, 4), request_id="req",
                        timestamp=DAY, entity_ids=[f"c{i}" for i in range(4)])
        )
        assert ws.writer.write(logged).status == "stored"
    return path


@pytest.fixture
def workspace(settings: Settings, template: Path) -> Iterator[Workspace]:
    """The test's own copy of the template, at the default database of LOOPWATCH_HOME."""
    copy_database(template, Path(settings.database_url[len("sqlite:///"):]))
    with Workspace(settings) as ws:
        yield ws


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output + (str(result.exception) if result.exception else "")


def test_feedback_from_a_csv_by_request_and_row(runner: CliRunner, workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "request_id,row_index,label,label_time\n"
        "req,0,1,2025-03-05T10:00:00Z\n"
        "req,1,0,2025-03-05T10:00:00+02:00\n"
        "req,2,1,2025-03-06 08:00:00\n"  # no zone: UTC
        "req,7,1,2025-03-06T08:00:00Z\n"
    )
    result = runner.invoke(cli, ["feedback", str(path), "--model", "churn", "--client", "crm"])
    _ok(result)
    assert "unmatched" in result.output and "line 5" in result.output
    labels = list(workspace.store.iter_labels("churn"))
    assert [(s.row_index, s.label, type(s.label), s.client_id) for s in labels] == [
        (1, 0, int, "crm"), (0, 1, int, "crm"), (2, 1, int, "crm")
    ]  # integer classes, as the model was trained; ordered by label time
    assert labels[2].label_time == datetime(2025, 3, 6, 8, tzinfo=UTC)
    result = runner.invoke(cli, ["feedback", str(path), "-m", "churn", "--json"])
    _ok(result)
    summary = json.loads(result.output)
    assert (summary["stored"], summary["duplicates"], summary["corrected"], summary["unmatched"]) == (0, 3, 0, 1)


def test_feedback_from_ndjson_by_entity(runner: CliRunner, workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    lines = [
        {"entity_id": "c3", "label": 1, "label_time": "2025-03-04T00:00:00Z"},
        {"entity_id": "c0", "label": 0, "label_time": "2025-03-04T00:00:00Z"},
        {},
        {"entity_id": "c3", "label": 0, "label_time": "2025-03-05T00:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(x) if x else "" for x in lines) + "\n")
    result = runner.invoke(cli, ["feedback", str(path), "--model", "churn", "--json"])
    _ok(result)
    summary = json.loads(result.output)
    assert (summary["stored"], summary["corrected"]) == (2, 1)
    assert summary["outcomes"] == [
        {"index": 2, "status": "corrected", "request_id": "req", "row_index": 3,
         "reason": "the prediction had another label; this one replaces it"}
    ]
    history = workspace.store.label_history("churn", "req", 3)
    assert [(h.label, h.entity_id) for h in history] == [(1, "c3"), (0, "c3")]


def test_csv_labels_follow_the_model_targets() -> None:
    assert text_label("1", "classification", (0, 1)) == 1 and isinstance(text_label("1", "classification", (0, 1)), int)
    assert text_label("yes", "classification", ("no", "yes")) == "yes"
    assert text_label("true", "classification", (False, True)) is True
    assert text_label("2", "classification", (0, 1)) == 2  # a class the model never saw, still a number
    assert text_label("maybe", "classification", ("no", "yes")) == "maybe"
    assert text_label("2.5", "regression", ()) == 2.5
    with pytest.raises(Exception, match="not a number"):
        text_label("abc", "regression", ())


def test_business_metrics_from_csv_and_ndjson(runner: CliRunner, workspace: Workspace, tmp_path: Path) -> None:
    csv_path = tmp_path / "kpis.csv"
    csv_path.write_text(
        "name,timestamp,value,segment\n"
        "revenue,2025-03-03T00:00:00Z,1200.5,\n"
        "revenue,2025-03-03T00:00:00Z,300,eu\n"
        "churn_rate,2025-03-03,0.031,\n"
    )
    result = runner.invoke(cli, ["business", str(csv_path), "--client", "finance"])
    _ok(result)
    assert "3 observations read, 3 written" in result.output
    result = runner.invoke(cli, ["business", str(csv_path), "--json"])
    _ok(result)
    assert json.loads(result.output) == {"read": 3, "written": 0}
    nd = tmp_path / "kpis.ndjson"
    nd.write_text(json.dumps({"name": "revenue", "timestamp": "2025-03-03T00:00:00Z", "value": 1250}) + "\n")
    _ok(runner.invoke(cli, ["business", str(nd)]))
    found = workspace.store.query_business_metrics()
    assert [(o.name, o.segment, o.value) for o in found] == [
        ("churn_rate", None, 0.031), ("revenue", None, 1250.0), ("revenue", "eu", 300.0)
    ]
    assert found[0].timestamp == DAY and found[2].client_id == "finance" and found[1].client_id is None


BAD_FEEDBACK = [
    ("missing.csv", None, "no such file"),
    ("labels.xlsx", "a,b\n", "cannot tell the format"),
    ("empty.csv", "request_id,row_index,label,label_time\n", "no records"),
    ("nolabel.csv", "request_id,row_index,label_time\nreq,0,2025-03-03T00:00:00Z\n", "no label column"),
    ("badtime.csv", "request_id,row_index,label,label_time\nreq,0,1,tomorrow\n", "line 2: label_time 'tomorrow'"),
    ("badrow.csv", "request_id,row_index,label,label_time\nreq,x,1,2025-03-03T00:00:00Z\n", "line 2: row_index"),
    ("both.csv", "request_id,row_index,entity_id,label,label_time\nreq,0,c1,1,2025-03-03T00:00:00Z\n",
     "line 2: a label names"),
    ("extra.csv", "request_id,row_index,label,label_time\nreq,0,1,2025-03-03T00:00:00Z,oops\n", "more values"),
    ("broken.ndjson", '{"entity_id": "c1", "label": 1, "label_time": "2025-03-03T00:00:00Z"}\n{"entity_id"\n',
     "line 2: not JSON"),
    ("list.ndjson", "[1, 2]\n", "line 1: each line must be a JSON object"),
    ("nan.ndjson", '{"entity_id": "c1", "label": NaN, "label_time": "2025-03-03T00:00:00Z"}\n', "line 1: not JSON"),
    ("nolab.ndjson", '{"entity_id": "c1", "label_time": "2025-03-03T00:00:00Z"}\n', "line 1: label is missing"),
    ("binary.csv", b"\xff\xfe\x00bad", "could not read"),
]


@pytest.mark.parametrize("name, content, message", BAD_FEEDBACK)
def test_bad_feedback_files_exit_2_with_a_clear_message(
    runner: CliRunner, workspace: Workspace, tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = runner.invoke(cli, ["feedback", str(path), "--model", "churn"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert list(workspace.store.iter_labels("churn")) == []


def test_feedback_for_an_unknown_model_exits_2(runner: CliRunner, workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("entity_id,label,label_time\nc1,1,2025-03-03T00:00:00Z\n")
    result = runner.invoke(cli, ["feedback", str(path), "--model", "ghost"])
    assert result.exit_code == 2 and "no model named 'ghost'" in result.output


@pytest.mark.parametrize(
    "content, message",
    [
        ("name,timestamp\nrevenue,2025-03-03T00:00:00Z\n", "no value column"),
        ("name,timestamp,value\nrevenue,2025-03-03T00:00:00Z,abc\n", "line 2: value 'abc' is not a number"),
        ("name,timestamp,value\nrevenue,2025-03-03T00:00:00Z,nan\n", "line 2: a business metric's value must be finite"),
        ("name,timestamp,value\nrevenue,soon,1\n", "line 2: timestamp 'soon'"),
        ("name,timestamp,value\n,2025-03-03T00:00:00Z,1\n", "line 2: name must be a non-empty string"),
    ],
)
def test_bad_business_files_exit_2(runner: CliRunner, workspace: Workspace, tmp_path: Path, content: str,
                                   message: str) -> None:
    path = tmp_path / "kpis.csv"
    path.write_text(content)
    result = runner.invoke(cli, ["business", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert workspace.store.query_business_metrics() == []


def test_the_database_flag_picks_the_database(runner: CliRunner, template: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    copy_database(template, other)
    path = tmp_path / "labels.csv"
    path.write_text("entity_id,label,label_time\nc1,1,2025-03-04T00:00:00Z\n")
    _ok(runner.invoke(cli, ["feedback", str(path), "-m", "churn", "--database", f"sqlite:///{other}"]))
    with Workspace(Settings.from_env(database=str(other))) as ws:
        (label,) = list(ws.store.iter_labels("churn"))
    assert (label.entity_id, label.prediction_time, label.label_time - label.prediction_time) == (
        "c1", DAY, timedelta(days=1)
    )
