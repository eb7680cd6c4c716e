from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from loopwatch.simulate import (
    DEFAULT_START,
    INCIDENT_KINDS,
    ChurnScenario,
    Incident,
    Timeline,
    default_timeline,
    stable_timeline,
)


def test_default_timeline_has_each_kind_once_in_order_and_spaced() -> None:
    timeline = default_timeline()
    assert timeline.version == "1"
    kinds = [incident.kind for incident in timeline.incidents]
    assert sorted(kinds) == sorted(INCIDENT_KINDS)
    assert len(set(kinds)) == len(INCIDENT_KINDS) == 7
    days = [incident.day for incident in timeline.incidents]
    assert days == sorted(days)
    assert all(later - earlier >= 6 for earlier, later in zip(days, days[1:]))
    assert all(0 <= day < 70 for day in days)
    for incident in timeline.incidents:
        assert incident.start == DEFAULT_START + timedelta(days=incident.day) + timedelta(
            hours=incident.start.hour
        )
        assert incident.effect_unit
        assert incident.touches
        assert incident.description


def test_data_incidents_end_before_the_next_incident_and_concept_drift_persists() -> None:
    timeline = default_timeline()
    incidents = timeline.incidents
    for incident, following in zip(incidents, incidents[1:]):
        if incident.kind in ("covariate_shift", "selection_bias", "software_change", "adversarial_probing"):
            assert incident.end is not None and incident.end <= following.start
    (drift,) = timeline.of_kind("concept_drift")
    assert drift.end is None
    assert drift.max_delay_days >= 14 + 3
    assert all(i.max_delay_days <= 3 for i in incidents if i.kind != "concept_drift")


def test_default_timeline_is_parameterised() -> None:
    timeline = default_timeline(covariate_shift_day=5, covariate_shift_sd=0.3, selection_bias_share=0.1)
    (shift,) = timeline.of_kind("covariate_shift")
    assert (shift.day, shift.effect_size) == (5, 0.3)
    assert timeline.of_kind("selection_bias")[0].effect_size == 0.1


def test_timeline_to_dict_is_json_and_round_trips() -> None:
    timeline = default_timeline()
    data = json.loads(json.dumps(timeline.to_dict()))
    assert data["version"] == "1"
    assert len(data["incidents"]) == 7
    first = data["incidents"][0]
    assert set(first) >= {"kind", "day", "start", "effect_size", "effect_unit", "max_delay_days", "touches"}
    assert datetime.fromisoformat(first["start"]).utcoffset() == timedelta(0)
    assert Timeline.from_dict(data) == timeline


def test_touches_name_what_each_incident_touches() -> None:
    touches = {incident.kind: dict(incident.touches) for incident in default_timeline().incidents}
    assert touches["covariate_shift"] == {"feature": "watch_hours"}
    assert touches["selection_bias"] == {"country": "BR"}
    assert touches["software_change"] == {
        "client_id": "mobile-app",
        "client_version": "3.0.0",
        "feature": "watch_hours",
    }
    assert touches["adversarial_probing"] == {"client_id": "probe-7"}
    assert touches["label_poisoning"] == {"source": "partner-feed"}
    assert touches["latency_regression"] == {"model_version": 2}


def test_latency_model_spec() -> None:
    spec = ChurnScenario(seed=1, predictions_per_day=10).latency_model_spec()
    assert spec is not None
    assert spec.model_version == 2
    assert spec.estimator == "random_forest"  # a loopwatch estimator name
    assert spec.params["n_estimators"] == 300
    assert spec.deploy_day == 56
    json.dumps(spec.to_dict())
    assert ChurnScenario(seed=1, timeline=stable_timeline()).latency_model_spec() is None


def test_incident_validation() -> None:
    good = default_timeline().incidents[0]
    with pytest.raises(ValueError, match="unknown incident kind"):
        Incident.from_dict({**good.to_dict(), "kind": "meteor"})
    with pytest.raises(ValueError, match="UTC"):
        Incident.from_dict({**good.to_dict(), "start": "2026-01-13T00:00:00"})
    with pytest.raises(ValueError, match="order"):
        Timeline(incidents=tuple(reversed(default_timeline().incidents)))


def test_scenario_rejects_incidents_outside_the_period() -> None:
    with pytest.raises(ValueError, match="outside the 30-day period"):
        ChurnScenario(seed=1, days=30, timeline=default_timeline())
    with pytest.raises(ValueError, match="not that day"):
        ChurnScenario(seed=1, start=datetime(2026, 2, 1, tzinfo=UTC), timeline=default_timeline())
    with pytest.raises(ValueError, match="seed"):
        ChurnScenario(seed=-1)


def test_compressed_timeline_fits_a_short_period() -> None:
    timeline = default_timeline(
        covariate_shift_day=2,
        selection_bias_day=4,
        software_change_day=6,
        concept_drift_day=8,
        adversarial_probing_day=10,
        label_poisoning_day=12,
        latency_regression_day=14,
        data_incident_days=1.0,
    )
    scenario = ChurnScenario(seed=3, days=16, predictions_per_day=50, timeline=timeline)
    assert sum(day.n_predictions for day in scenario.days()) > 16 * 50


def test_a_shorter_period_keeps_the_default_incidents_that_fit() -> None:
    scenario = ChurnScenario(seed=1, days=20, predictions_per_day=10)
    assert [incident.kind for incident in scenario.timeline.incidents] == ["covariate_shift", "selection_bias"]
    assert scenario.latency_model_spec() is None
