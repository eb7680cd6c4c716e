"""``loopwatch ingest FILE``: CSV, Parquet and NDJSON with a column mapping, each row a stored
ingested event, refusals as clear messages, and re-runs (also after a kill mid-file) that
store nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopwatch.stores.base import EventQuery


def loopwatch(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (LOOPWATCH_HOME and PYTHONPATH inherited)."""
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done


def predictions_table(training: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows of the model's features with what an outside model said about them."""
    rng = np.random.default_rng(seed)
    frame = training.drop(columns=["churned"]).sample(n, replace=True, random_state=seed).reset_index(drop=True)
    p1 = rng.uniform(0, 1, n)
    frame["pred"] = (p1 > 0.5).astype(int)
    frame["proba_0"] = 1 - p1
    frame["proba_1"] = p1
    frame["ts"] = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["customer"] = [f"c-{i}" for i in range(n)]
    frame["served_by"] = np.where(np.arange(n) < n // 2, "ext-a", "ext-b")
    return frame


MAPPING = ["--map", "prediction=pred", "--map", "timestamp=ts", "--map", "entity_id=customer",
           "--map", "model_version=served_by", "--probability-prefix", "proba_"]


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, double_precision=15)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson"])
def test_each_format_is_ingested_with_its_mapping(trained, churn_training, tmp_path, suffix) -> None:
    frame = predictions_table(churn_training, 300)
    path = write(frame, tmp_path / f"served{suffix}")
    done = loopwatch("ingest", str(path), "-m", "churn", *MAPPING, "--batch-rows", "128")
    report = json.loads(done.stdout)
    assert report["rows"] == 300 and report["accepted"] == 300 and report["duplicates"] == 0
    assert report["versions"] == {"ext-a": 2, "ext-b": 3}
    assert "rows/s" in done.stderr
    events = list(trained.store.iter_events(EventQuery(model_name="churn")))
    assert len(events) == 300
    by_entity = {e.entity_id: e for e in events}
    for i in (0, 149, 150, 299):
        event = by_entity[f"c-{i}"]
        assert event.request_type == "ingested"
        assert event.prediction == [int(frame["pred"][i])]
        assert event.probability == pytest.approx([frame["proba_0"][i], frame["proba_1"][i]], abs=1e-12)
        assert event.model_version == (2 if i < 150 else 3)
        assert event.timestamp == pd.Timestamp(frame["ts"][i]).to_pydatetime()
        features = frame.drop(columns=["pred", "proba_0", "proba_1", "ts", "customer", "served_by"]).iloc[i]
        for name, value in features.items():
            logged = event.data[name]
            if isinstance(value, float) and np.isnan(value):
                assert logged is None
            elif isinstance(logged, (int, float)):  # an integral number may be logged as an integer
                assert logged == pytest.approx(float(value), rel=1e-12)
            else:
                assert logged == str(value)
    # a re-run stores nothing twice
    again = json.loads(loopwatch("ingest", str(path), "-m", "churn", *MAPPING, "--batch-rows", "128").stdout)
    assert again["accepted"] == 0 and again["duplicates"] == 300
    assert trained.store.count_events() == 300


def test_bad_rows_are_refused_with_their_rows_and_nothing_of_that_batch_is_stored(trained, churn_training,
                                                                                   tmp_path) -> None:
    frame = predictions_table(churn_training, 50)
    frame.loc[7, "proba_1"] = 3.0
    frame["pred"] = frame["pred"].astype(object)
    frame.loc[9, "pred"] = 5
    path = write(frame, tmp_path / "bad.parquet")
    done = loopwatch("ingest", str(path), "-m", "churn", *MAPPING, code=2)
    assert "'row': 7" in done.stderr and "'row': 9" in done.stderr
    assert trained.store.count_events() == 0
    unmapped = loopwatch("ingest", str(path), "-m", "churn", "--map", "prediction=pred", code=2)
    assert "neither features nor mapped" in unmapped.stderr


def test_a_run_killed_mid_file_and_run_again_stores_each_row_once(trained, churn_training, tmp_path) -> None:
    frame = predictions_table(churn_training, 60_000, seed=5)
    path = write(frame, tmp_path / "big.parquet")
    args = [sys.executable, "-m", "loopwatch", "ingest", str(path), "-m", "churn", *MAPPING, "--batch-rows", "2000"]
    process = subprocess.Popen(args, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while trained.store.count_events() < 6000 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    partial = trained.store.count_events()
    assert 0 < partial < 60_000, partial  # killed part-way through
    again = json.loads(loopwatch("ingest", str(path), "-m", "churn", *MAPPING, "--batch-rows", "2000").stdout)
    assert again["duplicates"] == partial and again["accepted"] == 60_000 - partial
    assert trained.store.count_events() == 60_000


def test_models_show_names_the_external_label_of_a_version(trained, churn_training, tmp_path) -> None:
    path = write(predictions_table(churn_training, 20), tmp_path / "few.parquet")
    loopwatch("ingest", str(path), "-m", "churn", *MAPPING)
    shown = loopwatch("models", "show", "churn").stdout
    assert "external ext-a" in shown and "external ext-b" in shown
    listed = json.loads(loopwatch("models", "show", "churn", "--json").stdout)
    assert [v["params"].get("external_version") for v in listed] == [None, "ext-a", "ext-b"]


def test_the_index_pandas_writes_into_parquet_is_not_taken_for_a_column(trained, churn_training, tmp_path) -> None:
    frame = predictions_table(churn_training, 40).sort_values("pred", kind="stable")  # an index out of order
    path = tmp_path / "sorted.parquet"
    frame.to_parquet(path)  # pandas keeps the index as __index_level_0__
    import pyarrow.parquet as pq

    assert "__index_level_0__" in pq.read_schema(path).names
    report = json.loads(loopwatch("ingest", str(path), "-m", "churn", *MAPPING).stdout)
    assert report["accepted"] == 40
    assert all("__index_level_0__" not in e.data for e in trained.store.iter_events(EventQuery(model_name="churn")))


@pytest.mark.parametrize("blocks", [[7, 7, 7], [1, 20], [21], [5, 0, 16]])
def test_batches_do_not_depend_on_how_the_reader_split_the_file(blocks) -> None:
    import pyarrow as pa

    from loopwatch.application.file_ingestion import _rebatched

    values = np.arange(21)
    starts = np.cumsum([0, *blocks])
    reader = [pa.record_batch({"x": values[a:b]}) for a, b in zip(starts[:-1], starts[1:])]
    batches = list(_rebatched(iter(reader), 8))
    assert [b.num_rows for b in batches] == [8, 8, 5]
    assert np.concatenate([b.column(0).to_numpy() for b in batches]).tolist() == values.tolist()


def test_columns_named_like_fields_need_no_mapping(trained, churn_training, tmp_path) -> None:
    """A file whose columns are already called prediction and timestamp is read as it is; a
    mapping still wins, and a file without a prediction column still says how to name it."""
    frame = predictions_table(churn_training, 30).rename(columns={"pred": "prediction", "ts": "timestamp"})
    frame = frame.drop(columns=["customer", "served_by", "proba_0", "proba_1"])
    path = write(frame, tmp_path / "named.csv")
    report = json.loads(loopwatch("ingest", str(path), "-m", "churn").stdout)
    assert report["accepted"] == 30
    events = list(trained.store.iter_events(EventQuery(model_name="churn")))
    assert sorted(e.timestamp for e in events) == sorted(pd.Timestamp(t).to_pydatetime() for t in frame["timestamp"])
    assert sorted(e.prediction[0] for e in events) == sorted(frame["prediction"].tolist())
    unnamed = write(frame.rename(columns={"prediction": "score"}), tmp_path / "unnamed.csv")
    refused = loopwatch("ingest", str(unnamed), "-m", "churn", code=2)
    assert "--map prediction=COLUMN" in refused.stderr
