"""Rejections and training events: written and read back on both backends."""

from __future__ import annotations

from datetime import timedelta

from loopwatch.records import Rejection, TrainingEvent
from loopwatch.stores import Store
from tests.stores.builders import T0, rejection, training_event

pytest_plugins = ["tests.postgres_fixtures"]


def test_rejections_round_trip_filter_and_order(store: Store) -> None:
    store.write_rejections([])  # nothing to write is fine
    assert store.query_rejections() == []
    written = [
        rejection("iris", T0 + timedelta(minutes=3), reason="payload_too_large"),
        rejection("iris", T0 + timedelta(microseconds=1), client_id=None),
        rejection("churn", T0 + timedelta(minutes=1), reason="unreadable_data"),
        rejection("iris", T0, reason="schema_violation"),
    ]
    store.write_rejections(written[:2])
    store.write_rejections(written[2:])
    everything = store.query_rejections()
    assert everything == sorted(written, key=lambda r: r.timestamp)
    assert all(isinstance(r, Rejection) and r.timestamp.utcoffset() == timedelta(0) for r in everything)
    assert everything[1].client_id is None and everything[1].timestamp.microsecond == T0.microsecond + 1
    assert store.query_rejections("iris") == [written[3], written[1], written[0]]
    assert store.query_rejections("iris", since=T0 + timedelta(microseconds=1)) == [written[1], written[0]]
    assert store.query_rejections(since=T0 + timedelta(minutes=1)) == [written[2], written[0]]
    assert store.query_rejections(limit=2) == [written[3], written[1]]
    assert store.query_rejections("nope") == []


def test_training_events_round_trip(store: Store) -> None:
    first = training_event("e1", "iris", 1, T0)
    second = TrainingEvent(
        event_id="e2",
        model_name="iris",
        model_version=2,
        timestamp=T0 + timedelta(days=1, microseconds=7),
        duration_ms=0.1 + 0.2,
        data_summary={"rows": 10, "columns": ["a", "b"], "missing": {"a": 0.5}},
        metrics={"r2": -0.25, "note": 'with "quotes"\nand lines'},
    )
    other = training_event("e3", "churn", 1, T0 + timedelta(hours=1))
    for event in (second, other, first):
        store.write_training_event(event)
    assert store.training_events() == [first, other, second]
    assert store.training_events("iris") == [first, second]
    assert store.training_events("churn") == [other]
    assert store.training_events("nope") == []
    assert second.params == {} and second.client_id is None
    assert store.training_events("iris")[1] == second
