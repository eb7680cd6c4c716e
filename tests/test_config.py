"""Settings are built once at the edge, from environment and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwatch.config import Settings
from loopwatch.errors import InvalidInput


def test_environment_then_flags() -> None:
    env = {"LOOPWATCH_HOME": "/tmp/x", "LOOPWATCH_PORT": "9000", "LOOPWATCH_LOGGING_ENABLED": "false"}
    settings = Settings.from_env(env, port=9100)
    assert settings.home == Path("/tmp/x")
    assert settings.port == 9100
    assert settings.logging_enabled is False
    assert settings.database_url == "sqlite:////tmp/x/loopwatch.db"


def test_database_forms() -> None:
    assert Settings.from_env({}, database="postgresql://u@h/db").database_url == "postgresql://u@h/db"
    assert Settings.from_env({}, database="/tmp/a.db").database_url == "sqlite:////tmp/a.db"


def test_round_trip_through_the_environment() -> None:
    settings = Settings.from_env({}, home="/tmp/y", workers=2, batch_max_wait_ms=3.5)
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    "env",
    [
        {"LOOPWATCH_PORT": "eighty"},
        {"LOOPWATCH_PORT": "0"},
        {"LOOPWATCH_MAX_ROWS_PER_REQUEST": "0"},
        {"LOOPWATCH_SQLITE_SYNCHRONOUS": "SOMETIMES"},
        {"LOOPWATCH_LOGGING_ENABLED": "perhaps"},
        {"LOOPWATCH_SCHEDULE_ENABLED": "sometimes"},
        {"LOOPWATCH_SCHEDULE_TICK_SECONDS": "0"},
        {"LOOPWATCH_SCHEDULE_TICK_SECONDS": "nan"},
        {"LOOPWATCH_SCHEDULE_TICK_SECONDS": "soon"},
    ],
)
def test_bad_settings_are_clear(env: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="setting"):
        Settings.from_env(env)


def test_the_schedule_settings() -> None:
    assert Settings.from_env({}).schedule_enabled is True
    assert Settings.from_env({}).schedule_tick_seconds == 30.0
    env = {"LOOPWATCH_SCHEDULE_ENABLED": "off", "LOOPWATCH_SCHEDULE_TICK_SECONDS": "0.25"}
    settings = Settings.from_env(env)
    assert settings.schedule_enabled is False and settings.schedule_tick_seconds == 0.25
    assert settings.to_env()["LOOPWATCH_SCHEDULE_ENABLED"] == "0"
    assert Settings.from_env(settings.to_env()) == settings
