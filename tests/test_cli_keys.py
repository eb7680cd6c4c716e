"""``loopwatch keys``: create (the token once), list (never a token or hash), revoke; the keys work."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.service import create_app
from loopwatch.stores import open_store


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output + (str(result.exception) if result.exception else "")
    return str(result.output)


def test_create_list_revoke_and_the_keys_work_against_the_service(runner: CliRunner, settings: Settings) -> None:
    output = _ok(runner.invoke(cli, ["keys", "create", "--name", "partner", "--scope", "read", "--scope",
                                     "predict", "--expires-days", "30", "--rate", "5", "--daily-budget", "1000"]))
    (token,) = re.findall(r"lw_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", output)
    key_id = token[3:19]
    created = json.loads(_ok(runner.invoke(cli, ["keys", "create", "--name", "ops", "--scope", "admin", "--json"])))
    assert created["key"]["scopes"] == ["admin"] and created["key"]["created_by"] == "cli"
    admin_token = created["token"]

    listed_text = _ok(runner.invoke(cli, ["keys", "list", "--json"]))
    listed = {k["key_id"]: k for k in json.loads(listed_text)}
    assert listed[key_id]["scopes"] == ["predict", "read"] and listed[key_id]["state"] == "active"
    assert listed[key_id]["rate_per_second"] == 5 and listed[key_id]["daily_budget"] == 1000
    assert listed[key_id]["expires_at"] is not None
    stored = open_store(settings.database_url)
    try:
        hashes = [k.token_sha256 for k in stored.list_api_keys()]
    finally:
        stored.close()
    table = _ok(runner.invoke(cli, ["keys", "list"]))
    for text in (listed_text, table):
        assert token not in text and admin_token not in text
        assert not any(h in text for h in hashes)
    assert key_id in table

    with TestClient(create_app(settings.with_overrides(auth="on", schedule_enabled=False)),
                    raise_server_exceptions=False) as client:
        assert client.get("/v1/models", headers={"X-API-Key": token}).status_code == 200
        assert client.get("/v1/keys", headers={"X-API-Key": token}).status_code == 403
        assert client.get("/v1/keys", headers={"X-API-Key": admin_token}).status_code == 200
        assert "revoked" in _ok(runner.invoke(cli, ["keys", "revoke", key_id]))
        assert client.get("/v1/models", headers={"X-API-Key": token}).status_code == 401
    revoked = {k["key_id"]: k for k in json.loads(_ok(runner.invoke(cli, ["keys", "list", "--json"])))}
    assert revoked[key_id]["state"] == "revoked" and revoked[key_id]["revoked_at"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["keys", "revoke", "0123456789abcdef"], "no API key"),
        (["keys", "revoke", "nope"], "16 lowercase hex"),
        (["keys", "create", "--name", "bad\nname", "--scope", "read"], "key name"),
    ],
)
def test_errors_are_one_line_and_exit_code_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--name", "x"],  # no scope
        ["keys", "create", "--name", "x", "--scope", "write"],
        ["keys", "create", "--scope", "read"],  # no name
        ["keys", "create", "--name", "x", "--scope", "read", "--rate", "0"],
        ["keys", "create", "--name", "x", "--scope", "read", "--expires-days", "0"],
    ],
)
def test_usage_errors_exit_2_and_create_nothing(runner: CliRunner, settings: Settings, args: list[str]) -> None:
    assert runner.invoke(cli, args).exit_code == 2
    assert json.loads(_ok(runner.invoke(cli, ["keys", "list", "--json"]))) == []
