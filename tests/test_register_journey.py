"""A team brings its own boosted models, trained outside loopwatch on real January flights.

LightGBM and XGBoost classifiers are fitted here on January's flights (integer-coded carriers,
airports and weekdays as plain int features), saved with skops and registered with
``loopwatch register --trust``. Without ``--trust`` the CLI refuses, naming the types. A real
uvicorn serves both; over HTTP they predict a week of unseen January flights and a week of
July flights from one airport only. ``loopwatch monitor`` finds the July week's drift (origin
among it) and not the January week's (weekly windows start on Mondays, as these weeks do).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from loopwatch.demo import ServiceProcess
from loopwatch.models.artifacts import dump_model
from tests import realdata

pytestmark = pytest.mark.slow

FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]
TYPES = {
    "lgbm": ["lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"],
    "xgb": ["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
}


def cli(home: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "loopwatch", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in ok, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


def fitted(kind: str, frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    if kind == "lgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=60, num_leaves=31, random_state=0, n_jobs=1, verbose=-1)
    else:
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=60, max_depth=5, random_state=0, n_jobs=1)
    return model.fit(frame[FEATURES], frame["late"])


def json_rows(frame: pd.DataFrame) -> list[dict]:
    return frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict(orient="records")


def week(frame: pd.DataFrame, start: str, *, per_day: int, seed: int) -> pd.DataFrame:
    """``per_day`` flights of each of seven days from ``start``, at their own times."""
    days = frame[(frame["time"] >= start) & (frame["time"] < pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=7))]
    return days.groupby(days["time"].dt.date, group_keys=False).apply(
        lambda day: day.sample(min(per_day, len(day)), random_state=seed))


def test_boosted_models_from_outside_are_registered_served_and_watched(tmp_path: Path) -> None:
    flights = realdata.flights()
    home, database = tmp_path / "home", str(tmp_path / "flights.db")
    db = ("--database", database)
    january = flights[flights["time"] < "2013-01-21"].sample(12_000, random_state=1)
    fit, reference, holdout = january.iloc[:6_000], january.iloc[6_000:10_000], january.iloc[10_000:]
    for name, frame in (("reference", reference), ("holdout", holdout)):
        frame[FEATURES + ["late"]].to_parquet(tmp_path / f"{name}.parquet")
    quiet = week(flights, "2013-01-21", per_day=120, seed=2)
    origin = int(flights["origin"].mode()[0])
    july = week(flights[flights["origin"] == origin], "2013-07-01", per_day=120, seed=3)

    for kind in TYPES:
        artifact = tmp_path / f"{kind}.skops"
        artifact.write_bytes(dump_model(fitted(kind, fit)))
        base = ("register", f"late-{kind}", "--artifact", str(artifact), "--reference",
                str(tmp_path / "reference.parquet"), "--holdout", str(tmp_path / "holdout.parquet"),
                "--target", "late", *db)
        refused = cli(home, *base, ok=(2,))
        assert all(t in refused.stderr + refused.stdout for t in TYPES[kind])
        assert "--trust" in refused.stderr + refused.stdout
        trusts = [arg for t in TYPES[kind] for arg in ("--trust", t)]
        version = json.loads(cli(home, *base, *trusts, "--json").stdout)
        assert version["version"] == 1 and version["params"]["trusted_types"] == TYPES[kind]
        assert version["metrics"]["roc_auc"] > 0.6
        shown = cli(home, "models", "show", f"late-{kind}", *db).stdout
        assert TYPES[kind][0] in shown

    with ServiceProcess(database, log_path=tmp_path / "service.log") as service:
        with httpx.Client(base_url=service.url, timeout=60.0) as http:
            for kind in TYPES:
                for traffic in (quiet, july):
                    for start in range(0, len(traffic), 200):
                        chunk = traffic.iloc[start:start + 200]
                        response = http.post(f"/v1/models/late-{kind}/predict", json={
                            "rows": json_rows(chunk), "timestamps": [t.isoformat() for t in chunk["time"]]})
                        assert response.status_code == 200, response.text
                        assert len(response.json()["probabilities"]) == len(chunk)

    for kind in TYPES:
        report = json.loads(cli(home, "monitor", f"late-{kind}", "--window", "7d", "--json", *db,
                                ok=(0, 1)).stdout)
        windows = {w["start"][:10]: w for w in report["windows"] if w["n_events"] >= 100}
        assert set(windows) == {"2013-01-21", "2013-07-01"}, list(windows)
        summer, winter = windows["2013-07-01"]["alarms"], windows["2013-01-21"]["alarms"]
        assert "feature:origin" in summer, summer
        assert "feature:origin" not in winter, winter
        assert len(summer) > len(winter), (summer, winter)
        assert windows["2013-07-01"]["evasion"] is None or "not_applicable" not in windows["2013-07-01"]["evasion"]
