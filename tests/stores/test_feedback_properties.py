"""Property tests: whatever labels and business observations are stored come back equal."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from loopwatch.records import BusinessObservation, Label, LabelOutcome
from loopwatch.stores import Store
from tests.stores.builders import make_request
from tests.stores.test_properties import STORE_SETTINGS, moments, names, texts

pytest_plugins = ["tests.postgres_fixtures"]

_unique = itertools.count()

label_values = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
keys = names.filter(lambda s: len(s) <= 200)


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def equivalent(a: Any, b: Any) -> bool:
    """One label value: booleans and strings by type and value, numbers by value (1 is 1.0)."""
    def kind(v: Any) -> str:
        return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "number"

    return kind(a) == kind(b) and a == b


@STORE_SETTINGS
@given(
    values=st.lists(label_values, min_size=1, max_size=4),
    times=st.lists(moments(), min_size=4, max_size=4),
    entity=keys,
    client=st.none() | keys,
)
def test_labels_round_trip_with_their_history(
    store: Store, values: list[Any], times: list[datetime], entity: str, client: str | None
) -> None:
    n = next(_unique)
    model, request_id = f"m{n}", f"r{n}"
    store.write_requests([make_request(request_id, n_rows=1, model_name=model, received_at=times[0],
                                       entity_ids=[entity])])
    written = []
    for value, at in zip(values, itertools.cycle(times[1:])):
        by_entity = len(written) % 2 == 1
        key = {"entity_id": entity} if by_entity else {"request_id": request_id, "row_index": 0}
        (outcome,) = store.write_labels([Label(model_name=model, label=value, label_time=at, client_id=client,
                                               received_at=times[3], **key)])
        if written and equivalent(written[-1][0], value):
            assert outcome == LabelOutcome("duplicate", request_id, 0)
        else:
            assert outcome == LabelOutcome("corrected" if written else "stored", request_id, 0)
            written.append((value, at))
    history = store.label_history(model, request_id, 0)
    assert len(history) == len(written)
    for revision, (stored, (value, at)) in enumerate(zip(history, written)):
        assert same(stored.label, value), (stored.label, value)
        assert stored.label_time == at and stored.label_time.tzinfo is not None
        assert (stored.revision, stored.client_id, stored.entity_id) == (revision, client, entity)
        assert stored.prediction_time == times[0] and stored.received_at == times[3]
    (current,) = list(store.iter_labels(model))
    assert current == history[-1]


@STORE_SETTINGS
@given(
    observations=st.lists(
        st.builds(
            BusinessObservation,
            name=keys,
            timestamp=moments(),
            value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
            segment=st.none() | keys,
            client_id=st.none() | keys,
            received_at=moments(),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda o: (o.name, o.timestamp, o.segment),
    )
)
def test_business_observations_round_trip(store: Store, observations: list[BusinessObservation]) -> None:
    prefix = f"n{next(_unique)}:"
    mine = [BusinessObservation(**{**o.__dict__, "name": prefix + o.name[:190]}) for o in observations]
    mine = list({(o.name, o.timestamp, o.segment): o for o in mine}.values())
    assert store.write_business_metrics(mine) == len(mine)
    found = [o for o in store.query_business_metrics() if o.name.startswith(prefix)]
    key = lambda o: (o.timestamp, o.name, o.segment or "")  # noqa: E731
    assert sorted(found, key=key) == sorted(mine, key=key)
    for o in found:
        assert isinstance(o.value, float) and o.timestamp.tzinfo is not None
    assert store.write_business_metrics(mine) == 0
