"""Property tests: whatever JSON-able values and times are logged come back equal.

Each test takes the function-scoped ``store`` (one database per test function,
on both backends) and keeps examples apart with unique request ids or model
names, hence the suppressed ``function_scoped_fixture`` health check.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopwatch.records import LoggedRequest
from loopwatch.stores import EventQuery, Store
from loopwatch.stores.base import from_micros, to_micros
from tests.stores.builders import event_dict, expected_events, make_request

pytest_plugins = ["tests.postgres_fixtures"]

UTC = timezone.utc
STORE_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,  # keep no example database outside tests/stores
)
_unique = itertools.count()

# --- strategies ----------------------------------------------------------------------------

#: Unicode text as JSON carries it: quotes, backslashes, newlines, NUL, emoji (no lone surrogates).
texts = st.text(max_size=12) | st.sampled_from(
    ['"', "\\", "\n", "\r\n", "\t", "\x00", "'; DROP TABLE events; --", "\U0001f600"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
#: Identifiers as the service admits them, plus text that databases treat specially (no NUL).
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """An aware datetime whose instant lies in 1970-2100, with microseconds, in any UTC offset."""
    naive = draw(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59, 999999))
    )
    return naive.replace(tzinfo=UTC).astimezone(draw(offsets))


@st.composite
def logged_requests(draw: st.DrawFn) -> LoggedRequest:
    n = draw(st.integers(min_value=1, max_value=4))
    rows = st.lists(json_values, min_size=0, max_size=3)
    predictions = draw(st.lists(rows, min_size=n, max_size=n))
    probabilities = draw(
        st.none()
        | st.lists(
            st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=3), min_size=n, max_size=n
        )
    )
    data = draw(st.none() | st.lists(st.dictionaries(texts, json_values, max_size=4), min_size=n, max_size=n))
    summaries = draw(st.lists(st.dictionaries(texts, json_values, max_size=2), min_size=n, max_size=n))
    timestamps = draw(st.none() | st.lists(moments(), min_size=n, max_size=n))
    return make_request(
        f"prop-{next(_unique)}-{draw(st.text(alphabet='abcXYZ019-_.:é', max_size=8))}",
        model_name=draw(names),
        model_version=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        request_type=draw(st.sampled_from(["api", "batch", "cli", "replay", "shadow"]) | names),
        client_id=draw(st.none() | names),
        received_at=draw(moments()),
        timestamps=timestamps,
        predictions=predictions,
        probabilities=probabilities,
        data=data,
        row_summaries=summaries,
        request_summary=draw(st.dictionaries(texts, json_values, max_size=3)),
        body=draw(json_values),
        response=draw(st.binary(max_size=64)),
        runtime_ms=draw(st.floats(min_value=0, max_value=1e9, allow_nan=False)),
    )


# --- properties ----------------------------------------------------------------------------


@given(moment=moments())
@settings(max_examples=300, deadline=None, database=None)
def test_micros_round_trip(moment: datetime) -> None:
    back = from_micros(to_micros(moment))
    assert back == moment and back.tzinfo == UTC
    assert back.microsecond == moment.astimezone(UTC).microsecond


@given(batch=st.lists(logged_requests(), min_size=1, max_size=3))
@STORE_SETTINGS
def test_what_is_written_is_what_is_read(store: Store, batch: list[LoggedRequest]) -> None:
    outcomes = store.write_requests(batch)
    assert [(o.status, o.response) for o in outcomes] == [("stored", r.response) for r in batch]
    for request in batch:
        events = sorted(
            store.query_events(EventQuery(request_id=request.request_id)).events, key=lambda e: e.row_index
        )
        assert [event_dict(e) for e in events] == expected_events(request)
        for event, moment in zip(events, (request.row_timestamp(i) for i in range(request.n_rows))):
            assert event.timestamp.tzinfo == UTC
            assert event.timestamp.microsecond == moment.astimezone(UTC).microsecond
        _assert_same_types(
            [e.prediction for e in events] + [e.data for e in events],
            request.predictions + (request.data or [None] * request.n_rows),
        )
        stored = store.get_request(request.request_id)
        assert stored is not None
        assert (stored.model_name, stored.model_version, stored.n_rows) == (
            request.model_name,
            request.model_version,
            request.n_rows,
        )
        assert (stored.body_sha256, stored.response) == (request.body_sha256, request.response)
        # and the fingerprint each event names is there
        assert store.get_fingerprint(events[0].fingerprint_id) == request.fingerprint


def _assert_same_types(read: Any, written: Any) -> None:
    """Equality treats 1 == 1.0 == True; the log must not turn one into another."""
    assert type(read) is type(written), (read, written)
    if isinstance(written, dict):
        assert list(read) == list(written)
        for k in written:
            _assert_same_types(read[k], written[k])
    elif isinstance(written, list):
        for r, w in zip(read, written):
            _assert_same_types(r, w)
    elif isinstance(written, float):
        assert math.copysign(1.0, read) == math.copysign(1.0, written)


@given(
    stamps=st.lists(moments(), min_size=1, max_size=25),
    limit=st.integers(min_value=1, max_value=6),
    window=st.tuples(moments(), moments()),
)
@STORE_SETTINGS
def test_pages_and_windows_match_a_sorted_list(
    store: Store, stamps: list[datetime], limit: int, window: tuple[datetime, datetime]
) -> None:
    model = f"paging-{next(_unique)}"
    # one request per timestamp, some replayed with a few rows at nearby times
    requests = [
        make_request(
            f"{model}-{i:02d}",
            model_name=model,
            n_rows=1 + i % 2,
            received_at=at,
            timestamps=[at, at + timedelta(microseconds=i)] if i % 2 else None,
        )
        for i, at in enumerate(stamps)
    ]
    store.write_requests(requests)
    expected = sorted(
        ((r.row_timestamp(k), r.request_id, k) for r in requests for k in range(r.n_rows)),
    )
    seen: list[tuple[datetime, str, int]] = []
    cursor = None
    while True:
        page = store.query_events(EventQuery(model_name=model, limit=limit, cursor=cursor))
        seen.extend((e.timestamp, e.request_id, e.row_index) for e in page.events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    since, until = sorted(window)
    in_window = [e for e in expected if since <= e[0] < until]
    got = store.query_events(EventQuery(model_name=model, since=since, until=until, limit=1000)).events
    assert [(e.timestamp, e.request_id, e.row_index) for e in got] == in_window
    assert store.count_events(model) == len(expected)
