"""Odd windows, as users log them, never break monitoring.

A seeded generator (hypothesis) logs windows of one row, two rows, constant columns, an
all-null nullable column, a category never seen in training, one client, and windows with
no, few or enough labels, through the real service into a real SQLite file. The monitor
and the loop engine then answer over HTTP (JSON and HTML): never a 500, every window
reported, and each odd window says which tests it was too small for and why.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loopwatch.config import Settings
from loopwatch.drift.compare import MULTIVARIATE_MIN_ROWS
from loopwatch.drift.profile import MIN_REFERENCE_ROWS
from loopwatch.records.feedback import Label
from loopwatch.records.jsonutil import utc_iso
from loopwatch.application.workspace import Workspace

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
MIN_LABELS = 10
#: Each example logs into its own stretch of time, far from the others'.
STRETCH = timedelta(days=40)
KINDS = ("normal", "one_row", "two_rows", "constant", "null_column", "unseen_category", "one_client")


def training(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame({
        "x": rng.normal(size=n),
        "z": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "c": rng.choice(["a", "b", "d"], n),
    })
    frame["y"] = (frame["x"] + (frame["c"] == "a") + rng.normal(size=n) > 0.5).astype(int)
    return frame


def window_rows(kind: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if kind == "one_row":
        n = 1
    elif kind == "two_rows":
        n = 2
    rows = training(rng, n).drop(columns=["y"])
    if kind == "constant":
        rows["x"], rows["z"], rows["c"] = 3.0, 1.0, "a"
    elif kind == "null_column":
        rows["z"] = np.nan
    elif kind == "unseen_category":
        rows["c"] = "never-seen"
    return rows


@dataclass
class Service:
    settings: Settings
    http: Any
    counter: Iterator[int]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    home = tmp_path_factory.mktemp("odd-windows")
    config = Settings.from_env({}, home=home, database=str(home / "odd.db"), sqlite_synchronous="NORMAL",
                               schedule_enabled=False)
    with Workspace(config) as ws:
        ws.train("odd", training(np.random.default_rng(0), 1500), target="y")
        ws.store.put_monitor_config("odd", {"min_labels": MIN_LABELS}, at=START, author="test")
    with TestClient(create_app(config), raise_server_exceptions=False) as http:
        yield Service(config, http, itertools.count())


def log_window(service: Service, rows: pd.DataFrame, day: datetime, *, one_client: bool,
               n_labels: int, rng: np.random.Generator) -> None:
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    times = [day + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, len(records)))]
    # several requests from several clients, or one client alone
    parts = [range(len(records))] if one_client else np.array_split(np.arange(len(records)), min(3, len(records)))
    labelled = 0
    labels: list[Label] = []
    for number, part in enumerate(parts):
        part = list(part)
        body = {"rows": [records[i] for i in part], "timestamps": [utc_iso(times[i]) for i in part],
                "request_type": "replay"}
        answer = service.http.post("/v1/models/odd/predict", json=body,
                                   headers={"X-Client-ID": "solo" if one_client else f"client-{number}"})
        assert answer.status_code == 200, answer.text
        request_id = answer.json()["request_id"]
        for row_index, i in enumerate(part):
            if labelled < n_labels:
                labels.append(Label(model_name="odd", label=int(rng.integers(0, 2)), request_id=request_id,
                                    row_index=row_index, label_time=times[i] + timedelta(hours=2)))
                labelled += 1
    if labels:
        with Workspace(service.settings) as ws:
            ws.store.write_labels(labels)


window_plans = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(20, 45), st.sampled_from(("none", "few", "enough")),
              st.integers(0, 1)),
    min_size=2, max_size=5,
)


@settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=window_plans, seed=st.integers(0, 2**16))
def test_odd_windows_are_reported_with_their_reasons(service: Service, plan: list[Any], seed: int) -> None:
    rng = np.random.default_rng(seed)
    since = START + next(service.counter) * STRETCH
    day = since
    logged: list[tuple[datetime, str, int, int]] = []
    for kind, n, labels, gap in plan:
        rows = window_rows(kind, n, rng)
        n_labels = {"none": 0, "few": min(len(rows), 3), "enough": len(rows) if len(rows) >= MIN_LABELS else 0}[labels]
        log_window(service, rows, day, one_client=kind == "one_client", n_labels=n_labels, rng=rng)
        logged.append((day, kind, len(rows), n_labels))
        day += timedelta(days=1 + gap)
    until = day + timedelta(days=1)  # labels come two hours after their prediction: let them in
    span = {"since": utc_iso(since), "until": utc_iso(until)}

    answer = service.http.get("/v1/models/odd/monitor", params={**span, "window": "1d", "full": "true"})
    assert answer.status_code == 200, answer.text
    windows = [w for w in answer.json()["windows"] if w["segment"] is None]
    assert [(w["start"], w["n_events"]) for w in windows] == [(utc_iso(d), n) for d, _, n, _ in logged]
    for index, (window, (_, kind, n, _)) in enumerate(zip(windows, logged)):
        skipped = {t["test"]: t for t in window["skipped"]}
        for test, least in MULTIVARIATE_MIN_ROWS.items():
            if n < least:
                assert skipped[f"multivariate:{test}"] == {"test": f"multivariate:{test}", "reason": "too_few_rows",
                                                           "n": n, "minimum": least}
            else:
                assert f"multivariate:{test}" not in skipped and test in window["report"]["multivariate"]
        if kind == "null_column":
            assert skipped["feature:z"]["reason"] == "no_values"
        before = logged[index - 1][2] if index else None
        if before is not None and before < MIN_REFERENCE_ROWS:
            assert skipped["previous"] == {"test": "previous", "reason": "too_few_rows", "n": before,
                                           "minimum": MIN_REFERENCE_ROWS}
        assert "window" not in skipped, skipped["window"]  # nothing was refused outright
    for extra in ({"window": "7d"}, {"window": "count:1"}, {"segment": "c"}, {"format": "html"}):
        assert service.http.get("/v1/models/odd/monitor", params={**span, **extra}).status_code == 200

    answer = service.http.get("/v1/models/odd/loops", params={**span, "window": "1d"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    json.dumps(report, allow_nan=False)
    assert [w["start"] for w in report["windows"]] == [utc_iso(d) for d, _, _, _ in logged]
    for evidence, (_, _, n, _) in zip(report["windows"], logged):
        if n < 50:
            assert evidence["estimated"] is None
            assert evidence["estimated_missing"]["reason"] in ("too_few_rows", "no_estimator")
    performance = {w["start"]: w for w in report["performance"].get("windows", [])}
    for d, _, n, n_labels in logged:
        entry = performance.get(d.isoformat())
        if entry is None:  # no label at all in the stretch: no performance section
            assert all(k == 0 for _, _, _, k in logged)
            continue
        assert entry["labels"] == n_labels
        if n_labels < MIN_LABELS:
            assert entry["realized"] is None
            assert entry["realized_missing"] == {"value": None, "metric": entry["metric"], "reason": "too_few_labels",
                                                 "n_labels": n_labels, "min_labels": MIN_LABELS}
        else:
            assert entry["realized"] is not None or entry["realized_missing"]["reason"] in ("single_class", "undefined")
    assert service.http.get("/v1/models/odd/loops", params={**span, "window": "7d"}).status_code == 200
