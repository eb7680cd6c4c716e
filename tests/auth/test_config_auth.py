"""The auth setting: on whenever the service listens beyond loopback; off only on loopback."""

from __future__ import annotations

import pytest

from loopwatch.config import Settings, is_loopback
from loopwatch.errors import InvalidInput


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.7", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auto_is_off_on_loopback_and_on_beyond_it() -> None:
    assert Settings.from_env({}).auth == "auto"
    assert Settings.from_env({}).auth_enabled is False
    assert Settings.from_env({}, host="0.0.0.0").auth_enabled is True
    assert Settings.from_env({"LOOPWATCH_HOST": "10.0.0.5"}).auth_enabled is True


def test_on_works_on_loopback_too_and_round_trips() -> None:
    settings = Settings.from_env({"LOOPWATCH_AUTH": "on"})
    assert settings.auth_enabled is True
    assert settings.to_env()["LOOPWATCH_AUTH"] == "on"
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env({}, auth="off").auth_enabled is False


@pytest.mark.parametrize(
    "env",
    [
        {"LOOPWATCH_AUTH": "maybe"},
        {"LOOPWATCH_AUTH": "off", "LOOPWATCH_HOST": "0.0.0.0"},
        {"LOOPWATCH_AUTH": "OFF", "LOOPWATCH_HOST": "192.168.1.2"},
    ],
)
def test_bad_auth_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="setting auth"):
        Settings.from_env(env)


def test_turning_auth_off_is_refused_when_moving_beyond_loopback() -> None:
    settings = Settings.from_env({}, auth="off")
    with pytest.raises(InvalidInput, match="beyond loopback"):
        settings.with_overrides(host="0.0.0.0")
