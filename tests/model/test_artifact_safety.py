"""Safe artifacts through the real app: a production artifact changed by one byte is refused
at load while the version production held before keeps serving (with an integrity alarm in
the log); a malicious pickle or a skops file with an untrusted type stored as an artifact never
runs. Each payload is first shown to be live: loaded the unsafe way, it writes its file."""

from __future__ import annotations

import contextlib
import logging
import pathlib
import pickle
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from loopwatch.config import Settings
from loopwatch.errors import IntegrityError
from loopwatch.models import sha256_hex
from loopwatch.service import create_app
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.api.helpers import PREDICT, assert_error, copy_database
from tests.conftest import churn_rows


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, churn_training: pd.DataFrame) -> Path:
    """"churn" v1 in production, v2 (trained on 300 rows) as the candidate."""
    path = tmp_path_factory.mktemp("artifact-safety") / "loopwatch.db"
    with Workspace(Settings.from_env({}, home=path.parent, database=str(path))) as ws:
        ws.train("churn", churn_training, target="churned")
        ws.train("churn", churn_training.head(300), target="churned")
    return path


@pytest.fixture
def database(template: Path, settings: Settings) -> Path:
    path = Path(settings.database_url[len("sqlite:///") :])
    copy_database(template, path)
    return path


@pytest.fixture
def rows(churn_training: pd.DataFrame) -> list[dict[str, Any]]:
    return churn_rows(churn_training, 3)


@contextlib.contextmanager
def _app(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield http


def _flip_one_byte(database: Path, sha256: str) -> None:
    with sqlite3.connect(database) as conn:
        content = bytearray(conn.execute("SELECT content FROM artifacts WHERE sha256 = ?", (sha256,)).fetchone()[0])
        content[len(content) // 2] ^= 0x01
        conn.execute("UPDATE artifacts SET content = ? WHERE sha256 = ?", (bytes(content), sha256))


def _store_version(settings: Settings, artifact: bytes) -> int:
    """Register ``artifact`` as the next version of "churn", like v1 in all else, in production."""
    with Workspace(settings) as ws:
        meta = ws.store.get_model_version("churn", 1)
        number = ws.store.create_model_version(
            name="churn", created_at=datetime.now(timezone.utc), task=meta.task, estimator=meta.estimator,
            artifact=artifact, artifact_sha256=sha256_hex(artifact),
            reference=ws.store.get_artifact(meta.reference_sha256), reference_sha256=meta.reference_sha256,
            schema=meta.schema.to_dict(), metrics=meta.metrics, data_summary={}, params={},
        )
        ws.registry.promote("churn", number)
        return number


def _events(settings: Settings) -> list[Any]:
    with Workspace(settings) as ws:
        return list(ws.store.iter_events(EventQuery(model_name="churn", limit=1000)))


def test_a_tampered_production_version_is_refused_and_the_last_good_one_serves(
    settings: Settings, database: Path, rows: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with Workspace(settings) as ws:
        ws.registry.promote("churn", 2)
        tampered = ws.store.get_model_version("churn", 2).artifact_sha256
    _flip_one_byte(database, tampered)
    with caplog.at_level(logging.ERROR, logger="loopwatch.registry"):
        with _app(settings) as http:
            served = http.post(PREDICT, json={"rows": rows})
            assert served.status_code == 200, served.text
            assert served.json()["version"] == 1
            again = http.post(PREDICT, json={"rows": rows})  # the refusal is remembered, still v1
            assert again.status_code == 200 and again.json()["version"] == 1
            # asked for by number, the tampered version is refused outright, in the one error shape
            error = assert_error(http.post(PREDICT, json={"rows": rows, "version": 2}), 500, "integrity_error")
            assert "hash mismatch" in error["message"]
            assert error["detail"]["expected_sha256"] == tampered
            # the alias is left for a person to move: the alarm says what happened
            assert http.get("/v1/models/churn").json()["aliases"]["production"] == 2
            assert http.post("/v1/models/churn/rollback").status_code == 200
            assert http.post(PREDICT, json={"rows": rows}).json()["version"] == 1
    alarms = [r.getMessage() for r in caplog.records if "integrity alarm" in r.getMessage()]
    assert any("version 2 was refused" in m for m in alarms)
    assert any("served by version 1 instead of 2" in m for m in alarms)
    assert {e.model_version for e in _events(settings)} == {1}
    assert len(_events(settings)) == 3 * len(rows)


def test_with_no_good_version_left_the_answer_is_an_integrity_error_and_nothing_is_logged(
    settings: Settings, database: Path, rows: list[dict[str, Any]]
) -> None:
    with Workspace(settings) as ws:
        ws.registry.promote("churn", 2)
        hashes = [ws.store.get_model_version("churn", n).artifact_sha256 for n in (1, 2)]
    for sha in hashes:
        _flip_one_byte(database, sha)
    with _app(settings) as http:
        assert_error(http.post(PREDICT, json={"rows": rows}), 500, "integrity_error")
    assert _events(settings) == []


def test_the_candidate_is_never_replaced_by_another_version(settings: Settings, database: Path) -> None:
    with Workspace(settings) as ws:
        _flip_one_byte(database, ws.store.get_model_version("churn", 2).artifact_sha256)
        with pytest.raises(IntegrityError):
            ws.registry.load("churn", "candidate")
        with pytest.raises(IntegrityError):
            ws.registry.load("churn", 2)
        assert ws.registry.load("churn").version.version == 1


class _WritesAFile:
    """A pickle payload: unpickling it calls ``Path.write_text`` (any callable would do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> Any:
        return (pathlib.Path.write_text, (pathlib.Path(self.target), "this must never run"))


def test_a_malicious_pickle_stored_as_an_artifact_never_runs(
    settings: Settings, database: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    marker = tmp_path / "pickle-ran"
    payload = pickle.dumps(_WritesAFile(marker))
    pickle.loads(payload)  # noqa: S301 - the control: loaded with pickle, the payload runs
    assert marker.exists()
    marker.unlink()

    number = _store_version(settings, payload)
    with _app(settings) as http:
        served = http.post(PREDICT, json={"rows": rows})
        assert served.status_code == 200 and served.json()["version"] == 1
        error = assert_error(http.post(PREDICT, json={"rows": rows, "version": number}), 500, "integrity_error")
        assert "skops" in error["message"]
    assert not marker.exists()


class Evil:
    """A type skops would rebuild with ``__setstate__`` if it were trusted."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["target"]).write_text("this must never run")
        self.__dict__.update(state)


def test_a_skops_file_with_an_untrusted_type_never_runs(
    settings: Settings, database: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    import skops.io as sio

    marker = tmp_path / "skops-ran"
    payload = sio.dumps(Evil(str(marker)))
    sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))  # the control: trusted, it runs
    assert marker.exists()
    marker.unlink()

    number = _store_version(settings, payload)
    with _app(settings) as http:
        assert http.post(PREDICT, json={"rows": rows}).json()["version"] == 1
        error = assert_error(http.post(PREDICT, json={"rows": rows, "version": number}), 500, "integrity_error")
        assert error["detail"]["untrusted_types"] == [f"{__name__}.Evil"]
    assert not marker.exists()
