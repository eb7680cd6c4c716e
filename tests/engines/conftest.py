"""One real Spark session (local[2]) for every Spark test, started once per test session.

``spark.driver.maxResultSize`` is far below the test exports' size: an engine that brought
rows to the driver would fail, as it would on a log too big for one machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: Far below the rows of the 29,000-event export (collecting them fails: a test says so), above
#: the finished windows the tests bring to the driver (tens of kB an hour).
MAX_RESULT_SIZE = "256k"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from loopwatch.engines.spark import spark_session

    session = spark_session(master="local[2]", conf={"spark.driver.maxResultSize": MAX_RESULT_SIZE,
                                                     "spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()
