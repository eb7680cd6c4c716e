"""Round trips of categories through train, predict, a real SQLite store and the monitor.

One model has a feature of each kind: integer codes with nulls (``code``: the training table
holds them as floats, as a CSV with blanks does), strings (``plan``) and boolean flags
(``flag``). Hypothesis draws windows of rows and, for every value, the JSON form it is sent
in (``3``, ``3.0`` or ``"3"``; ``true`` or ``"true"``). Whatever the forms, the monitor
counts the window's categories exactly as they were sent, and the logged rows give each
value back in its recorded type.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopwatch.features.frames import typed_frame
from loopwatch.application.monitoring import monitor
from loopwatch.stores.base import EventQuery
from loopwatch.application.workspace import Workspace
from tests.conftest import fast_settings

CODES = (1, 2, 3, 7)
PLANS = ("basic", "pro", "team")
START = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
_DAYS = count()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    rng = np.random.default_rng(5)
    n = 600
    code = rng.choice(CODES, n).astype(float)
    code[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame({
        "x": rng.normal(size=n), "code": code, "plan": rng.choice(PLANS, n), "flag": rng.random(n) < 0.4,
    })
    frame["y"] = (frame["x"] + (frame["plan"] == "pro") + rng.normal(size=n) > 0.5).astype(int)
    with Workspace(fast_settings(tmp_path_factory.mktemp("round-trip") / "loopwatch.db")) as workspace:
        workspace.train("m", frame, target="y", categorical=["code"])
        yield workspace


def forms_of(value: Any, kind: str) -> st.SearchStrategy[Any]:
    """Every JSON form a client may send ``value`` of a ``kind`` feature in."""
    if value is None:
        return st.just(None)
    if kind == "integer":
        return st.sampled_from([value, float(value), str(value)])
    if kind == "boolean":
        return st.sampled_from([value, "true" if value else "false"])
    return st.just(value)


@st.composite
def windows(draw: st.DrawFn) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Rows as values (what is meant) and as sent (the JSON forms)."""
    out = []
    for _ in range(draw(st.integers(20, 60))):
        meant = {
            "x": draw(st.floats(-3, 3)),
            "code": draw(st.sampled_from([*CODES, 9, None])),  # 9: never seen in training
            "plan": draw(st.sampled_from([*PLANS, "gold"])),
            "flag": draw(st.booleans()),
        }
        sent = {**meant, "code": draw(forms_of(meant["code"], "integer")),
                "flag": draw(forms_of(meant["flag"], "boolean"))}
        out.append((meant, sent))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window=windows())
def test_the_monitor_counts_what_was_sent_whatever_its_form(ws: Workspace, window: list[Any]) -> None:
    moment = START + timedelta(days=next(_DAYS))
    meant = [m for m, _ in window]
    result = ws.predictor.predict(_call([s for _, s in window], moment))
    ws.writer.write(result)

    report = monitor(ws.store, ws.registry, "m", window="1d", since=moment, until=moment + timedelta(hours=1))
    assert len(report.windows) == 1
    features = report.windows[0].report.features
    for name, label in (("code", lambda v: str(v)), ("plan", str), ("flag", lambda v: "true" if v else "false")):
        dist = features[name].distribution
        seen = Counter({c: n for c, n in zip(dist["categories"], dist["current"]) if n})
        assert seen == Counter(label(m[name]) for m in meant if m[name] is not None), name
    assert report.windows[0].report.data_quality.missing_rate["code"] == pytest.approx(
        sum(m["code"] is None for m in meant) / len(meant))

    # the logged rows give every value back in its recorded type
    events = sorted(ws.store.iter_events(EventQuery(model_name="m", since=moment, until=moment + timedelta(hours=1))),
                    key=lambda e: e.row_index)
    typed = typed_frame(pd.DataFrame([e.data for e in events]), ws.registry.resolve("m").schema)
    for name in ("code", "plan", "flag"):
        back = [None if pd.isna(v) else v for v in typed[name]]
        assert back == [m[name] for m in meant] and all(type(b) is type(m[name]) for b, m in zip(back, meant))


def _call(rows: list[dict[str, Any]], moment: datetime) -> Any:
    from loopwatch.application.prediction import PredictCall

    return PredictCall(model_name="m", rows=rows, timestamp=moment, request_type="api")


def test_the_schema_recorded_each_kind(ws: Workspace) -> None:
    schema = ws.registry.resolve("m").schema
    assert {f.name: f.category_type for f in schema.features} == {
        "x": None, "code": "integer", "plan": "string", "flag": "boolean"}
    assert schema.feature("code").nullable and not schema.feature("flag").nullable


def test_fixture_path_is_a_real_sqlite_file(ws: Workspace) -> None:
    assert ws.settings.database_url.startswith("sqlite:///")
    assert Path(ws.settings.database_url.removeprefix("sqlite:///")).is_file()
