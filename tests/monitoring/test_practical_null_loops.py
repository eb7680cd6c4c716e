"""No shift, real data, the whole loop: a model trained on a random split of the 2013 flights and
20 daily windows of 1,000-3,000 of the other flights of the same (shuffled) year, logged through
the real predictor and group-commit writer into SQLite. At most 10% of the windows alarm on their
inputs, and the loop engine raises no covariate-shift or selection-bias incident.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopwatch.config import Settings
from loopwatch.loops.report import LoopReport
from loopwatch.application.monitoring.loops_runner import evaluate_loops
from loopwatch.application.prediction import PredictCall
from loopwatch.application.workspace import Workspace
from tests import practical_cases as cases
from tests.realdata import codes_as_labels

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
SEED = 2
BATCH = 500


def rows_of(frame: pd.DataFrame) -> list[dict[str, object]]:
    plain = codes_as_labels(frame)[cases.FLIGHTS_FEATURES].astype(object)
    return plain.where(plain.notna(), None).to_dict("records")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("practical-null")


def workspace(home: Path) -> Workspace:
    return Workspace(Settings.from_env({}, home=home, database=str(home / "flights.db")))


@pytest.fixture(scope="module")
def report(home: Path) -> LoopReport:
    training, windows = cases.null_windows(seed=SEED)
    with workspace(home) as ws:
        ws.train("flights", codes_as_labels(training)[[*cases.FLIGHTS_FEATURES, "late"]], target="late", seed=0)
        futures = []
        for day, window in enumerate(windows):
            rng = np.random.default_rng([SEED, day])
            rows = rows_of(window)
            seconds = np.sort(rng.integers(0, 86_400, len(rows)))
            times = [START + timedelta(days=day, seconds=int(s)) for s in seconds]
            for i in range(0, len(rows), BATCH):
                call = PredictCall(model_name="flights", rows=rows[i:i + BATCH], request_id=f"d{day:02d}-{i}",
                                   client_id="app", client_version="1.0", timestamps=times[i:i + BATCH])
                futures.append(ws.writer.submit(ws.predictor.predict(call)))
        for future in futures:
            future.result()
        return evaluate_loops(ws.store, ws.registry, "flights", until=START + timedelta(days=20))


def test_at_most_a_tenth_of_the_windows_alarm_on_their_inputs(report: LoopReport) -> None:
    windows = [w for w in report.windows if w.n_events]
    assert len(windows) == 20
    drifted = [w for w in windows if w.drifted_features or w.multivariate_drift]
    assert len(drifted) <= 2, [(w.start, w.drifted_features) for w in drifted]


def test_the_loops_raise_no_drift_incident(report: LoopReport) -> None:
    kinds = [i.kind for i in report.incidents]
    assert not {"covariate_shift", "selection_bias"} & set(kinds), kinds


def test_the_monitor_reads_the_models_practical_settings(report: LoopReport, home: Path) -> None:
    from loopwatch.application.monitoring.runner import monitor

    with workspace(home) as ws:
        ws.store.put_monitor_config("flights", {"practical_thresholds": {"js_distance": 0.5},
                                                "practical_band_rows": 2000}, at=START)
        found = monitor(ws.store, ws.registry, "flights", since=START, until=START + timedelta(days=2))
    assert len(found.windows) == 2
    for window in found.windows:
        assert window.report.config["practical_band_rows"] == 2000
        carrier = window.report.features["carrier"].practical
        assert carrier is not None and (carrier.threshold, carrier.source) == (0.5, "configured")
