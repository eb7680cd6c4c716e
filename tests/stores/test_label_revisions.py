"""Every label as it was sent, corrections included: what the poisoning screen of feedback
sources reads (a poisoned label that an honest source corrects later is still evidence)."""

from __future__ import annotations

from datetime import timedelta

from loopwatch.records import Label
from loopwatch.stores import Store
from tests.stores.builders import T0, days, make_request

pytest_plugins = ["tests.postgres_fixtures"]


def _label(value: int, at_days: float, source: str, row: int = 0) -> Label:
    return Label(model_name="churn", label=value, label_time=T0 + timedelta(days=at_days),
                 request_id="r1", row_index=row, client_id=source)


def test_revisions_keep_every_label_as_sent_in_label_time_order(store: Store) -> None:
    store.write_requests([make_request("r1", n_rows=2, model_name="churn"),
                          make_request("r2", n_rows=1, model_name="iris", received_at=T0 + days(1))])
    outcomes = store.write_labels([_label(1, 2.0, "partner"), _label(0, 1.5, "crm", row=1)])
    assert [o.status for o in outcomes] == ["stored", "stored"]
    # the honest source corrects the poisoned label a day later
    assert [o.status for o in store.write_labels([_label(0, 3.0, "crm")])] == ["corrected"]

    sent = list(store.iter_label_revisions("churn"))
    assert [(s.row_index, s.label, s.client_id, s.revision) for s in sent] == [
        (1, 0, "crm", 0), (0, 1, "partner", 0), (0, 0, "crm", 1),
    ]
    current = {(s.row_index, s.client_id) for s in store.iter_labels("churn")}
    assert current == {(1, "crm"), (0, "crm")}  # the poisoned label is no longer current, but was sent

    window = list(store.iter_label_revisions("churn", since=T0 + days(2), until=T0 + days(3)))
    assert [(s.label, s.client_id) for s in window] == [(1, "partner")]  # since inclusive, until exclusive
    assert list(store.iter_label_revisions("iris")) == []
