"""The typed Parquet export end to end on real data (New York's 2013 departures): a model in
production, a candidate scoring in the shadow, then a version with one more feature; exported
over HTTP and by the CLI, read back with pyarrow and checked against what was sent."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from loopwatch.cli.main import cli
from loopwatch.config import Settings
from loopwatch.features.schema import FeatureSchema
from loopwatch.service import create_app
from loopwatch.application.workspace import Workspace
from tests.realdata import flights

AIRPORTS = {1: "EWR", 2: "JFK", 3: "LGA"}
BASE = ["origin", "sched_hour", "distance"]


def prepared() -> pd.DataFrame:
    frame = flights()
    return frame.assign(origin=frame["origin"].map(AIRPORTS))  # airports by name: a string category


def as_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def arrow_type(schema: FeatureSchema, name: str) -> pa.DataType:
    feature = schema.feature(name)
    if feature.kind == "numeric":
        return pa.float64()
    return {"integer": pa.int64(), "boolean": pa.bool_()}.get(feature.category_type or "string", pa.string())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("export")
    settings = Settings.from_env({}, home=home, database=str(home / "loopwatch.db"), sqlite_synchronous="NORMAL")
    data = prepared()
    january = data[data["time"] < "2013-01-20"]
    week = data[(data["time"] >= "2013-03-04") & (data["time"] < "2013-03-11")]
    # the first 60 departures of the week, then 50 flown and 10 cancelled ones (no air time)
    march = pd.concat([week.head(110), week.iloc[110:][week.iloc[110:]["air_time"].isna()].head(10)])
    with Workspace(settings) as ws:
        ws.train("flights", january.sample(3000, random_state=1)[[*BASE, "late"]], target="late")  # v1
        ws.train("flights", january.sample(3000, random_state=2)[[*BASE, "late"]], target="late")  # v2, candidate
    sent: dict[str, list[dict[str, Any]]] = {}
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for i in range(3):
            chunk = march.iloc[20 * i : 20 * (i + 1)]
            sent[f"early-{i}"] = as_rows(chunk[BASE])
            times = [t.isoformat() for t in chunk["time"]]
            answer = http.post("/v1/models/flights/predict", json={"rows": sent[f"early-{i}"], "timestamps": times},
                               headers={"X-Request-ID": f"early-{i}", "X-Client-ID": "batch-job"})
            assert answer.status_code == 200, answer.text
        assert http.app.state.loopwatch.shadow.flush(30)  # type: ignore[attr-defined]
        with Workspace(settings) as ws:  # v3 knows air_time (missing for cancelled flights)
            ws.train("flights", january.sample(3000, random_state=3)[[*BASE, "air_time", "late"]], target="late")
            ws.registry.promote("flights")
        later = march.iloc[60:]
        assert later["air_time"].isna().any()
        sent["later"] = as_rows(later[[*BASE, "air_time"]])
        answer = http.post("/v1/models/flights/predict", headers={"X-Request-ID": "later"},
                           json={"rows": sent["later"], "timestamps": [t.isoformat() for t in later["time"]]})
        assert answer.status_code == 200 and answer.json()["version"] == 3, answer.text
        default = http.get("/v1/logs/export", params={"format": "parquet", "model": "flights"})
        with_shadow = http.get("/v1/logs/export", params={"format": "parquet", "include_shadow": "true"})
        assert default.status_code == 200 and with_shadow.status_code == 200
    with Workspace(settings) as ws:
        schemas = {v.version: v.schema for v in ws.store.list_versions("flights")}
    yield {"default": pq.read_table(io.BytesIO(default.content)),
           "with_shadow": pq.read_table(io.BytesIO(with_shadow.content)),
           "schemas": schemas, "sent": sent, "settings": settings, "home": home}


def test_each_feature_is_a_column_typed_by_its_versions_schema(exported: dict[str, Any]) -> None:
    table, schemas = exported["default"], exported["schemas"]
    for name in BASE:
        assert table.schema.field(name).type == arrow_type(schemas[1], name) == arrow_type(schemas[3], name)
    assert table.schema.field("air_time").type == arrow_type(schemas[3], "air_time") == pa.float64()
    assert table.schema.field("origin").type == pa.string()
    assert table.schema.field("prediction").type == pa.int64()
    assert {"probability_0", "probability_1"} <= set(table.schema.names)
    assert not {"data", "probability"} & set(table.schema.names)


def test_the_values_are_those_sent_and_shadows_are_left_out(exported: dict[str, Any]) -> None:
    rows = exported["default"].to_pylist()
    assert {r["request_type"] for r in rows} == {"api"} and len(rows) == 120
    by_key = {(r["request_id"], r["row_index"]): r for r in rows}
    for request_id, sent in exported["sent"].items():
        for i, row in enumerate(sent):
            got = by_key[(request_id, i)]
            for name, value in row.items():
                assert got[name] == (None if value is None else type(got[name])(value)), (request_id, i, name)
            if request_id.startswith("early"):
                assert got["air_time"] is None and got["model_version"] == 1  # v1 has no air_time
            else:
                assert got["model_version"] == 3
            assert got["probability_0"] + got["probability_1"] == pytest.approx(1.0)
            assert got["prediction"] == int(got["probability_1"] > got["probability_0"])


def test_shadows_come_back_when_asked_for(exported: dict[str, Any]) -> None:
    rows = exported["with_shadow"].to_pylist()
    shadows = [r for r in rows if r["request_type"] == "shadow"]
    assert len(rows) == 180 and len(shadows) == 60 and {r["model_version"] for r in shadows} == {2}
    assert all(r["request_id"].endswith(":shadow") and r["origin"] in AIRPORTS.values() for r in shadows)


def test_the_cli_writes_the_same_file(exported: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "events.parquet"
    result = CliRunner().invoke(cli, ["logs", "--model", "flights", "--format", "parquet", "--out", str(out),
                                      "--home", str(exported["home"]),
                                      "--database", exported["settings"].database_url])
    assert result.exit_code == 0, result.output
    assert "60 shadow events left out" in result.output
    table = pq.read_table(out)
    assert table.schema == exported["default"].schema
    key = ["request_id", "row_index"]
    assert table.to_pandas().sort_values(key).reset_index(drop=True).equals(
        exported["default"].to_pandas().sort_values(key).reset_index(drop=True))


def test_the_cli_writes_a_dataset_partitioned_by_model_and_date(exported: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.dataset as ds

    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["logs", "--model", "flights", "--format", "parquet", "--out", str(out),
                                      "--partition-by", "date", "--home", str(exported["home"]),
                                      "--database", exported["settings"].database_url])
    assert result.exit_code == 0, result.output
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    rows = table.to_pandas()
    assert len(rows) == exported["default"].num_rows and set(rows["model_name"]) == {"flights"}
    days = pd.to_datetime(rows["timestamp"], utc=True).dt.strftime("%Y-%m-%d")
    assert (days == rows["date"].astype(str)).all()
    key = ["request_id", "row_index"]
    back = rows.drop(columns=["date"])[exported["default"].schema.names].sort_values(key).reset_index(drop=True)
    assert back["distance"].equals(exported["default"].to_pandas().sort_values(key).reset_index(drop=True)["distance"])
    again = CliRunner().invoke(cli, ["logs", "--model", "flights", "--format", "parquet", "--out", str(out),
                                     "--partition-by", "date", "--home", str(exported["home"]),
                                     "--database", exported["settings"].database_url])
    assert again.exit_code != 0 and "new or empty directory" in again.output
