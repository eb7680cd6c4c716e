from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

import loopwatch.simulate
from loopwatch.simulate import ChurnScenario, Day, Timeline


def _days(seed: int, indices: list[int]) -> list[dict[str, object]]:
    scenario = ChurnScenario(seed=seed, predictions_per_day=200)
    return [scenario.day(index).to_dict() for index in indices]


def test_same_seed_same_everything() -> None:
    assert _days(11, [0, 16, 38, 46]) == _days(11, [0, 16, 38, 46])
    first = ChurnScenario(seed=11).training_data(n=500)
    second = ChurnScenario(seed=11).training_data(n=500)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_differ() -> None:
    assert _days(11, [0]) != _days(12, [0])
    first = ChurnScenario(seed=11).training_data(n=500)
    second = ChurnScenario(seed=12).training_data(n=500)
    assert not first.equals(second)


def test_iteration_and_random_access_agree(scenario: ChurnScenario, all_days: list[Day]) -> None:
    for index in (0, 20, 38, 46):
        assert scenario.day(index) == all_days[index]


def test_incidents_leave_stable_days_untouched(stable_scenario: ChurnScenario, all_days: list[Day]) -> None:
    # Every draw is made whatever the incidents, so a stable day is the same day.
    for index in (3, 13):
        assert stable_scenario.day(index) == all_days[index]
    # After the software change, mobile-app keeps its fixed version 3.0.1: the
    # only difference a later stable day may show.
    stable, after = stable_scenario.day(29).to_dict(), all_days[29].to_dict()
    for batch in [*stable["batches"], *after["batches"]]:
        batch.pop("client_version")
    assert stable == after


def test_simulator_imports_only_numpy_pandas_and_itself() -> None:
    package = Path(loopwatch.simulate.__file__).parent
    allowed_roots = {"numpy", "pandas", "loopwatch"}
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root == "loopwatch":
                    assert name.startswith("loopwatch.simulate"), f"{path.name} imports {name}"
                elif root not in allowed_roots:
                    assert root in _STDLIB, f"{path.name} imports {name}"


_STDLIB = {"__future__", "ast", "collections", "dataclasses", "datetime", "functools", "math", "types", "typing"}


def test_fully_stable_period_has_no_incident_traces() -> None:
    scenario = ChurnScenario(seed=5, predictions_per_day=100, timeline=Timeline(incidents=()))
    clients: set[tuple[str, str]] = set()
    sources: set[str] = set()
    countries: set[str] = set()
    for day in scenario.days():
        clients.update((batch.client_id, batch.client_version) for batch in day.batches)
        sources.update(record.source for record in day.feedback)
        countries.update(str(row["country"]) for batch in day.batches for row in batch.rows)
    assert clients == {("web-app", "1.8.2"), ("mobile-app", "2.3.0"), ("crm-batch", "4.1.0")}
    assert sources == {"crm-export"}
    assert countries == {"US", "GB", "DE", "FR", "ES", "IT"}
