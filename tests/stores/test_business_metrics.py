"""Business metrics: stored once per (name, timestamp, segment), replaced by a new value."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.records import BusinessObservation
from loopwatch.stores import Store
from tests.stores.builders import T0, days

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc


def obs(name: str, at: datetime, value: float, segment: str | None = None, **extra: object) -> BusinessObservation:
    return BusinessObservation(name=name, timestamp=at, value=value, segment=segment, **extra)  # type: ignore[arg-type]


def test_observations_round_trip_in_time_order_and_filter(store: Store) -> None:
    written = [
        obs("revenue", T0 + days(1), 1200.5, client_id="finance", received_at=T0 + days(2)),
        obs("revenue", T0, 1000, received_at=T0 + days(2)),
        obs("revenue", T0, 400.25, "eu", received_at=T0 + days(2)),
        obs("churn_rate", T0 + days(1), 0.031, received_at=T0 + days(2)),
        obs("revenue", T0 + days(2), -5e-300, "us", received_at=T0 + days(2)),
    ]
    assert store.write_business_metrics(written) == 5
    everything = store.query_business_metrics()
    assert everything == sorted(written, key=lambda o: (o.timestamp, o.name, o.segment or ""))
    assert everything[0].value == 1000.0 and isinstance(everything[0].value, float)
    assert [o.value for o in store.query_business_metrics(name="revenue", segment="eu")] == [400.25]
    assert [o.value for o in store.query_business_metrics(name="revenue", since=T0 + days(1))] == [1200.5, -5e-300]
    assert [o.name for o in store.query_business_metrics(until=T0 + days(1))] == ["revenue", "revenue"]
    assert store.query_business_metrics(name="nothing") == []
    assert everything[1].client_id is None and everything[-2].client_id == "finance"


def test_the_same_value_again_changes_nothing_and_a_new_one_replaces_it(store: Store) -> None:
    assert store.write_business_metrics([obs("revenue", T0, 10.0, received_at=T0, client_id="a")]) == 1
    assert store.write_business_metrics([obs("revenue", T0, 10, received_at=T0 + days(1), client_id="b")]) == 0
    (kept,) = store.query_business_metrics()
    assert (kept.received_at, kept.client_id) == (T0, "a")
    assert store.write_business_metrics([obs("revenue", T0, 11.5, received_at=T0 + days(2), client_id="c")]) == 1
    (replaced,) = store.query_business_metrics()
    assert (replaced.value, replaced.received_at, replaced.client_id) == (11.5, T0 + days(2), "c")
    # the overall value and a segment's value are different observations
    assert store.write_business_metrics([obs("revenue", T0, 11.5, "eu"), obs("revenue", T0, 3.0, "us")]) == 2
    # the same observation twice in one batch: written once
    assert store.write_business_metrics([obs("orders", T0, 7), obs("orders", T0, 7), obs("orders", T0, 8)]) == 2
    assert [(o.name, o.segment, o.value) for o in store.query_business_metrics(since=T0, until=T0 + days(1))] == [
        ("orders", None, 8.0), ("revenue", None, 11.5), ("revenue", "eu", 11.5), ("revenue", "us", 3.0)
    ]
    assert store.write_business_metrics([]) == 0


def test_times_in_any_zone_are_one_instant(store: Store) -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    store.write_business_metrics([obs("revenue", local, 1.0)])
    assert store.write_business_metrics([obs("revenue", T0, 1.0)]) == 0
    (found,) = store.query_business_metrics()
    assert found.timestamp == T0 and found.timestamp.tzinfo == UTC


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": math.nan}, "finite"),
        ({"value": math.inf}, "finite"),
        ({"value": True}, "number"),
        ({"value": "1.5"}, "number"),
        ({"value": 10**400}, "range"),
        ({"timestamp": datetime(2024, 1, 1)}, "timezone"),
        ({"timestamp": "2024-01-01T00:00:00Z"}, "time"),
        ({"segment": ""}, "segment"),
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "NUL"),
        ({"name": "x" * 201}, "200"),
        ({"segment": "s\x00"}, "NUL"),
        ({"timestamp": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))}, "range"),
    ],
)
def test_bad_observations_are_refused_when_built(kwargs: dict, message: str) -> None:
    base = {"name": "revenue", "timestamp": T0, "value": 1.0}
    with pytest.raises(InvalidInput, match=message):
        BusinessObservation(**{**base, **kwargs})
