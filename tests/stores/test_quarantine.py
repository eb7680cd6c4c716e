"""The quarantine of training rows (migration 6), on both backends."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from loopwatch.errors import InvalidInput, NotFound
from loopwatch.poisoning.records import QuarantineEntry, is_releasable, parse_entry_id, storable_reasons
from loopwatch.stores import Store
from tests.stores.builders import T0, days

pytest_plugins = ["tests.postgres_fixtures"]


def entry(request_id: str = "req-1", row_index: int = 0, **changes: object) -> QuarantineEntry:
    base = QuarantineEntry(
        model_name="churn", request_id=request_id, row_index=row_index, label_revision=0,
        reasons=("label_flip", "source:partner-feed"), source="partner-feed", quarantined_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_migration_6_is_applied(store: Store) -> None:
    assert 6 in store.applied_migrations()
    assert store.migrate() == []


def test_rows_round_trip_oldest_first(store: Store) -> None:
    rows = [entry("b", 1, quarantined_at=T0 + days(1)), entry("a", 2, reasons=("backdoor:fee=13.37&plan=ü",)),
            entry("a", 1, source=None)]
    assert store.quarantine_rows(rows) == 3
    assert store.quarantine_rows([]) == 0
    listed = store.list_quarantine("churn")
    assert listed == [rows[2], rows[1], rows[0]]
    assert listed[0].id == "a:1" and listed[1].reasons == ("backdoor:fee=13.37&plan=ü",)
    assert store.list_quarantine("other") == []
    assert store.count_quarantine("churn") == {"quarantined": 3, "released": 0}
    assert store.list_quarantine("churn", limit=2) == listed[:2]
    assert store.list_quarantine("churn", limit=2, offset=2) == listed[2:]
    assert store.list_quarantine("churn", limit=None, offset=1) == listed[1:]
    for bad in ({"limit": -1}, {"offset": -1}, {"limit": True}):
        with pytest.raises(InvalidInput):
            store.list_quarantine("churn", **bad)  # type: ignore[arg-type]


def test_a_release_holds_for_the_label_it_was_given_for(store: Store) -> None:
    store.quarantine_rows([entry("r", 0), entry("r", 1), entry("r", 2)])
    released = store.release_quarantine("churn", [("r", 0), ("r", 1), ("r", 0)], by="ana", at=T0 + days(2))
    assert [(e.id, e.released_at, e.released_by) for e in released] == [
        ("r:0", T0 + days(2), "ana"), ("r:1", T0 + days(2), "ana")
    ]
    assert store.count_quarantine("churn") == {"quarantined": 1, "released": 2}
    assert [e.id for e in store.list_quarantine("churn", released=True)] == ["r:0", "r:1"]
    assert [e.id for e in store.list_quarantine("churn", released=False)] == ["r:2"]
    # releasing again keeps the first release
    again = store.release_quarantine("churn", [("r", 0)], by="bo", at=T0 + days(3))
    assert (again[0].released_by, again[0].released_at) == ("ana", T0 + days(2))
    # screened again with the same label: new reasons, same time, still released
    store.quarantine_rows([entry("r", 0, reasons=("far_from_reference",), quarantined_at=T0 + days(5))])
    same = store.list_quarantine("churn", released=True)[0]
    assert (same.reasons, same.quarantined_at, same.released_by) == (("far_from_reference",), T0, "ana")
    # a corrected label is a new row to judge: unreleased, quarantined anew
    store.quarantine_rows([entry("r", 1, label_revision=1, quarantined_at=T0 + days(6))])
    fresh = [e for e in store.list_quarantine("churn") if e.id == "r:1"][0]
    assert (fresh.label_revision, fresh.released_at, fresh.released_by, fresh.quarantined_at) == (
        1, None, None, T0 + days(6)
    )


def test_releasing_an_unknown_row_changes_nothing(store: Store) -> None:
    store.quarantine_rows([entry("r", 0)])
    with pytest.raises(NotFound) as caught:
        store.release_quarantine("churn", [("r", 0), ("r", 9)], by=None, at=T0)
    assert caught.value.detail == {"missing": ["r:9"]}
    assert store.count_quarantine("churn") == {"quarantined": 1, "released": 0}
    with pytest.raises(NotFound):
        store.release_quarantine("iris", [("r", 0)], by=None, at=T0)  # another model's row
    assert store.release_quarantine("churn", [], by=None, at=T0) == []


def test_many_rows_in_one_release(store: Store) -> None:
    rows = [entry("bulk", i) for i in range(1000)]
    assert store.quarantine_rows(rows) == 1000
    released = store.release_quarantine("churn", [(e.request_id, e.row_index) for e in rows], by="ops", at=T0)
    assert len(released) == 1000 and all(e.released for e in released)
    assert store.count_quarantine("churn") == {"quarantined": 0, "released": 1000}


def test_concurrent_screenings_leave_one_row_each(store: Store) -> None:
    errors: list[BaseException] = []

    def screen(k: int) -> None:
        try:
            store.quarantine_rows([entry("race", i, reasons=(f"label_flip{k}",)) for i in range(50)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=screen, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count_quarantine("churn") == {"quarantined": 50, "released": 0}


def test_records_refuse_what_the_database_could_not_hold() -> None:
    for bad in ({"reasons": ()}, {"reasons": ("x\x00",)}, {"row_index": -1}, {"label_revision": True},
                {"request_id": ""}, {"source": "s" * 201}, {"reasons": ("r",) * 21}):
        with pytest.raises(InvalidInput):
            entry(**bad)
    assert parse_entry_id("a:b:12") == ("a:b", 12)
    for bad_id in ("nocolon", ":1", "r:-1", "r:x", "r:99999999999", 7, "r:2147483648"):
        with pytest.raises(InvalidInput):
            parse_entry_id(bad_id)
    assert is_releasable(["label_flip", "source:crm"]) and not is_releasable(["label_flip", "schema:age"])
    assert entry().to_dict()["quarantined_at"] == "2024-05-17T12:30:45.123456Z"
    # what a screen says is made storable, whatever a category value held
    stored = storable_reasons(["backdoor:plan=a\x00b", "x" * 400, ""] + ["r"] * 30)
    assert stored[:3] == ("backdoor:plan=a\\0b", "x" * 300, "?") and len(stored) == 20
    assert entry(reasons=stored).reasons == stored
