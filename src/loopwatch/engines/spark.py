"""The Spark engine: a summary job run on Spark's executors over a Parquet export.

Each executor reads its files of the export (partitioned by model and date), builds window
summaries from each Arrow batch with the job's ``build`` (``mapInPandas``), merges a
partition's summaries before they leave it, and the summaries of one key are merged across
partitions by ``reduceByKey`` (a tree of merges on the executors), then ``finish``-ed (cut to
what the store keeps). Only those, one per key, reach the driver: their size follows the
number of windows and features, not of events, so the driver never holds rows
(``spark.driver.maxResultSize`` may be far below the input's).

PySpark is an optional dependency (``pip install 'loopwatch[spark]'``) and is imported only
when a session is made; the JVM comes from the machine (Java 17).

The same job runs on a cluster by giving a master URL (``spark://host:7077``, ``yarn``,
``k8s://...``) instead of ``local[N]``: see docs/spark.md.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from loopwatch.engines.job import BATCH_ROWS, Key, SummaryJob
from loopwatch.errors import InvalidInput, echo, require

#: Settings every session gets: event times in UTC, partition values (model names, dates)
#: read as text, no console progress bars in a command's output.
SESSION_CONF: Mapping[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH_ROWS),
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
}


def spark_session(*, master: str, conf: Mapping[str, str] | None = None, app_name: str = "loopwatch-summarize") -> Any:
    """A Spark session on ``master`` with :data:`SESSION_CONF` and ``conf`` (which wins)."""
    sql = require("pyspark.sql", "spark")
    builder = sql.SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        # local workers run this interpreter, which has loopwatch (PySpark reads the variable
        # when its context starts); a cluster's own Python is set by its operator
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**SESSION_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _key_text(key: Key) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _key_of(text: str) -> Key:
    return tuple(json.loads(text))


def run_spark(job: SummaryJob, path: str | Path, *, session: Any, partitions: int | None = None) -> dict[Key, Any]:
    """Run ``job`` over the export at ``path`` on ``session``; the merged parts by key.

    ``partitions``: how many reduce tasks merge the parts (default: the session's
    parallelism). ``path`` may be a local directory or any URL Spark reads (``s3a://``,
    ``hdfs://``).
    """
    text = str(path)
    if "://" not in text and not Path(text).exists():
        raise InvalidInput(f"no Parquet export at {echo(text)}")
    frame = session.read.option("basePath", text).parquet(text)
    if job.models is not None:
        frame = frame.filter(frame["model_name"].isin(list(job.models)))  # whole partitions left unread
    if job.columns is not None:
        frame = frame.select(*[c for c in job.columns if c in frame.columns])
    build, encode, decode, merge, finish = job.build, job.encode, job.decode, job.merge, job.finish

    def summarise(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        merged: dict[Key, Any] = {}
        for batch in batches:
            for key, part in build(batch).items():
                merged[key] = part if key not in merged else merge(merged[key], part)
        # one row per key and partition: what leaves the executor is already merged
        yield pd.DataFrame({"key": [_key_text(k) for k in merged], "part": [encode(p) for p in merged.values()]})

    def merge_bytes(a: bytes, b: bytes) -> bytes:
        return encode(merge(decode(a), decode(b)))

    def finish_bytes(data: bytes) -> bytes:
        return encode(finish(decode(data)))

    with warnings.catch_warnings():
        # PySpark 4 warns about pandas 3 on every pandas UDF; the engine hands it plain frames
        # of numbers, strings and timestamps, which the tests check both versions agree on
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        parts = frame.mapInPandas(summarise, schema="key string, part binary")
        reduced = parts.rdd.map(lambda row: (row.key, bytes(row.part))).reduceByKey(
            merge_bytes, numPartitions=partitions or session.sparkContext.defaultParallelism)
        # finished (what the store keeps of a window) on the executors too: only that reaches the driver
        return {_key_of(key): decode(data) for key, data in reduced.mapValues(finish_bytes).collect()}
