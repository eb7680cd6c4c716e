#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine, then the whole suite.
# PostgreSQL tests run against a throwaway server the suite starts; a missing
# PostgreSQL fails the run instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh
# the Spark engine's tests start a real Spark session, which needs a JVM (Java 17 or later)
if ! command -v java >/dev/null 2>&1; then
  echo "java is missing: the Spark tests need a JVM (Java 17+); on Debian: apt-get install openjdk-17-jre-headless" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
export LOOPWATCH_REQUIRE_POSTGRES=1
exec .venv/bin/python -m pytest --cov=loopwatch --cov-report=term:skip-covered -p no:cacheprovider "$@"
