"""Window and label evidence: the drop of the label-free estimate, drift weighted by
importance, and JSON-ready dictionaries."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.loops.performance_evidence import MetricInterval
from loopwatch.loops import LabelEvidence, SoftwareChange, WindowEvidence

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def window(**changes: object) -> WindowEvidence:
    base: dict[str, object] = {"start": T0, "end": T0 + DAY, "n_events": 500, "model_versions": [1]}
    base.update(changes)
    return WindowEvidence(**base)  # type: ignore[arg-type]


def interval(value: float, half_width: float) -> MetricInterval:
    return MetricInterval(value=value, ci_low=value - half_width, ci_high=value + half_width)


# --- estimate_dropped ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("holdout", "estimated", "higher_is_better", "dropped"),
    [
        # accuracy-like: a clear fall, holdout above the interval
        (0.90, interval(0.80, 0.02), True, True),
        # the same fall, but so uncertain that the holdout lies inside the interval
        (0.90, interval(0.80, 0.15), True, False),
        # holdout above the interval, but the fall is within tolerance
        (0.90, interval(0.88, 0.005), True, False),
        # the estimate rose: good news is not a drop
        (0.90, interval(0.95, 0.01), True, False),
        # loss-like (MAE): a rise of the error is a drop in performance
        (1.00, interval(1.20, 0.05), False, True),
        (1.00, interval(1.20, 0.30), False, False),
        (1.00, interval(1.02, 0.001), False, False),
        # the error fell: an improvement
        (1.00, interval(0.80, 0.05), False, False),
    ],
)
def test_estimate_dropped_follows_the_metric_direction(
    holdout: float, estimated: dict[str, float], higher_is_better: bool, dropped: bool
) -> None:
    evidence = window(metric="m", estimated=estimated, holdout=holdout, higher_is_better=higher_is_better)
    assert evidence.estimate_dropped(0.03) is dropped


def test_estimate_dropped_needs_an_estimate_and_a_holdout() -> None:
    assert not window(estimated=interval(0.5, 0.01), holdout=None).estimate_dropped(0.0)
    assert not window(estimated=None, holdout=0.9).estimate_dropped(0.0)


def test_tolerance_decides_a_borderline_drop() -> None:
    evidence = window(estimated=interval(0.85, 0.01), holdout=0.90)
    assert evidence.estimate_dropped(0.04)
    assert not evidence.estimate_dropped(0.06)


# --- weighted drift ---------------------------------------------------------------------------------

def test_weighted_drift_ranks_by_effect_times_importance() -> None:
    drifted = {"tenure": 0.30, "zip_noise": 0.90, "spend": 0.20}
    importance = {"tenure": 0.50, "spend": 0.499, "zip_noise": 0.001}
    ranked = window(drifted_features=drifted, importance=importance).weighted_drift()
    assert list(ranked) == ["tenure", "spend", "zip_noise"]
    # the largest drift is on a feature the model barely uses: it ranks last
    assert max(drifted, key=drifted.__getitem__) == list(ranked)[-1]
    for name, weight in ranked.items():
        assert weight == pytest.approx(drifted[name] * importance[name])


def test_weighted_drift_without_importance_ranks_by_effect() -> None:
    drifted = {"a": 0.1, "b": 0.7, "c": 0.4}
    assert list(window(drifted_features=drifted).weighted_drift()) == ["b", "c", "a"]
    assert window(drifted_features=drifted).weighted_drift() == drifted


def test_a_feature_missing_from_the_importance_weighs_nothing() -> None:
    ranked = window(drifted_features={"a": 0.2, "unknown": 5.0}, importance={"a": 1.0}).weighted_drift()
    assert ranked == {"a": pytest.approx(0.2), "unknown": 0.0}


# --- input drift ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "changes",
    [
        {"drifted_features": {"a": 0.2}},
        {"multivariate_drift": True},
        {"new_segments": {"EU": 0.2}, "segment_feature": "region"},
        {"segment_drift": True, "segment_feature": "region"},
        {"quality_alarms": ["quality:missing:a"]},
    ],
)
def test_each_kind_of_input_evidence_counts_as_input_drift(changes: dict[str, object]) -> None:
    assert window(**changes).input_drift


def test_latency_prediction_drift_and_software_alone_are_not_input_drift() -> None:
    quiet = window(
        latency_ms=900.0, latency_budget_ms=10.0, prediction_drift=True,
        software_changes=[SoftwareChange(what="client_version", value="2.0", share=0.5)],
    )
    assert not quiet.input_drift


# --- JSON ---------------------------------------------------------------------------------------------

names = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
unit = st.floats(min_value=0.0, max_value=1.0)
effects = st.floats(min_value=0.0, max_value=50.0)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
intervals = st.builds(lambda v, w: interval(v, w), unit, st.floats(min_value=0.0, max_value=0.5))
changes = st.builds(
    SoftwareChange,
    what=st.sampled_from(["client_version", "model_version", "fingerprint", "schema"]),
    value=names,
    share=unit,
    features=st.lists(names, max_size=3),
)
windows = st.builds(
    WindowEvidence,
    start=moments,
    end=moments,
    n_events=st.integers(min_value=0, max_value=10**6),
    model_versions=st.lists(st.integers(min_value=1, max_value=50), max_size=3),
    drifted_features=st.dictionaries(names, effects, max_size=5),
    importance=st.dictionaries(names, unit, max_size=5),
    multivariate_drift=st.booleans(),
    prediction_drift=st.booleans(),
    quality_alarms=st.lists(names.map(lambda n: f"quality:{n}"), max_size=3),
    segment_feature=st.none() | names,
    segment_drift=st.booleans(),
    new_segments=st.dictionaries(names, unit, max_size=3),
    software_changes=st.lists(changes, max_size=3),
    latency_ms=st.none() | st.floats(min_value=0.0, max_value=1e5),
    latency_budget_ms=st.none() | st.floats(min_value=0.1, max_value=1e4),
    metric=st.none() | st.sampled_from(["accuracy", "roc_auc", "mae"]),
    estimated=st.none() | intervals,
    holdout=st.none() | unit,
    higher_is_better=st.booleans(),
)
label_evidence = st.builds(
    LabelEvidence,
    metric=st.sampled_from(["accuracy", "log_loss"]),
    holdout=st.none() | unit,
    concept_drift_at=st.none() | moments,
    concept_drift_prediction_time=st.none() | moments,
    loss_before=st.none() | unit,
    loss_after=st.none() | unit,
    realized_after=st.none() | intervals,
    estimated_after=st.none() | intervals,
    inputs_drifted_then=st.booleans(),
    coverage=st.none() | unit,
    n_labels=st.integers(min_value=0, max_value=10**6),
    higher_is_better=st.booleans(),
)


def _round_trips(data: dict[str, object]) -> None:
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == json.loads(json.dumps(data))


@settings(max_examples=150, deadline=None)
@given(windows)
def test_window_evidence_to_dict_is_json(evidence: WindowEvidence) -> None:
    data = evidence.to_dict()
    _round_trips(data)
    assert data["start"].endswith("Z") and data["end"].endswith("Z")
    assert list(data["weighted_drift"]) == list(evidence.weighted_drift())


@settings(max_examples=150, deadline=None)
@given(label_evidence)
def test_label_evidence_to_dict_is_json(evidence: LabelEvidence) -> None:
    data = evidence.to_dict()
    _round_trips(data)
    assert (data["concept_drift_at"] is None) == (evidence.concept_drift_at is None)


@settings(max_examples=100, deadline=None)
@given(changes)
def test_software_change_to_dict_is_json(change: SoftwareChange) -> None:
    data = change.to_dict()
    _round_trips(data)
    assert math.isclose(data["share"], change.share, abs_tol=5e-5)
