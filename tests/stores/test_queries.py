"""query_events filters, ordering and pagination; iter/count; delete; retention."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.errors import InvalidInput
from loopwatch.records import ModelSettings, PredictionEvent
from loopwatch.stores import EventQuery, Store
from loopwatch.stores.base import encode_cursor
from tests.stores.builders import T0, event_dict, expected_events, make_request, version_kwargs, write_logged_at
from tests.stores.rawsql import table_count

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc
MINUTE = timedelta(minutes=1)


def key(e: PredictionEvent) -> tuple[str, int]:
    return (e.request_id, e.row_index)


def sort_key(e: PredictionEvent) -> tuple[datetime, str, int]:
    return (e.timestamp, e.request_id, e.row_index)


@pytest.fixture
def loaded(store: Store) -> tuple[Store, list[PredictionEvent]]:
    """A store holding 30 requests (90 events) over two models, versions, clients and types.

    Several requests share a timestamp, so ties are ordered by request id and
    row index; replayed requests spread their rows over time.
    """
    requests = []
    for i in range(30):
        model = "iris" if i % 3 else "churn"
        replay = i % 7 == 0
        at = T0 + (i // 2) * MINUTE  # pairs of requests share a timestamp
        requests.append(
            make_request(
                # ids not in time order, so the tie-break on request_id matters
                f"r{(i * 17) % 30:02d}",
                n_rows=1 + i % 5,
                model_name=model,
                model_version=1 + i % 2,
                client_id=None if i % 4 == 0 else f"c{i % 3}",
                request_type="replay" if replay else ("batch" if i % 5 == 0 else "api"),
                received_at=at,
                timestamps=[at - (k * 7) * MINUTE for k in range(1 + i % 5)] if replay else None,
            )
        )
    # commit in two batches, in an order unrelated to time
    store.write_requests(requests[::2])
    store.write_requests(requests[1::2])
    everything = sorted(store.iter_events(EventQuery(limit=1000)), key=sort_key)
    assert len(everything) == sum(r.n_rows for r in requests) == 90
    written = {(d["request_id"], d["row_index"]): d for r in requests for d in expected_events(r)}
    assert {key(e): event_dict(e) for e in everything} == written
    return store, everything


def test_default_query_returns_all_events_in_order(loaded: tuple[Store, list[PredictionEvent]]) -> None:
    store, everything = loaded
    page = store.query_events(EventQuery())
    assert page.next_cursor is None
    assert page.events == everything
    assert [sort_key(e) for e in page.events] == sorted(sort_key(e) for e in page.events)
    assert len({key(e) for e in page.events}) == len(page.events)
    # ties: at least one timestamp is shared by two requests and one request has several rows
    stamps = [e.timestamp for e in everything]
    assert len(set(stamps)) < len(stamps)


FILTERS = {
    "model": (dict(model_name="iris"), lambda e: e.model_name == "iris"),
    "model_version": (
        dict(model_name="churn", model_version=2),
        lambda e: e.model_name == "churn" and e.model_version == 2,
    ),
    "version_only": (dict(model_version=1), lambda e: e.model_version == 1),
    "since": (dict(since=T0 + 5 * MINUTE), lambda e: e.timestamp >= T0 + 5 * MINUTE),
    "until": (dict(until=T0 + 5 * MINUTE), lambda e: e.timestamp < T0 + 5 * MINUTE),
    "window": (
        dict(since=T0 + 3 * MINUTE, until=T0 + 9 * MINUTE),
        lambda e: T0 + 3 * MINUTE <= e.timestamp < T0 + 9 * MINUTE,
    ),
    "request_id": (dict(request_id="r17"), lambda e: e.request_id == "r17"),
    "client": (dict(client_id="c1"), lambda e: e.client_id == "c1"),
    "request_type": (dict(request_type="replay"), lambda e: e.request_type == "replay"),
    "combined": (
        dict(model_name="iris", client_id="c2", request_type="api", since=T0 + 2 * MINUTE),
        lambda e: (
            e.model_name == "iris"
            and e.client_id == "c2"
            and e.request_type == "api"
            and e.timestamp >= T0 + 2 * MINUTE
        ),
    ),
    "nothing": (dict(model_name="no-such-model"), lambda e: False),
}


def test_filters(loaded: tuple[Store, list[PredictionEvent]]) -> None:
    store, everything = loaded
    for name, (filters, predicate) in FILTERS.items():
        expected = [e for e in everything if predicate(e)]
        if name != "nothing":
            assert 0 < len(expected) < len(everything), f"{name}: the filter must select a proper subset"
        page = store.query_events(EventQuery(**filters))
        assert page.events == expected, name
        assert page.next_cursor is None, name
        # the same filter through pages of 4 and through iter_events
        assert list(store.iter_events(EventQuery(**filters, limit=4))) == expected, name


def test_since_is_inclusive_and_until_exclusive_to_the_microsecond(store: Store) -> None:
    at = datetime(2030, 6, 1, 0, 0, 0, 500000, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    store.write_requests(
        [
            make_request("before", n_rows=1, received_at=at - tick),
            make_request("at", n_rows=1, received_at=at),
            make_request("after", n_rows=1, received_at=at + tick),
        ]
    )

    def ids(**kw: datetime) -> list[str]:
        return [e.request_id for e in store.query_events(EventQuery(**kw)).events]

    assert ids(since=at) == ["at", "after"]
    assert ids(until=at) == ["before"]
    assert ids(since=at, until=at + tick) == ["at"]
    assert ids(since=at, until=at) == []
    # the bound may be given in any time zone
    assert ids(since=at.astimezone(timezone(timedelta(hours=9)))) == ["at", "after"]


def test_naive_time_bounds_are_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.query_events(EventQuery(since=datetime(2024, 1, 1)))


def test_pagination_visits_every_event_exactly_once(loaded: tuple[Store, list[PredictionEvent]]) -> None:
    store, everything = loaded
    for limit in (1, 4, 7, 45, 89, 90, 91):
        seen: list[PredictionEvent] = []
        cursor = None
        pages = 0
        while True:
            page = store.query_events(EventQuery(limit=limit, cursor=cursor))
            pages += 1
            assert len(page.events) <= limit
            seen.extend(page.events)
            if page.next_cursor is None:
                break
            assert len(page.events) == limit
            assert isinstance(page.next_cursor, str) and page.next_cursor != cursor
            cursor = page.next_cursor
            assert pages < 200
        assert seen == everything, limit
        # no empty trailing page, even when the limit divides the number of events
        assert pages == -(-len(everything) // limit), limit


def test_pagination_with_filters_and_a_stable_cursor(loaded: tuple[Store, list[PredictionEvent]]) -> None:
    store, everything = loaded
    expected = [e for e in everything if e.model_name == "iris"]
    first = store.query_events(EventQuery(model_name="iris", limit=5))
    assert first.events == expected[:5] and first.next_cursor is not None
    # a cursor can be used twice and gives the same page
    again = store.query_events(EventQuery(model_name="iris", limit=5, cursor=first.next_cursor))
    twice = store.query_events(EventQuery(model_name="iris", limit=5, cursor=first.next_cursor))
    assert again == twice and again.events == expected[5:10]
    # events written before the cursor position later do not shift the pages after it
    store.write_requests([make_request("zz-early", model_name="iris", received_at=T0 - timedelta(days=1))])
    later = store.query_events(EventQuery(model_name="iris", limit=5, cursor=first.next_cursor))
    assert later.events == expected[5:10]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GARBAGE_CURSORS = [
    "garbage!",
    "%%%%",
    "abc",
    _b64(b"not json"),
    _b64(b"[1, 2]"),
    _b64(b'{"ts": 1}'),
    _b64(b'["1", "r", 0]'),
    _b64(b'[1.5, "r", 0]'),
    _b64(b'[1, "r", 0, 4]'),
    _b64(b"null"),
    # integers out of the 64-bit range a real cursor carries
    _b64(b'[18446744073709551615, "r", 0]'),
    _b64(b'[1, "r", 18446744073709551615]'),
]


def test_garbage_cursor_is_invalid_input(store: Store) -> None:
    store.write_requests([make_request("r1")])
    for cursor in GARBAGE_CURSORS:
        with pytest.raises(InvalidInput):
            store.query_events(EventQuery(cursor=cursor))
    # the store is still fine afterwards
    assert len(store.query_events(EventQuery()).events) == 3


def test_iter_events_and_count_events(loaded: tuple[Store, list[PredictionEvent]]) -> None:
    store, everything = loaded
    assert list(store.iter_events(EventQuery(limit=3))) == everything
    assert store.count_events() == 90
    assert store.count_events("iris") == sum(e.model_name == "iris" for e in everything)
    assert store.count_events("churn") == sum(e.model_name == "churn" for e in everything)
    assert store.count_events("iris") + store.count_events("churn") == 90
    assert store.count_events("nope") == 0
    assert list(store.iter_events(EventQuery(model_name="nope"))) == []


def test_cursor_from_encode_cursor_resumes_after_that_position(
    loaded: tuple[Store, list[PredictionEvent]],
) -> None:
    store, everything = loaded
    pivot = everything[10]
    from loopwatch.stores.base import to_micros

    cursor = encode_cursor(to_micros(pivot.timestamp), pivot.request_id, pivot.row_index)
    assert store.query_events(EventQuery(cursor=cursor, limit=1000)).events == everything[11:]


# --- deleting ------------------------------------------------------------------------------


def test_delete_request_removes_its_events_and_row(store: Store) -> None:
    store.write_requests([make_request("keep", n_rows=2), make_request("drop", n_rows=5)])
    assert store.delete_request("drop") == 5
    assert store.get_request("drop") is None
    assert store.query_events(EventQuery(request_id="drop")).events == []
    assert table_count(store, "requests", "request_id = ?", ("drop",)) == 0
    assert store.count_events() == 2 and store.get_request("keep") is not None
    # deleting again or deleting an unknown id is harmless
    assert store.delete_request("drop") == 0
    assert store.delete_request("never") == 0
    # the id is free again: a new body is stored, not a conflict
    assert [o.status for o in store.write_requests([make_request("drop", n_rows=1, body="new")])] == [
        "stored"
    ]


def test_retention_deletes_only_old_events_of_models_that_set_it(store: Store) -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    for name in ("short", "forever", "long"):
        store.create_model_version(**version_kwargs(name))
    store.set_model_settings("short", ModelSettings(retention_days=7))
    store.set_model_settings("long", ModelSettings(retention_days=365))
    cutoff = now - timedelta(days=7)
    tick = timedelta(microseconds=1)
    # the age that counts is when the store logged a request, whatever its event times
    write_logged_at(store, now - timedelta(days=30), [
        make_request("short-old", n_rows=3, model_name="short", received_at=now - timedelta(days=30)),
        make_request("forever-old", n_rows=4, model_name="forever", received_at=now - timedelta(days=3000)),
        # events of a model the registry does not know are left alone
        make_request("ghost-old", n_rows=1, model_name="ghost", received_at=now - timedelta(days=3000)),
        # a client whose clock ran ahead: young event times, logged long ago
        make_request("short-old-ahead", n_rows=1, model_name="short", received_at=now),
    ])
    write_logged_at(store, cutoff - tick, [
        make_request("short-just-old", n_rows=1, model_name="short", received_at=cutoff - tick)])
    write_logged_at(store, cutoff, [
        make_request("short-at-cutoff", n_rows=1, model_name="short", received_at=cutoff)])
    write_logged_at(store, now - timedelta(days=1), [
        make_request("short-new", n_rows=2, model_name="short", received_at=now - timedelta(days=1)),
        # a backfill: last year's events replayed yesterday are as young as the day they were logged
        make_request(
            "short-backfill", n_rows=3, model_name="short", received_at=now - timedelta(days=1),
            timestamps=[now - timedelta(days=400), now - timedelta(days=300), now - timedelta(days=8)],
            replayed=True,
        ),
        make_request("long-backfill", n_rows=2, model_name="long", received_at=now - timedelta(days=1),
                     timestamps=[now - timedelta(days=900)] * 2, replayed=True),
    ])
    total = store.count_events()

    counts = store.apply_retention(now)
    assert counts == {"short": 3 + 1 + 1, "long": 0}
    assert store.count_events() == total - 5
    assert store.count_events("forever") == 4 and store.count_events("long") == 2
    assert store.count_events("ghost") == 1
    remaining = {(e.request_id, e.row_index) for e in store.iter_events(EventQuery(model_name="short"))}
    assert remaining == {("short-at-cutoff", 0), ("short-new", 0), ("short-new", 1),
                         ("short-backfill", 0), ("short-backfill", 1), ("short-backfill", 2)}
    # a request goes with its events; the others stay
    for gone in ("short-old", "short-just-old", "short-old-ahead"):
        assert store.get_request(gone) is None, gone
    for kept in ("short-backfill", "short-new", "short-at-cutoff", "forever-old", "long-backfill"):
        assert store.get_request(kept) is not None, kept

    # a second run finds nothing more to delete
    assert store.apply_retention(now) == {"short": 0, "long": 0}
    # a later "now" catches up: at-cutoff, both new rows and the three backfilled ones
    assert store.apply_retention(now + timedelta(days=7))["short"] == 6
    assert store.count_events("short") == 0 and table_count(store, "requests", "model_name = ?", ("short",)) == 0
