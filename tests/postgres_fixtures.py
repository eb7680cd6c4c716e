"""pytest fixtures backed by one throwaway PostgreSQL server per test session.

Load them from the top-level ``tests/conftest.py`` with either::

    pytest_plugins = ["tests.postgres_fixtures"]

or ``from tests.postgres_fixtures import *`` (exports the fixtures below only).

Fixtures
--------
``postgres_server`` (session)
    The running :class:`tests.pgserver.ThrowawayPostgres`.
``postgres_dsn_factory`` (function)
    ``make() -> dsn``: each call creates one more fresh database. They are
    dropped when the test ends.
``postgres_dsn`` (function)
    DSN of a fresh, empty database for this test, e.g.
    ``postgresql://postgres@127.0.0.1:PORT/loopwatch_test_3``.

If the server cannot be started, tests that use these fixtures are *skipped*
with the reason, unless ``CI`` is set (to anything but ``""``/``0``/``false``/
``no``/``off``) or ``LOOPWATCH_REQUIRE_POSTGRES=1``: then they *fail*, so a CI
machine without PostgreSQL cannot pass by skipping.

PYTEST_DONT_REWRITE -- no asserts here; this marker keeps pytest from warning
"Module already imported so cannot be rewritten" (an error under this
project's ``filterwarnings = error``) when conftest star-imports this module
and a test module also lists it in ``pytest_plugins``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.pgserver import PostgresNotInstalled, PostgresStartupError, ThrowawayPostgres

__all__ = ["postgres_dsn", "postgres_dsn_factory", "postgres_server"]

_FALSEY = {"", "0", "false", "no", "off"}
_database_numbers = itertools.count(1)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSEY


def postgres_is_required() -> bool:
    """True when a missing PostgreSQL must fail the run instead of skipping."""
    return _env_flag("CI") or _env_flag("LOOPWATCH_REQUIRE_POSTGRES")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    """One throwaway PostgreSQL server for the whole session."""
    server = ThrowawayPostgres(dbname="loopwatch_test")
    try:
        server.start()  # cleans up after itself when it fails
    except Exception as exc:  # noqa: BLE001 - any failure means "no postgres"
        if isinstance(exc, PostgresNotInstalled):
            kind = "PostgreSQL is not available"
        else:
            kind = "the throwaway PostgreSQL server could not be started"
        detail = f"{type(exc).__name__}: {exc}"
        if postgres_is_required():
            pytest.fail(
                f"{kind} (CI or LOOPWATCH_REQUIRE_POSTGRES is set, so this fails instead of skipping):\n{detail}",
                pytrace=False,
            )
        pytest.skip(f"{kind}; run scripts/ensure-postgres.sh (set CI=1 to make this an error). {detail}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn_factory(postgres_server: ThrowawayPostgres) -> Iterator[Callable[[], str]]:
    """Return ``make() -> dsn``; every call creates another fresh database."""
    created: list[str] = []

    def make() -> str:
        name = f"loopwatch_test_{next(_database_numbers)}"
        dsn = postgres_server.create_database(name)
        created.append(name)
        return dsn

    yield make

    for name in reversed(created):
        # Best effort, only to keep disk use flat over a long session: the
        # whole server is deleted at the end anyway.
        try:
            postgres_server.drop_database(name)
        except (PostgresStartupError, OSError, subprocess.SubprocessError):
            pass


@pytest.fixture
def postgres_dsn(postgres_dsn_factory: Callable[[], str]) -> str:
    """DSN of a fresh, empty database that only this test uses."""
    return postgres_dsn_factory()
