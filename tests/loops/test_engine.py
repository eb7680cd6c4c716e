"""The loop engine: every kind has a loop and an action, findings merge into incidents,
incidents and signals become recommendations, and every result is JSON-ready."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.loops.performance_evidence import (
    LabelCoverage, MetricInterval, PerformanceEvidence, PerformanceWindow, VersionPerformance,
)
from loopwatch.loops.evidence import WindowEvidence
from loopwatch.loops import (
    DEFAULT_LOOP,
    INCIDENT_KINDS,
    LOOP_TITLES,
    LOOPS,
    SIGNALS,
    Finding,
    Incident,
    LoopReport,
    Recommendation,
    loop_of,
    merge_findings,
    recommendations,
)

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def finding(kind: str = "covariate_shift", day: int = 0, *, severity: float = 0.2, available: timedelta = DAY,
            length: timedelta = DAY, **evidence: object) -> Finding:
    start = T0 + day * DAY
    return Finding(kind=kind, window_start=start, window_end=start + length, available_at=start + available,
                   severity=severity, summary=f"{kind} on day {day}", evidence=dict(evidence))


# --- kinds and loops -------------------------------------------------------------------------

def test_the_lists_agree() -> None:
    assert set(DEFAULT_LOOP) == set(INCIDENT_KINDS) | set(SIGNALS)
    assert set(DEFAULT_LOOP.values()) <= set(LOOPS)
    assert set(LOOP_TITLES) == set(LOOPS)
    assert not set(INCIDENT_KINDS) & set(SIGNALS)


@pytest.mark.parametrize("kind", INCIDENT_KINDS)
@pytest.mark.parametrize("evidence", [{}, {"estimate_dropped": True, "drifted_features": {"a": 0.1}}])
def test_every_incident_kind_has_a_loop_and_an_action(kind: str, evidence: dict[str, object]) -> None:
    loop, action = loop_of(kind, evidence)
    assert loop in LOOPS
    assert action.strip()


def test_covariate_shift_goes_to_eda_while_the_estimate_holds() -> None:
    loop, action = loop_of("covariate_shift", {"drifted_features": {"tenure": 0.3}, "estimate_dropped": False})
    assert loop == "eda"
    assert "tenure" in action


def test_covariate_shift_goes_to_model_selection_when_the_estimate_dropped() -> None:
    loop, action = loop_of("covariate_shift", {"drifted_features": {"tenure": 0.3}, "estimate_dropped": True})
    assert loop == "model_selection"
    assert "tenure" in action


@pytest.mark.parametrize(
    ("kind", "loop"),
    [
        ("selection_bias", "data_collection"),
        ("software_change", "model_selection"),
        ("concept_drift", "model_selection"),
        ("latency_regression", "model_selection"),
    ],
)
def test_the_loop_of_each_kind(kind: str, loop: str) -> None:
    assert loop_of(kind, {})[0] == loop
    assert loop_of(kind, {"estimate_dropped": True})[0] == loop


def test_the_action_names_the_software_and_the_versions() -> None:
    change = {"what": "client_version", "value": "2.4.0", "share": 0.3, "features": ["tenure"]}
    # evidence recorded before the client was kept apart still reads as one quoted name
    assert 'client version "2.4.0"' in loop_of("software_change", {"software_change": change})[1]
    without_version = {**change, "value": "batch-job -", "client": "batch-job", "client_version": None}
    action = loop_of("software_change", {"software_change": without_version})[1]
    assert 'client "batch-job", which sends no client version' in action and "-" not in action.split("batch-job")[1]
    assert "[3, 4]" in loop_of("latency_regression", {"model_versions": [3, 4]})[1]


# --- merging ---------------------------------------------------------------------------------------

def test_consecutive_windows_of_one_kind_are_one_incident() -> None:
    parts = [finding(day=0, severity=0.2, available=2 * DAY), finding(day=1, severity=0.5),
             finding(day=2, severity=0.3)]
    (incident,) = merge_findings("churn", parts, gap=DAY)
    assert incident.first_seen == T0
    assert incident.last_seen == T0 + 3 * DAY
    assert incident.detected_at == T0 + 2 * DAY  # day 1's finding existed first
    assert incident.findings == 3
    assert incident.severity == 0.5
    assert incident.summary == "covariate_shift on day 1"  # the strongest finding speaks for it
    assert incident.model == "churn" and incident.kind == "covariate_shift"


def test_the_order_of_the_findings_does_not_matter() -> None:
    parts = [finding(day=d, severity=0.1 * (d + 1)) for d in range(4)]
    assert merge_findings("m", parts, gap=DAY) == merge_findings("m", parts[::-1], gap=DAY)


def test_a_gap_larger_than_gap_starts_a_new_incident() -> None:
    parts = [finding(day=0), finding(day=1), finding(day=5), finding(day=6)]
    first, second = merge_findings("churn", parts, gap=DAY)
    assert (first.first_seen, first.last_seen, first.findings) == (T0, T0 + 2 * DAY, 2)
    assert (second.first_seen, second.last_seen, second.findings) == (T0 + 5 * DAY, T0 + 7 * DAY, 2)
    assert first.incident_id != second.incident_id
    # with a longer gap, the quiet days in between do not split it
    (whole,) = merge_findings("churn", parts, gap=4 * DAY)
    assert whole.findings == 4


def test_adjacent_windows_merge_even_with_a_zero_gap() -> None:
    assert len(merge_findings("m", [finding(day=0), finding(day=1)], gap=timedelta(0))) == 1


def test_two_clients_named_in_one_window_are_two_incidents() -> None:
    """An incident of a kind that names a client names one client: a second probing client in
    the same days is its own incident, not hidden behind the more severe one."""
    parts = [finding("adversarial_probing", 0, severity=0.9, client_id="a"),
             finding("adversarial_probing", 0, severity=0.6, client_id="b"),
             finding("adversarial_probing", 1, severity=0.7, client_id="a"),
             finding("adversarial_evasion", 1, client_id="b")]
    incidents = merge_findings("churn", parts, gap=DAY)
    named = sorted((i.kind, i.evidence["client_id"], i.findings) for i in incidents)
    assert named == [("adversarial_evasion", "b", 1), ("adversarial_probing", "a", 2), ("adversarial_probing", "b", 1)]
    assert len({i.incident_id for i in incidents}) == 3
    # kinds that name no client still merge as before
    assert len(merge_findings("churn", [finding(day=0, client_id="a"), finding(day=0, client_id="b")], gap=DAY)) == 1


def test_different_kinds_never_merge() -> None:
    parts = [finding("covariate_shift", 0), finding("latency_regression", 0), finding("covariate_shift", 1),
             finding("latency_regression", 1), finding("selection_bias", 1)]
    incidents = merge_findings("churn", parts, gap=DAY)
    assert Counter(i.kind for i in incidents) == {"covariate_shift": 1, "latency_regression": 1,
                                                  "selection_bias": 1}
    assert {i.kind: i.findings for i in incidents} == {"covariate_shift": 2, "latency_regression": 2,
                                                       "selection_bias": 1}


def test_each_incident_takes_the_loop_of_its_kind() -> None:
    parts = [finding(kind) for kind in INCIDENT_KINDS]
    for incident in merge_findings("churn", parts, gap=DAY):
        assert (incident.loop, incident.action) == loop_of(incident.kind, incident.evidence)


def test_an_incident_escalates_when_the_estimate_drops_in_a_later_window() -> None:
    held = finding(day=0, severity=0.6, drifted_features={"tenure": 0.6}, estimate_dropped=False)
    dropped = finding(day=1, severity=0.3, drifted_features={"tenure": 0.3}, estimate_dropped=True)
    (incident,) = merge_findings("churn", [held, dropped], gap=DAY)
    assert incident.loop == "model_selection"
    assert incident.evidence["estimate_dropped"] is True
    assert incident.severity == 0.6


def test_the_loop_never_contradicts_the_evidence_shown() -> None:
    dropped = finding(day=0, severity=0.2, estimate_dropped=True)
    stronger_held = finding(day=1, severity=0.9, estimate_dropped=False)
    (incident,) = merge_findings("churn", [dropped, stronger_held], gap=DAY)
    assert (incident.loop, incident.action) == loop_of(incident.kind, incident.evidence)
    assert incident.loop == "model_selection" and incident.evidence["estimate_dropped"] is True
    assert incident.severity == 0.9


def test_incident_ids_are_stable_and_unique() -> None:
    parts = [finding("covariate_shift", d) for d in (0, 1, 4)] + [finding("concept_drift", 0)]
    first = [i.incident_id for i in merge_findings("churn", parts, gap=DAY)]
    again = [i.incident_id for i in merge_findings("churn", list(parts), gap=DAY)]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(i.startswith("churn:") for i in first)


def test_incident_ids_stay_unique_when_incidents_start_within_one_minute() -> None:
    second = timedelta(seconds=1)
    parts = [Finding(kind="latency_regression", window_start=T0 + k * 10 * second,
                     window_end=T0 + (k * 10 + 1) * second, available_at=T0 + (k * 10 + 1) * second,
                     severity=1.5, summary="slow") for k in range(3)]
    incidents = merge_findings("m", parts, gap=second)
    assert len(incidents) == 3
    assert len({i.incident_id for i in incidents}) == 3


def test_the_id_does_not_depend_on_the_time_zone_it_was_written_in() -> None:
    paris = timezone(timedelta(hours=1))
    utc = finding(day=0)
    local = Finding(**{**vars(utc), "window_start": utc.window_start.astimezone(paris),
                       "window_end": utc.window_end.astimezone(paris)})
    assert merge_findings("m", [utc], gap=DAY)[0].incident_id == merge_findings("m", [local], gap=DAY)[0].incident_id


def test_a_negative_gap_is_refused() -> None:
    with pytest.raises(InvalidInput):
        merge_findings("m", [finding()], gap=-DAY)


def test_no_findings_no_incidents() -> None:
    assert merge_findings("m", [], gap=DAY) == []


moments = st.integers(min_value=0, max_value=60 * 24 * 30).map(lambda minutes: T0 + timedelta(minutes=minutes))
random_findings = st.builds(
    lambda kind, start, length, delay, severity, dropped: Finding(
        kind=kind, window_start=start, window_end=start + length, available_at=start + length + delay,
        severity=severity, summary=f"{kind} {severity}", evidence={"estimate_dropped": dropped},
    ),
    st.sampled_from(INCIDENT_KINDS),
    moments,
    st.integers(min_value=0, max_value=3 * 24 * 60).map(lambda m: timedelta(minutes=m)),
    st.integers(min_value=0, max_value=20 * 24 * 60).map(lambda m: timedelta(minutes=m)),
    st.sampled_from([0.1, 0.5, 2.0]),  # few values, so ties happen
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(random_findings, max_size=30),
       st.integers(min_value=0, max_value=5 * 24 * 60).map(lambda m: timedelta(minutes=m)))
def test_every_finding_belongs_to_exactly_one_incident_of_its_kind(findings: list[Finding], gap: timedelta) -> None:
    incidents = merge_findings("m", findings, gap=gap)
    assert _sum_findings(incidents) == Counter(f.kind for f in findings)
    assert len({i.incident_id for i in incidents}) == len(incidents)
    assert merge_findings("m", findings[::-1], gap=gap) == incidents
    for kind in {i.kind for i in incidents}:
        mine = sorted((i for i in incidents if i.kind == kind), key=lambda i: i.first_seen)
        for earlier, later in zip(mine, mine[1:]):
            assert earlier.last_seen < later.first_seen  # incidents of one kind never overlap
            assert later.first_seen - earlier.last_seen > gap
    for incident in incidents:
        covered = [f for f in findings if f.kind == incident.kind
                   and incident.first_seen <= f.window_start <= incident.last_seen]
        assert len(covered) == incident.findings
        assert incident.first_seen == min(f.window_start for f in covered)
        assert incident.last_seen == max(f.window_end for f in covered)
        assert incident.detected_at == min(f.available_at for f in covered)
        assert incident.severity == max(f.severity for f in covered)
        assert (incident.loop, incident.action) == loop_of(incident.kind, incident.evidence)
        json.dumps(incident.to_dict())


def _sum_findings(incidents: list[Incident]) -> Counter[str]:
    out: Counter[str] = Counter()
    for incident in incidents:
        out[incident.kind] += incident.findings
    return out


# --- recommendations and JSON ----------------------------------------------------------------

def test_one_recommendation_per_incident_then_the_signals() -> None:
    incidents = merge_findings("churn", [finding("covariate_shift", 0), finding("concept_drift", 3),
                                         finding("selection_bias", 6)], gap=DAY)
    signal = Recommendation(loop="data_collection", reason="low_label_coverage", action="Label more.",
                            incident_id=None, evidence={"coverage": 0.01})
    out = recommendations(incidents, [signal])
    assert len(out) == len(incidents) + 1
    assert out[-1] == signal
    for rec, incident in zip(out, incidents):
        assert (rec.loop, rec.reason, rec.action, rec.incident_id) == (
            incident.loop, incident.kind, incident.action, incident.incident_id)
    for rec in out:
        data = json.loads(json.dumps(rec.to_dict()))
        assert data["loop_title"] == LOOP_TITLES[rec.loop]
        assert data["action"]


def test_recommendations_without_signals() -> None:
    incidents = merge_findings("churn", [finding("latency_regression", 0)], gap=DAY)
    (rec,) = recommendations(incidents)
    assert rec.loop == "model_selection" and rec.incident_id == incidents[0].incident_id
    assert recommendations([]) == []


def test_a_whole_report_is_json() -> None:
    incidents = merge_findings("churn", [finding(kind, d) for kind in INCIDENT_KINDS for d in (0, 1, 9)],
                               gap=DAY)
    report = LoopReport(model="churn", evaluated_at=T0 + 20 * DAY, config_version=2, window="1d",
                        incidents=incidents, recommendations=recommendations(incidents),
                        windows=[WindowEvidence(start=T0, end=T0 + DAY, n_events=10, model_versions=[1])],
                        performance=PerformanceEvidence(
                            windows=[PerformanceWindow(start=T0, model_version=1, metric="roc_auc", predictions=10,
                                                       labels=4, estimated=MetricInterval(value=0.8, ci_low=0.7,
                                                                                          ci_high=0.9),
                                                       inputs_drifted=False,
                                                       realized=MetricInterval(value=0.75, ci_low=0.6, ci_high=0.85,
                                                                               n=4))],
                            versions={1: VersionPerformance(metric="roc_auc", realized=None)}),
                        labels=LabelCoverage(predictions=10, labelled=4))
    data = json.loads(json.dumps(report.to_dict()))
    (window,) = data["performance"]["windows"]
    assert window["start"] == T0.isoformat() and window["estimation_error"] == 0.05
    assert window["realized"] == {"value": 0.75, "ci_low": 0.6, "ci_high": 0.85, "n": 4}
    assert data["performance"]["versions"] == {"1": {"metric": "roc_auc", "realized": None, "overfitting_gap": False,
                                                     "realized_missing": None}}
    assert data["labels"] == {"predictions": 10, "labelled": 4, "coverage": 0.4}
    assert data["evaluated_at"] == "2026-03-22T00:00:00Z"
    assert data["windows"][0]["start"] == "2026-03-02T00:00:00Z"  # typed until serialised
    assert len(data["incidents"]) == 2 * len(INCIDENT_KINDS)
    assert {i["loop_title"] for i in data["incidents"]} <= set(LOOP_TITLES.values())
    assert [i["incident_id"] for i in data["incidents"]] == [r["incident_id"] for r in data["recommendations"]]
    for item in data["incidents"]:
        assert item["first_seen"].endswith("Z") and item["detected_at"].endswith("Z")


def test_a_finding_is_json() -> None:
    data = json.loads(json.dumps(finding(severity=0.123456789, estimate_dropped=True).to_dict()))
    assert data["severity"] == 0.1235
    assert data["window_start"] == "2026-03-02T00:00:00Z"
    assert data["evidence"] == {"estimate_dropped": True}
