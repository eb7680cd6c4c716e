"""Known answers of the diagnosis on hand-made evidence: each rule fires on its own
evidence, the rules are tried in the documented order, and labels date what they show
by their arrival."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loopwatch.loops.performance_evidence import MetricInterval
from loopwatch.loops import (
    INCIDENT_KINDS,
    LabelEvidence,
    SoftwareChange,
    WindowEvidence,
    diagnose_labels,
    diagnose_window,
)

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAY = timedelta(days=1)
NEW_CLIENT = SoftwareChange(what="client_version", value="2.4.0", share=0.35, features=["tenure"])


def window(**changes: object) -> WindowEvidence:
    base: dict[str, object] = {
        "start": T0, "end": T0 + DAY, "n_events": 800, "model_versions": [3], "segment_feature": "region",
        "importance": {"tenure": 0.5, "spend": 0.3, "region": 0.2},
    }
    base.update(changes)
    return WindowEvidence(**base)  # type: ignore[arg-type]


def kinds(evidence: WindowEvidence, tolerance: float = 0.03) -> list[str]:
    return sorted(f.kind for f in diagnose_window(evidence, tolerance=tolerance))


def interval(value: float, half_width: float) -> MetricInterval:
    return MetricInterval(value=value, ci_low=value - half_width, ci_high=value + half_width)


# --- one rule at a time --------------------------------------------------------------------------

def test_drift_concentrated_in_a_new_client_version_is_a_software_change() -> None:
    (finding,) = diagnose_window(window(drifted_features={"tenure": 0.4}, software_changes=[NEW_CLIENT]))
    assert finding.kind == "software_change"
    assert finding.evidence["software_change"] == NEW_CLIENT.to_dict()
    assert "2.4.0" in finding.summary and "tenure" in finding.summary
    assert (finding.window_start, finding.window_end, finding.available_at) == (T0, T0 + DAY, T0 + DAY)


def test_new_software_that_moved_no_feature_does_not_explain_the_drift() -> None:
    innocent = SoftwareChange(what="client_version", value="2.4.0", share=0.35, features=[])
    assert kinds(window(drifted_features={"spend": 0.4}, software_changes=[innocent])) == ["covariate_shift"]


def test_a_segment_never_seen_in_training_is_selection_bias() -> None:
    (finding,) = diagnose_window(window(new_segments={"APAC": 0.25}))
    assert finding.kind == "selection_bias"
    assert finding.evidence["new_segments"] == {"APAC": 0.25}
    assert finding.evidence["segment_feature"] == "region"
    assert "APAC" in finding.summary
    assert finding.severity >= 0.25


def test_a_moved_segment_mix_is_selection_bias() -> None:
    moved = window(drifted_features={"region": 0.3, "spend": 0.1}, segment_drift=True)
    (finding,) = diagnose_window(moved)
    assert finding.kind == "selection_bias"
    assert "changed mix" in finding.summary


def test_a_segment_feature_among_the_drifted_features_is_a_moved_mix() -> None:
    assert kinds(window(drifted_features={"region": 0.3})) == ["selection_bias"]
    assert kinds(window(segment_drift=True)) == ["selection_bias"]


def test_without_a_watched_segment_feature_the_same_drift_is_covariate_shift() -> None:
    assert kinds(window(drifted_features={"region": 0.3}, segment_feature=None)) == ["covariate_shift"]


def test_plain_numeric_drift_is_covariate_shift() -> None:
    (finding,) = diagnose_window(window(drifted_features={"spend": 0.2, "tenure": 0.6}))
    assert finding.kind == "covariate_shift"
    assert list(finding.evidence["weighted_drift"]) == ["tenure", "spend"]
    assert finding.severity == pytest.approx(0.6 * 0.5 + 0.2 * 0.3)
    assert "tenure" in finding.summary


def test_multivariate_drift_alone_is_covariate_shift_of_the_joint_distribution() -> None:
    (finding,) = diagnose_window(window(multivariate_drift=True))
    assert finding.kind == "covariate_shift"
    assert "joint distribution" in finding.summary


def test_no_drift_and_latency_within_budget_gives_nothing() -> None:
    assert diagnose_window(window()) == []
    assert diagnose_window(window(latency_ms=40.0, latency_budget_ms=50.0)) == []
    assert diagnose_window(window(latency_ms=50.0, latency_budget_ms=50.0)) == []  # at the budget is within it
    assert diagnose_window(window(latency_ms=900.0)) == []  # no budget, no check
    assert diagnose_window(window(latency_ms=float("nan"), latency_budget_ms=50.0)) == []


def test_latency_above_budget_is_a_latency_regression() -> None:
    model_change = SoftwareChange(what="model_version", value="4", share=1.0)
    (finding,) = diagnose_window(window(latency_ms=120.0, latency_budget_ms=50.0, latency_percentile=99.0,
                                        software_changes=[model_change]))
    assert finding.kind == "latency_regression"
    assert finding.severity == pytest.approx(120.0 / 50.0)
    assert finding.available_at == T0 + DAY
    assert "p99" in finding.summary and "lined up with model v4" in finding.summary
    assert finding.evidence["software_changes"] == [model_change.to_dict()]


def test_latency_and_input_drift_give_two_findings() -> None:
    both = window(drifted_features={"spend": 0.3}, latency_ms=80.0, latency_budget_ms=50.0,
                  latency_over_budget_before=True)
    assert kinds(both) == ["covariate_shift", "latency_regression"]


def test_one_slow_window_without_a_deploy_is_a_spike_and_two_are_a_regression() -> None:
    assert diagnose_window(window(latency_ms=80.0, latency_budget_ms=50.0)) == []
    (finding,) = diagnose_window(window(latency_ms=80.0, latency_budget_ms=50.0, latency_over_budget_before=True))
    assert finding.kind == "latency_regression" and finding.evidence["software_changes"] == []


def test_every_finding_is_of_a_known_kind() -> None:
    everything = window(drifted_features={"spend": 0.3, "region": 0.2}, segment_drift=True,
                        software_changes=[NEW_CLIENT], latency_ms=80.0, latency_budget_ms=50.0)
    assert set(kinds(everything)) <= set(INCIDENT_KINDS)


# --- the order of the rules ----------------------------------------------------------------------

def test_software_is_tried_before_segments() -> None:
    evidence = window(drifted_features={"tenure": 0.4, "region": 0.3}, segment_drift=True,
                      new_segments={"APAC": 0.2}, software_changes=[NEW_CLIENT])
    assert kinds(evidence) == ["software_change"]


def test_segments_are_tried_before_covariate_shift() -> None:
    evidence = window(drifted_features={"tenure": 0.9, "spend": 0.8, "region": 0.05}, segment_drift=True)
    assert kinds(evidence) == ["selection_bias"]


def test_at_most_one_input_finding_per_window() -> None:
    evidence = window(drifted_features={"tenure": 0.9}, multivariate_drift=True, new_segments={"APAC": 0.2},
                      quality_alarms=["quality:missing:spend"], software_changes=[NEW_CLIENT])
    assert len(diagnose_window(evidence)) == 1


# --- the label-free estimate in the evidence --------------------------------------------------------

@pytest.mark.parametrize(
    ("holdout", "estimated", "higher_is_better", "dropped"),
    [
        (0.90, interval(0.80, 0.02), True, True),
        (0.90, interval(0.80, 0.15), True, False),  # holdout inside the interval
        (0.90, interval(0.885, 0.005), True, False),  # outside, but within tolerance
        (0.90, interval(0.95, 0.01), True, False),
        (1.00, interval(1.30, 0.05), False, True),
        (1.00, interval(1.30, 0.40), False, False),
        (1.00, interval(0.70, 0.05), False, False),
    ],
)
@pytest.mark.parametrize("changes", [{"drifted_features": {"spend": 0.3}}, {"new_segments": {"APAC": 0.3}},
                                     {"drifted_features": {"tenure": 0.3}, "software_changes": [NEW_CLIENT]}])
def test_estimate_dropped_evidence_comes_from_the_window(
    holdout: float, estimated: dict[str, float], higher_is_better: bool, dropped: bool,
    changes: dict[str, object],
) -> None:
    evidence = window(metric="m", holdout=holdout, estimated=estimated, higher_is_better=higher_is_better,
                      **changes)
    (finding,) = diagnose_window(evidence, tolerance=0.03)
    assert finding.evidence["estimate_dropped"] is dropped
    assert finding.evidence["estimate_dropped"] is evidence.estimate_dropped(0.03)


def test_the_tolerance_reaches_the_evidence() -> None:
    evidence = window(drifted_features={"spend": 0.3}, holdout=0.9, estimated=interval(0.85, 0.01))
    assert diagnose_window(evidence, tolerance=0.04)[0].evidence["estimate_dropped"] is True
    assert diagnose_window(evidence, tolerance=0.06)[0].evidence["estimate_dropped"] is False


def test_the_evidence_names_at_most_five_features_most_important_first() -> None:
    drifted = {f"f{i}": 0.1 * (i + 1) for i in range(8)}
    importance = {f"f{i}": 1.0 / 8 for i in range(8)}
    (finding,) = diagnose_window(window(drifted_features=drifted, importance=importance))
    assert list(finding.evidence["weighted_drift"]) == ["f7", "f6", "f5", "f4", "f3"]
    assert list(finding.evidence["drifted_features"]) == ["f7", "f6", "f5", "f4", "f3"]


# --- labels --------------------------------------------------------------------------------------------

PREDICTED = T0 - 10 * DAY
ARRIVED = T0 + 4 * DAY  # labels arrive two weeks after the prediction


def labels(**changes: object) -> LabelEvidence:
    base: dict[str, object] = {
        "metric": "accuracy", "holdout": 0.88, "concept_drift_at": ARRIVED,
        "concept_drift_prediction_time": PREDICTED, "loss_before": 0.12, "loss_after": 0.31,
        "realized_after": interval(0.69, 0.03), "estimated_after": interval(0.87, 0.02), "n_labels": 900,
    }
    base.update(changes)
    return LabelEvidence(**base)  # type: ignore[arg-type]


def test_a_loss_rise_the_estimate_does_not_explain_is_concept_drift_dated_by_the_labels() -> None:
    (finding,) = diagnose_labels(labels(), tolerance=0.03)
    assert finding.kind == "concept_drift"
    assert finding.available_at == ARRIVED
    assert finding.available_at != PREDICTED
    assert finding.window_start == PREDICTED and finding.window_end == ARRIVED
    assert finding.severity == pytest.approx(0.31 - 0.12)
    assert finding.evidence["concept_drift_at"] == "2026-03-06T00:00:00Z"


def test_a_loss_rise_the_estimate_explains_is_no_concept_drift() -> None:
    # realized sits inside the estimate's interval, the gap is below tolerance: the inputs explain it
    explained = labels(realized_after=interval(0.70, 0.03), estimated_after=interval(0.71, 0.03))
    assert diagnose_labels(explained, tolerance=0.03) == []


def test_disjoint_intervals_depart_even_within_tolerance() -> None:
    narrow = labels(realized_after=interval(0.80, 0.001), estimated_after=interval(0.82, 0.001))
    assert [f.kind for f in diagnose_labels(narrow, tolerance=0.03)] == ["concept_drift"]


def test_a_fall_of_the_loss_is_no_incident() -> None:
    assert diagnose_labels(labels(loss_before=0.30, loss_after=0.10), tolerance=0.03) == []
    assert diagnose_labels(labels(loss_before=0.20, loss_after=0.20), tolerance=0.03) == []


def test_no_detection_or_no_loss_before_is_no_incident() -> None:
    assert diagnose_labels(labels(concept_drift_at=None), tolerance=0.03) == []
    assert diagnose_labels(labels(concept_drift_prediction_time=None), tolerance=0.03) == []
    assert diagnose_labels(labels(loss_before=None), tolerance=0.03) == []


def test_without_an_estimate_the_loss_rise_alone_decides() -> None:
    assert len(diagnose_labels(labels(estimated_after=None), tolerance=0.03)) == 1
    assert len(diagnose_labels(labels(realized_after=None), tolerance=0.03)) == 1


def test_a_lower_is_better_metric_departs_when_realized_is_worse() -> None:
    worse = labels(metric="log_loss", higher_is_better=False,
                   realized_after=interval(0.65, 0.03), estimated_after=interval(0.40, 0.03))
    assert [f.kind for f in diagnose_labels(worse, tolerance=0.03)] == ["concept_drift"]
    # realized better than estimated on a loss-like metric: the inputs do not hide a fall
    better = labels(metric="log_loss", higher_is_better=False,
                    realized_after=interval(0.38, 0.005), estimated_after=interval(0.40, 0.005))
    assert diagnose_labels(better, tolerance=0.03) == []
