"""MonitoringConfig: strict about what it accepts, and a faithful JSON round trip."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.errors import InvalidInput
from loopwatch.loops.monitoring_config import CONCEPT_METHODS, MonitoringConfig
from loopwatch.records.jsonutil import dumps, loads

FIELD_NAMES = {f.name for f in fields(MonitoringConfig)}


def test_the_defaults_round_trip_through_json() -> None:
    default = MonitoringConfig()
    assert set(default.to_dict()) == FIELD_NAMES
    assert MonitoringConfig.from_dict(loads(dumps(default.to_dict()))) == default
    assert MonitoringConfig.from_dict({}) == default


def test_unknown_keys_are_named() -> None:
    with pytest.raises(InvalidInput, match="unknown monitoring settings: latency_budget, zzz"):
        MonitoringConfig.from_dict({"latency_budget": 50, "zzz": 1, "window": "1d"})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"drift_alpha": "0.01"}, "drift_alpha must be a finite number"),
        ({"drift_alpha": True}, "drift_alpha must be a finite number"),
        ({"drift_alpha": float("nan")}, "drift_alpha must be a finite number"),
        ({"latency_budget_ms": float("inf")}, "latency_budget_ms must be a finite number"),
        ({"schedule_seconds": -1}, "schedule_seconds must be a positive number"),
        ({"schedule_seconds": 0}, "schedule_seconds must be a positive number"),
        ({"alert_cooldown_seconds": -5}, "alert_cooldown_seconds must be a positive number"),
        ({"min_labels": 200.0}, "min_labels must be an integer"),
        ({"min_labels": False}, "min_labels must be an integer"),
        ({"min_labels": 3}, "min_labels must be at least 10"),
        ({"window": ""}, "window must be a non-empty string"),
        ({"window": 7}, "window must be a non-empty string"),
        ({"window": None}, "window must be a non-empty string"),
        ({"concept_detector": "magic"}, "concept_detector must be one of"),
        ({"drift_alpha": 0.5}, "drift_alpha must lie in"),
        ({"latency_percentile": 100}, "latency_percentile must lie in"),
        ({"labelling_random_share": 1.5}, "labelling_random_share must lie in"),
        ({"webhooks": "https://example.org/hook"}, "webhooks must be a list"),
        ({"webhooks": ["ftp://example.org/hook"]}, "webhooks must be http"),
        ({"webhooks": [42]}, "webhooks must be http"),
        ({"webhooks": ["https://example.org/"] * 21}, "at most 20"),
        ({"value_matrix": {"1": {"1": float("nan")}}}, "value_matrix values must be finite"),
        ({"value_matrix": {"1": 3}}, "must map predicted classes"),
        ({"value_matrix": [1, 2]}, "value_matrix must be a JSON object"),
        ({"cost_function": {"over": float("nan")}}, "cost_function"),
        ({"cost_function": {"over": [1, {"under": float("inf")}]}}, "cost_function"),
        # beyond 64 bits no JSON encoder can write it back: storing the configuration would fail
        ({"labelling_budget": 2**70}, "labelling_budget"),
        ({"value_matrix": {"1": {"1": 2**70}}}, "value_matrix"),
        ({"cost_function": {"over": -(2**64)}}, "cost_function"),
    ],
)
def test_wrong_values_are_refused_clearly(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        MonitoringConfig.from_dict(changes)


@pytest.mark.parametrize("data", [None, [], "window=1d", 3])
def test_a_configuration_is_an_object(data: Any) -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        MonitoringConfig.from_dict(data)


def test_merged_changes_only_what_is_named() -> None:
    base = MonitoringConfig.from_dict({"latency_budget_ms": 80, "webhooks": ["https://example.org/a"]})
    changed = base.merged({"latency_budget_ms": 50, "metric": None})
    assert changed.latency_budget_ms == 50.0
    assert changed.webhooks == ["https://example.org/a"]
    assert changed.to_dict() == {**base.to_dict(), "latency_budget_ms": 50.0}
    with pytest.raises(InvalidInput):
        base.merged({"drift_alpha": -1})
    assert base.latency_budget_ms == 80.0  # frozen: merging makes a new one


def test_integers_are_taken_where_floats_are_expected() -> None:
    config = MonitoringConfig.from_dict({"schedule_seconds": 60, "latency_budget_ms": 50})
    assert isinstance(config.schedule_seconds, float) and config.schedule_seconds == 60.0


#: One value of each kind of JSON a client can send.
_JSON_KINDS = {"null": None, "bool": True, "int": 3, "float": 0.25, "str": "x", "list": ["a"], "object": {"a": 1.0}}


def _declared_kinds(hint: Any) -> set[str]:
    """The JSON kinds a field's annotation admits, read from the annotation itself (so a new
    field is covered without a line here)."""
    kinds = set()
    if type(None) in get_args(hint):
        kinds.add("null")
        hint = next(a for a in get_args(hint) if a is not type(None))
    base = get_origin(hint) or hint
    return kinds | {bool: {"bool"}, float: {"int", "float"}, int: {"int"}, str: {"str"}, list: {"list"},
                    dict: {"object"}}[base]


@pytest.mark.parametrize("key", sorted(FIELD_NAMES))
def test_each_setting_refuses_the_json_kinds_its_annotation_does_not_declare(key: str) -> None:
    declared = _declared_kinds(get_type_hints(MonitoringConfig)[key])
    for kind, value in _JSON_KINDS.items():
        if kind in declared:
            continue
        with pytest.raises(InvalidInput):
            MonitoringConfig.from_dict({key: value})


_finite = st.floats(allow_nan=False, allow_infinity=False)
_urls = st.from_regex(r"https?://[a-z]{1,12}\.example\.org/[a-zA-Z0-9/_-]{0,40}", fullmatch=True)
_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)
_valid = st.fixed_dictionaries(
    {},
    optional={
        "window": st.sampled_from(["1h", "1d", "7d", "1w"]),
        "schedule_seconds": st.floats(min_value=1e-3, max_value=1e7),
        "drift_alpha": st.floats(min_value=1e-6, max_value=0.49),
        "latency_percentile": st.floats(min_value=50, max_value=99.9),
        "latency_budget_ms": st.none() | st.floats(min_value=0.01, max_value=1e6),
        "segment_feature": st.none() | _names,
        "metric": st.none() | st.sampled_from(["accuracy", "f1", "mae", "rmse"]),
        "performance_tolerance": st.floats(min_value=0, max_value=0.99),
        "concept_detector": st.sampled_from(CONCEPT_METHODS),
        "min_labels": st.integers(10, 10**6),
        "min_label_coverage": st.floats(min_value=0, max_value=1),
        "labelling_budget": st.integers(0, 10**6),
        "labelling_random_share": st.floats(min_value=0, max_value=1),
        "value_matrix": st.none() | st.dictionaries(_names, st.dictionaries(_names, _finite, max_size=3), max_size=3),
        "business_metric": st.none() | _names,
        "business_max_lag": st.integers(0, 60),
        "webhooks": st.lists(_urls, max_size=3),
        "alert_cooldown_seconds": st.floats(min_value=0, max_value=1e7),
    },
)


@settings(max_examples=150, deadline=None)
@given(_valid)
def test_every_valid_configuration_round_trips_through_json(data: dict[str, Any]) -> None:
    config = MonitoringConfig.from_dict(data)
    again = MonitoringConfig.from_dict(loads(dumps(config.to_dict())))
    assert again == config
    for key, value in data.items():
        stored = getattr(config, key)
        assert stored == value or (isinstance(value, float) and math.isclose(stored, value))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FIELD_NAMES)), _json_values)
def test_any_json_value_is_taken_or_refused_cleanly(key: str, value: Any) -> None:
    """Whatever a client sends for a setting: a valid configuration or InvalidInput, nothing else."""
    try:
        config = MonitoringConfig.from_dict({key: value})
    except InvalidInput:
        return
    assert MonitoringConfig.from_dict(loads(dumps(config.to_dict()))) == config


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["value_matrix", "cost_function"]),
       st.dictionaries(st.text(max_size=5), _json_values, min_size=1, max_size=3))
def test_nested_settings_are_taken_or_refused_cleanly(key: str, value: dict[str, Any]) -> None:
    """The JSON-object settings too: no NaN or infinity hides inside an accepted one."""
    try:
        config = MonitoringConfig.from_dict({key: value})
    except InvalidInput:
        return
    assert MonitoringConfig.from_dict(loads(dumps(config.to_dict()))) == config
