"""Per-model extraction defences of the predict response (``probability_decimals`` and
``withhold_probabilities`` in the monitoring configuration): the answer is coarsened or
left without probabilities, while the logged event keeps them in full for monitoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from loopwatch.stores.base import EventQuery
from tests.api.helpers import PREDICT, assert_error

CONFIG = "/v1/models/churn/monitoring-config"


def _logged(trained: Any, request_id: str) -> list[list[float]]:
    events = sorted(trained.store.iter_events(EventQuery(request_id=request_id)), key=lambda e: e.row_index)
    return [e.probability for e in events]


def test_by_default_the_answer_holds_the_full_probabilities(client, trained, rows) -> None:  # type: ignore[no-untyped-def]
    body = client.post(PREDICT, json={"rows": rows}).json()
    assert len(body["classes"]) == 2
    assert body["probabilities"] == _logged(trained, body["request_id"])  # exactly, not rounded


@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_rounded_answers_and_full_events(client, trained, rows, decimals: int) -> None:  # type: ignore[no-untyped-def]
    assert client.put(CONFIG, json={"probability_decimals": decimals}).status_code == 200
    answer = client.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": f"rounded-{decimals}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    full = np.asarray(_logged(trained, body["request_id"]))
    shown = np.asarray(body["probabilities"])
    np.testing.assert_array_equal(shown, np.round(full, decimals))
    assert not np.array_equal(shown, full)  # the event is not rounded
    assert all(p == round(p, decimals) for p in shown.ravel())
    # the label is the model's, not re-derived from the coarse numbers
    assert [row[0] for row in body["predictions"]] == list(np.asarray(body["classes"])[full.argmax(axis=1)])
    # a retry of the same request gets the stored, rounded answer again
    again = client.post(PREDICT, json={"rows": rows}, headers={"X-Request-ID": f"rounded-{decimals}"})
    assert again.json() == body


def test_withheld_probabilities_leave_only_the_labels(client, trained, rows) -> None:  # type: ignore[no-untyped-def]
    assert client.put(CONFIG, json={"withhold_probabilities": True}).status_code == 200
    body = client.post(PREDICT, json={"rows": rows}).json()
    assert "probabilities" not in body
    assert len(body["predictions"]) == len(rows) and len(body["classes"]) == 2
    logged = _logged(trained, body["request_id"])
    assert len(logged) == len(rows) and all(len(p) == 2 and abs(sum(p) - 1) < 1e-9 for p in logged)


def test_the_settings_are_versioned_and_shown(client) -> None:  # type: ignore[no-untyped-def]
    saved = client.put(CONFIG, json={"probability_decimals": 3, "withhold_probabilities": False}).json()
    assert saved["config"]["probability_decimals"] == 3
    shown = client.get(CONFIG).json()["config"]
    assert (shown["probability_decimals"], shown["withhold_probabilities"]) == (3, False)
    assert client.put(CONFIG, json={"probability_decimals": None}).json()["config"]["probability_decimals"] is None


@pytest.mark.parametrize(
    "change",
    [{"probability_decimals": -1}, {"probability_decimals": 16}, {"probability_decimals": "2"},
     {"probability_decimals": 1.5}, {"probability_decimals": True}, {"withhold_probabilities": "yes"},
     {"withhold_probabilities": 1}, {"withhold_probabilities": None}],
)
def test_bad_values_are_refused(client, change: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.put(CONFIG, json=change), 422)
    assert client.get(CONFIG).json()["version"] is None  # nothing was stored
