"""The typed Parquet export on hand-made schemas and events: a column per feature typed by the
version's schema, a column per output and per class probability, the union of two versions'
columns, and shadow events left out unless asked for. Read back with pyarrow."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopwatch.features.schema import Feature, FeatureSchema
from loopwatch.records import PredictionEvent
from loopwatch.stores.export import write_parquet
from loopwatch.stores.parquet import layout_of

T0 = datetime(2013, 3, 4, 6, tzinfo=timezone.utc)

V1 = FeatureSchema(
    features=(
        Feature(name="distance", kind="numeric", integer=True),
        Feature(name="carrier", kind="categorical", categories=("1", "9"), category_type="integer"),
        Feature(name="weekend", kind="categorical", categories=("false", "true"), category_type="boolean"),
        Feature(name="dest", kind="categorical", categories=("BOS", "SFO"), category_type="string"),
        Feature(name="plan", kind="categorical", categories=("1", "basic")),  # stored before types: strings
        Feature(name="timestamp", kind="numeric"),  # a feature named like an event column
    ),
    target="late", task="classification", classes=(0, 1),
)
# v2 drops plan, adds air_time, retypes carrier as strings, and learns a third class
V2 = FeatureSchema(
    features=(
        Feature(name="distance", kind="numeric"),
        Feature(name="carrier", kind="categorical", categories=("UA",), category_type="string"),
        Feature(name="weekend", kind="categorical", categories=("false", "true"), category_type="boolean"),
        Feature(name="dest", kind="categorical", categories=("BOS",), category_type="string"),
        Feature(name="air_time", kind="numeric", nullable=True),
        Feature(name="timestamp", kind="numeric"),
    ),
    target="late", task="classification", classes=(0, 1, 2),
)


def event(request_id: str, version: int, data: dict[str, Any] | None, prediction: Any,
          probability: list[float] | None, *, request_type: str = "api", row: int = 0) -> PredictionEvent:
    return PredictionEvent(
        request_id=request_id, row_index=row, model_name="flights", model_version=version,
        timestamp=T0 + timedelta(minutes=row), logged_at=T0 + timedelta(days=300), runtime_ms=4.0,
        row_runtime_ms=2.0, prediction=[prediction], probability=probability,
        input_data_summary={"missing": []}, data=data, request_type=request_type, client_id="batch-job",
        fingerprint_id="f" * 16, replayed=True, entity_id=f"F{row}",
    )


EVENTS = [
    # clients send integer codes as numbers or as their labels, flags as booleans or labels
    event("a", 1, {"distance": 1089, "carrier": 9, "weekend": False, "dest": "BOS", "plan": 1, "timestamp": 6.5},
          1, [0.25, 0.75]),
    event("a", 1, {"distance": 2475.0, "carrier": "1", "weekend": "true", "dest": "SFO", "plan": "basic",
                   "timestamp": 7.0}, 0, [0.9, 0.1], row=1),
    event("b", 2, {"distance": 200.0, "carrier": "UA", "weekend": True, "dest": "BOS", "air_time": None,
                   "timestamp": 8.0}, 2, [0.2, 0.3, 0.5]),
    event("b:shadow", 2, {"distance": 200.0, "carrier": "UA", "weekend": True, "dest": "BOS", "air_time": 41.0,
                          "timestamp": 8.0}, 1, [0.1, 0.8, 0.1], request_type="shadow"),
    event("c", 1, None, 1, [0.4, 0.6]),  # inputs not logged (privacy): null features, outputs kept
]


def test_one_typed_column_per_feature_output_and_class(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    written = write_parquet(EVENTS, path, schemas={("flights", 1): V1, ("flights", 2): V2})
    assert (written.events, written.shadow_left_out, written.unfit_values) == (4, 1, 0)
    table = pq.read_table(path)
    types = dict(zip(table.schema.names, table.schema.types))
    assert types["distance"] == pa.float64() and types["air_time"] == pa.float64()
    assert types["weekend"] == pa.bool_() and types["dest"] == pa.string() and types["plan"] == pa.string()
    assert types["carrier"] == pa.string()  # integer codes in v1, strings in v2: labels hold both
    assert types["feature_timestamp"] == pa.float64() and types["timestamp"] == pa.timestamp("us", tz="UTC")
    assert types["prediction"] == pa.int64()
    assert [n for n in table.schema.names if n.startswith("probability_")] == [
        "probability_0", "probability_1", "probability_2"]
    assert "data" not in types and "probability" not in types
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["a", "a", "b", "c"]  # the shadow is left out
    assert [r["distance"] for r in rows] == [1089.0, 2475.0, 200.0, None]
    assert [r["carrier"] for r in rows] == ["9", "1", "UA", None]
    assert [r["weekend"] for r in rows] == [False, True, True, None]
    assert [r["plan"] for r in rows] == ["1", "basic", None, None]  # v2 has no plan
    assert [r["air_time"] for r in rows] == [None, None, None, None]
    assert [r["prediction"] for r in rows] == [1, 0, 2, 1]
    assert [(r["probability_0"], r["probability_1"], r["probability_2"]) for r in rows] == [
        (0.25, 0.75, None), (0.9, 0.1, None), (0.2, 0.3, 0.5), (0.4, 0.6, None)]
    assert rows[0]["timestamp"] == T0 and rows[1]["entity_id"] == "F1" and rows[0]["replayed"] is True


def test_integer_codes_stay_integers_when_every_version_agrees(tmp_path: Path) -> None:
    path = tmp_path / "v1.parquet"
    write_parquet([e for e in EVENTS if e.model_version == 1], path, schemas={("flights", 1): V1})
    table = pq.read_table(path)
    assert table.schema.field("carrier").type == pa.int64()
    assert table.column("carrier").to_pylist() == [9, 1, None]
    assert table.schema.field("prediction").type == pa.int64()
    assert "probability_2" not in table.schema.names


def test_shadow_events_are_kept_when_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "all.parquet"
    written = write_parquet(EVENTS, path, schemas={("flights", 1): V1, ("flights", 2): V2}, include_shadow=True)
    assert (written.events, written.shadow_left_out) == (5, 0)
    shadow = next(r for r in pq.read_table(path).to_pylist() if r["request_type"] == "shadow")
    assert (shadow["air_time"], shadow["prediction"], shadow["probability_1"]) == (41.0, 1, 0.8)


def test_values_that_do_not_fit_are_counted_not_dropped_in_silence(tmp_path: Path) -> None:
    odd = [event("x", 1, {"distance": 5.0, "carrier": "AA", "weekend": "maybe", "dest": "BOS", "plan": "1",
                          "timestamp": 1.0}, 1, [0.5, 0.5]),
           event("y", 7, {"distance": 5.0}, 1, [0.5, 0.5])]  # a version with no schema
    path = tmp_path / "odd.parquet"
    written = write_parquet(odd, path, schemas={("flights", 1): V1})
    assert written.unfit_values == 2 + 1  # "AA" and "maybe"; and y's one value with nothing to type it by
    rows = pq.read_table(path).to_pylist()
    assert (rows[0]["carrier"], rows[0]["weekend"], rows[0]["dest"]) == (None, None, "BOS")


def test_the_layout_of_a_regression_and_of_string_classes() -> None:
    regression = FeatureSchema(features=(Feature(name="x", kind="numeric"),), target="y", task="regression")
    assert layout_of([regression]).prediction == "float64" and layout_of([regression]).classes == ()
    labels = FeatureSchema(features=(), target="y", task="classification", classes=("no", "yes"))
    assert layout_of([labels]).prediction == "string" and layout_of([labels]).classes == ("no", "yes")
    flags = FeatureSchema(features=(), target="y", task="classification", classes=(False, True))
    assert layout_of([flags]).prediction == "bool" and layout_of([flags]).classes == ("false", "true")
    assert layout_of([labels, V1]).prediction == "string"


def test_a_partitioned_export_is_one_dataset_by_model_and_date(tmp_path: Path) -> None:
    import pyarrow.dataset as ds

    from loopwatch.stores.export import write_partitioned_parquet

    late = dataclasses.replace(EVENTS[2], request_id="d", timestamp=T0 + timedelta(days=1, hours=17))
    other = dataclasses.replace(EVENTS[0], request_id="e", model_name="fraud model")
    root = tmp_path / "export"
    written = write_partitioned_parquet([*EVENTS, late, other], root,
                                        schemas={("flights", 1): V1, ("flights", 2): V2})
    assert (written.events, written.shadow_left_out) == (6, 1)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert files == ["model_name=flights/date=2013-03-04/part-00000.parquet",
                     "model_name=flights/date=2013-03-05/part-00000.parquet",
                     "model_name=fraud%20model/date=2013-03-04/part-00000.parquet"]
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    rows = sorted(table.to_pylist(), key=lambda r: r["request_id"])
    assert [(r["request_id"], r["model_name"], str(r["date"])) for r in rows] == [
        ("a", "flights", "2013-03-04"), ("a", "flights", "2013-03-04"), ("b", "flights", "2013-03-04"),
        ("c", "flights", "2013-03-04"), ("d", "flights", "2013-03-05"), ("e", "fraud model", "2013-03-04")]
    # the same typed columns as the one-file export
    assert table.schema.field("distance").type == pa.float64() and table.schema.field("carrier").type == pa.string()


def test_a_partitioned_export_refuses_a_directory_with_files(tmp_path: Path) -> None:
    import pytest

    from loopwatch.errors import InvalidInput
    from loopwatch.stores.export import write_partitioned_parquet

    (tmp_path / "old.parquet").write_bytes(b"x")
    with pytest.raises(InvalidInput, match="new or empty directory"):
        write_partitioned_parquet(EVENTS, tmp_path, schemas={("flights", 1): V1})
