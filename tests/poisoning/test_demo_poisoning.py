"""The demo's label_poisoning incident: partner-feed is named on the day its labels arrive.

The simulator's timeline has "partner-feed" send labels for recent predictions on day 46,
40% of them flipped, before the CRM export's labels for the same rows arrive. The feedback
screen, run over the labels that arrived that day, must name it (and nobody else), and
must name nobody on the days before. The predictions are replayed into a real SQLite store
at a reduced volume (the benchmark runs the full one).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from loopwatch.config import Settings
from loopwatch.application.prediction import PredictCall
from loopwatch.application.quarantine import screen_feedback
from loopwatch.records import Label
from loopwatch.simulate import ChurnScenario
from loopwatch.application.workspace import Workspace

FIRST_LOGGED_DAY = 28
POISONING_DAY = 46


@pytest.mark.parametrize("seed", [7])
def test_partner_feed_is_named_the_day_its_labels_arrive(seed: int, tmp_path: Path) -> None:
    scenario = ChurnScenario(seed=seed, days=POISONING_DAY + 2, predictions_per_day=300)
    poisoning = scenario.timeline.of_kind("label_poisoning")[0]
    assert poisoning.day == POISONING_DAY and poisoning.touches["source"] == "partner-feed"
    settings = Settings.from_env({}, home=tmp_path, database=str(tmp_path / "lw.db"), sqlite_synchronous="OFF")
    with Workspace(settings) as ws:
        ws.train("churn", scenario.training_data(n=3000), target="churned")
        starts = {}
        for day in scenario.days():
            starts[day.index] = day.start
            if day.index >= FIRST_LOGGED_DAY:
                for k, batch in enumerate(day.batches):
                    logged = ws.predictor.predict(PredictCall(
                        model_name="churn", rows=[dict(r) for r in batch.rows], request_id=f"d{day.index}-{k}",
                        client_id=batch.client_id, timestamps=list(batch.timestamps),
                        entity_ids=list(batch.entity_ids),
                    ))
                    ws.writer.write(logged)
            ws.store.write_labels([
                Label(model_name="churn", label=r.label, label_time=r.label_time, entity_id=r.entity_id,
                      client_id=r.source)
                for r in day.feedback
            ])
        found = screen_feedback(ws.store, "churn", since=starts[POISONING_DAY],
                                until=starts[POISONING_DAY] + timedelta(days=1))
        assert [e.source for e in found] == ["partner-feed"]
        assert found[0].disagreement > found[0].disagreement_others
        for quiet in range(POISONING_DAY - 3, POISONING_DAY):
            assert screen_feedback(ws.store, "churn", since=starts[quiet], until=starts[quiet + 1]) == []
