"""The Spark engine against the in-process engine on real data (New York's 2013 departures).

Twenty-nine thousand departures become prediction events over two hours (windows that hold
many rows, as production hours do, so that their summaries are far smaller than the rows),
exported partitioned by model and date, and summarised per (version, hour) into whole window
summaries by both engines with one ``build``: exact parts, traffic, clients and row samples
must be equal, sketches must hold the exact CDF within their bound.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopwatch.engines.job import VersionPlan, read_export, run_in_process, window_summaries_job
from loopwatch.engines.spark import run_spark
from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.records import PredictionEvent
from loopwatch.stats import binned
from loopwatch.stores.export import write_partitioned_parquet
from loopwatch.summaries.categorical import CategoricalPart
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.window import SummaryLayout, WindowSummary
from tests.realdata import flights

pytestmark = pytest.mark.slow

NUMERIC = ("sched_hour", "distance", "air_time")
CATEGORICAL = ("carrier", "origin", "dest", "weekday")
START = datetime(2026, 3, 1, 23, tzinfo=timezone.utc)  # two hours across midnight: two date partitions
HOURS = 2
ROWS = 29_000  # July has 29,428 departures

SCHEMA = FeatureSchema(
    features=(*(Feature(name=n, kind="numeric", nullable=True) for n in NUMERIC),
              *(Feature(name=n, kind="categorical", category_type="integer") for n in CATEGORICAL)),
    target="late", task="classification", classes=(0, 1),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    frame = flights()
    reference = frame[frame["time"].dt.month == 1]
    current = frame[frame["time"].dt.month == 7].head(ROWS).reset_index(drop=True)
    seconds = np.linspace(0, HOURS * 3600 - 1, len(current)).astype(int)
    events = []
    for i, row in enumerate(current.astype(object).where(current.notna(), None).to_dict(orient="records")):
        events.append(PredictionEvent(
            request_id=f"r{i // 10}", row_index=i % 10, model_name="flights", model_version=1,
            timestamp=START + timedelta(seconds=int(seconds[i])), logged_at=START, runtime_ms=3.0,
            row_runtime_ms=0.3, prediction=[row["late"]], probability=[0.4, 0.6], input_data_summary={},
            data={k: row[k] for k in (*NUMERIC, *CATEGORICAL)}, client_id="batch", request_type="api",
            fingerprint_id="f" * 16, replayed=True,
        ))
    root = tmp_path_factory.mktemp("spark") / "export"
    write_partitioned_parquet(events, root, schemas={("flights", 1): SCHEMA})
    edges = {n: tuple(binned.quantile_edges(np.sort(reference[n].dropna().to_numpy(dtype=np.float64)), n_bins=10))
             for n in NUMERIC}
    layout = SummaryLayout(numeric=edges, categorical=CATEGORICAL, classes=("0", "1"),
                           output_edges={f"probability_{c}": (0.25, 0.5, 0.75) for c in (0, 1)})
    job = window_summaries_job({("flights", 1): VersionPlan(layout=layout, schema=SCHEMA)})
    return {"root": root, "job": job, "current": current, "seconds": seconds}


def test_spark_windows_equal_the_in_process_windows(spark: Any, world: dict[str, Any]) -> None:
    job, root = world["job"], world["root"]
    assert len(list(root.glob("model_name=flights/date=*"))) == 2
    local = run_in_process(job, root, batch_rows=5_000)  # batches of their own: merges on both sides
    remote = run_spark(job, root, session=spark)
    assert set(remote) == set(local) and len(local) == HOURS + 1  # the hours and the model's extent
    current, hours = world["current"], world["seconds"] // 3600
    assert remote[("extent", "flights")] == local[("extent", "flights")]
    for key, window in remote.items():
        if key[0] != "window":
            continue
        other = local[key]
        assert isinstance(window, WindowSummary) and isinstance(other, WindowSummary)
        assert (window.traffic, window.clients, window.sample) == (other.traffic, other.clients, other.sample)
        assert len(window.sample.rows) == 256  # what the store keeps of an hour: cut before the driver
        hour = (window.start - START) // timedelta(hours=1)
        for name, part in window.features.items():
            twin = other.features[name]
            exact = {k: v for k, v in part.to_dict().items() if k not in part.SKETCH_KEYS}
            assert exact == {k: v for k, v in twin.to_dict().items() if k not in twin.SKETCH_KEYS}, (key, name)
            if name not in (*NUMERIC, *CATEGORICAL):
                continue
            raw = current.loc[hours == hour, name]
            if isinstance(part, NumericPart):
                values = np.sort(raw.dropna().to_numpy(dtype=np.float64))
                assert part.count == values.size and part.n_null == int(raw.isna().sum())
                assert list(part.bins) == binned.bin_counts(values, part.edges).tolist()
                # sketches: built from different batches on each engine, each within its bound of the truth
                assert part.rank_error > 0  # enough rows per hour that the sketch estimates
                for sketched in (part, twin):
                    assert isinstance(sketched, NumericPart)
                    points, cdf = sketched.cdf_steps()
                    truth = np.searchsorted(values, points, side="right") / values.size
                    assert np.max(np.abs(cdf - truth)) <= sketched.rank_error
            else:
                assert isinstance(part, CategoricalPart) and part.exact
                assert dict(part.counts or {}) == raw.astype(str).value_counts().to_dict()


def test_rows_do_not_fit_through_the_driver(spark: Any, world: dict[str, Any]) -> None:
    # the session's result limit is real: collecting the rows the engine summarised fails
    frame = spark.read.parquet(str(world["root"])).select(*world["job"].columns)
    with pytest.raises(Exception, match="maxResultSize"):
        frame.collect()
    assert len(read_export(world["root"], columns=world["job"].columns)) == len(world["current"]) == ROWS
    assert isinstance(read_export(world["root"]), pd.DataFrame)


def test_a_missing_export_is_refused(spark: Any, tmp_path: Path) -> None:
    from loopwatch.errors import InvalidInput

    with pytest.raises(InvalidInput, match="no Parquet export"):
        run_spark(window_summaries_job({}), tmp_path / "nothing", session=spark)
