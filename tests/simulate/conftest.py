"""Shared, session-scoped scenarios: generating 70 days once keeps the suite fast."""

from __future__ import annotations

import pandas as pd
import pytest

from loopwatch.simulate import ChurnScenario, Day, Timeline

SEED = 7


@pytest.fixture(scope="session")
def scenario() -> ChurnScenario:
    return ChurnScenario(seed=SEED)


@pytest.fixture(scope="session")
def all_days(scenario: ChurnScenario) -> list[Day]:
    # Doubles as the check that the default 70 x 1000 period generates at all.
    return list(scenario.days())


@pytest.fixture(scope="session")
def stable_scenario() -> ChurnScenario:
    return ChurnScenario(seed=SEED, timeline=Timeline(incidents=()))


@pytest.fixture(scope="session")
def training(scenario: ChurnScenario) -> pd.DataFrame:
    return scenario.training_data(n=5000)


@pytest.fixture(scope="session")
def day_frames(all_days: list[Day]) -> dict[int, pd.DataFrame]:
    return {day.index: day.frame() for day in all_days}
