"""Period: the one check of a span of event time, on every surface that takes since and until."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.records.period import Period

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-7)),
                                                  timezone(timedelta(hours=5, minutes=30))]))


@given(moments, moments, moments)
def test_a_period_holds_since_and_not_until(a: datetime, b: datetime, t: datetime) -> None:
    if a >= b:
        with pytest.raises(InvalidInput, match="since must be before until"):
            Period(since=a, until=b)
        return
    period = Period(since=a, until=b)
    assert period.contains(t) == (a <= t < b)
    assert Period(since=a).contains(t) == (t >= a) and Period(until=b).contains(t) == (t < b)


@pytest.mark.parametrize("what", ["since", "until"])
def test_a_moment_without_a_timezone_is_refused_by_name(what: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{what} must carry a timezone"):
        Period(**{what: datetime(2026, 1, 5)})


def test_the_service_answers_a_backwards_period_with_a_422(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from loopwatch import Settings, create_app

    settings = Settings.from_env({}, home=tmp_path, database=str(tmp_path / "lw.db"))
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/logs", params={"since": "2026-01-06T00:00:00Z", "until": "2026-01-05T00:00:00Z"})
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "since must be before until"


@pytest.mark.parametrize("command", [["monitor", "churn"], ["loops", "churn"], ["logs"], ["label-queue", "churn"],
                                     ["retrain", "churn"], ["gate", "churn"]])
def test_every_command_refuses_a_backwards_period_before_it_reads_anything(tmp_path, command) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from loopwatch.cli.main import cli

    database = tmp_path / "never-made.db"
    result = CliRunner().invoke(cli, [*command, "--since", "2026-01-06", "--until", "2026-01-05",
                                      "--database", str(database)])
    assert result.exit_code == 2, result.output
    assert "--since '2026-01-06' must be before --until '2026-01-05'" in result.output
    assert "Traceback" not in result.output and not database.exists()
