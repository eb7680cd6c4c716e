"""The demo's strict grading, as pure logic: each injected incident explains only findings of
its own kind (a probing client's queries also explain evasion findings); every other finding,
inside an incident's period or not, and every signal tied to no incident, is a false alarm."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import pytest

from loopwatch.demo.grading import EXPLAINS, LOOP_GRADED, grade_loops

START = datetime(2026, 1, 5, tzinfo=timezone.utc)
TIMELINE = {"incidents": [
    {"kind": "covariate_shift", "day": 8, "duration_days": 4.0, "max_delay_days": 2.0, "touches": {}},
    {"kind": "concept_drift", "day": 30, "duration_days": None, "max_delay_days": 21.0, "touches": {}},
    {"kind": "adversarial_probing", "day": 38, "duration_days": 0.125, "max_delay_days": 1.0,
     "touches": {"client_id": "probe-7"}},
]}


def raised(kind: str, first: int, detected: int | None = None, **evidence: Any) -> dict[str, Any]:
    loop = LOOP_GRADED.get(kind, "model_selection")
    return {"kind": kind, "loop": loop, "incident_id": f"churn:{kind}:{first}", "summary": f"{kind} on day {first}",
            "first_seen": (START + timedelta(days=first)).isoformat(),
            "detected_at": (START + timedelta(days=first if detected is None else detected)).isoformat(),
            "evidence": evidence}


def grade(incidents: list[dict[str, Any]], recommendations: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return grade_loops(TIMELINE, incidents, start=START, n_days=70, recommendations=recommendations)


RIGHT = [raised("covariate_shift", 8, 9), raised("concept_drift", 30, 46),
         raised("adversarial_probing", 38, 39, client_id="k1", client_name="probe-7")]


def test_findings_of_the_incidents_own_kinds_are_all_explained() -> None:
    graded = grade(RIGHT)
    assert graded["false_alarms"] == []
    assert [(g["kind"], g["detected_day"], g["correct"]) for g in graded["incidents"]] == [
        ("covariate_shift", 9, True), ("concept_drift", 46, True), ("adversarial_probing", 39, True)]


def test_a_finding_of_another_kind_inside_an_incidents_period_is_a_false_alarm() -> None:
    # a concept drift on predictions of the covariate shift's days: the shift does not cause one
    graded = grade([*RIGHT, raised("concept_drift", 9, 24)])
    assert [(f["day"], f["kind"]) for f in graded["false_alarms"]] == [(9, "concept_drift")]
    # the graded detections are unchanged: the stray finding is of a kind the shift does not explain
    assert [g["correct"] for g in graded["incidents"]] == [True, True, True]


def test_an_overfitting_gap_is_a_false_alarm_even_inside_an_input_incident() -> None:
    signal = {"loop": "model_selection", "reason": "overfitting_gap", "incident_id": None,
              "action": "Version 1 performs below its holdout", "evidence": {}}
    tied = {"loop": "eda", "reason": "covariate_shift", "incident_id": RIGHT[0]["incident_id"],
            "action": "explore", "evidence": {}}
    graded = grade(RIGHT, [signal, tied])
    assert graded["false_alarms"] == [{"day": None, "kind": "overfitting_gap", "loop": "model_selection",
                                       "summary": "Version 1 performs below its holdout"}]


def test_a_finding_outside_every_period_is_a_false_alarm() -> None:
    graded = grade([*RIGHT, raised("covariate_shift", 20), raised("latency_regression", 3)])
    assert sorted((f["day"], f["kind"]) for f in graded["false_alarms"]) == [
        (3, "latency_regression"), (20, "covariate_shift")]


def test_probing_explains_evasion_and_nothing_else() -> None:
    assert EXPLAINS["adversarial_probing"] == ("adversarial_probing", "adversarial_evasion")
    graded = grade([*RIGHT, raised("adversarial_evasion", 38), raised("covariate_shift", 38)])
    assert [(f["day"], f["kind"]) for f in graded["false_alarms"]] == [(38, "covariate_shift")]


@pytest.mark.parametrize("kind", sorted(EXPLAINS))
def test_every_kind_explains_its_own_findings(kind: str) -> None:
    assert kind in EXPLAINS[kind]


def test_when_no_finding_of_its_kind_exists_the_one_taken_for_it_is_shown_and_counted_false() -> None:
    # the covariate shift was taken for a selection bias: graded wrong, and a false alarm besides
    graded = grade([raised("selection_bias", 8, 9), *RIGHT[1:]])
    shift = graded["incidents"][0]
    assert (shift["diagnosis"], shift["correct"]) == ("selection_bias", False)
    assert [(f["day"], f["kind"]) for f in graded["false_alarms"]] == [(8, "selection_bias")]


def test_a_detection_after_the_deadline_is_not_correct() -> None:
    graded = grade([RIGHT[0], raised("concept_drift", 30, 53), RIGHT[2]])
    concept = graded["incidents"][1]
    assert (concept["detected_day"], concept["deadline_day"], concept["in_time"], concept["correct"]) == (
        53, 51, False, False)
    assert graded["false_alarms"] == []
