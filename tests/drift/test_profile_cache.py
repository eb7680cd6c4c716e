"""`loopwatch drift` builds a reference file's profile once and reuses it: on real flights
(integer-coded carrier and origin, null air times), through the real CLI and the library."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import loopwatch.application.profile_cache as cache_module
from loopwatch.application.profile_cache import reference_profile
from loopwatch.drift import DriftConfig, compare
from loopwatch.cli.main import cli
from tests.realdata import flights

COLUMNS = ["carrier", "origin", "sched_hour", "distance", "air_time"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    data = flights()[COLUMNS].sample(n=7_000, random_state=5).reset_index(drop=True)
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    data.iloc[:4_000].to_csv(reference, index=False)
    data.iloc[4_000:].to_csv(current, index=False)
    return reference, current


def drift_json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["drift", *args, "--categorical", "carrier,origin", "--json"])
    assert result.exit_code in (0, 1), result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_a_second_run_reuses_the_profile_and_reports_the_same(files: tuple[Path, Path], isolated_home: Path) -> None:
    reference, current = files
    cold = drift_json(str(reference), str(current))
    stored = list((isolated_home / "cache" / "profiles").glob("*.profile"))
    assert len(stored) == 1
    before = stored[0].stat().st_mtime_ns
    warm = drift_json(str(reference), str(current))
    uncached = drift_json(str(reference), str(current), "--no-cache")
    assert cold == warm == uncached  # the same report, whether built, read back or never stored
    assert stored[0].stat().st_mtime_ns >= before and len(list(stored[0].parent.glob("*.profile"))) == 1


def test_an_edited_file_or_other_options_build_another(files: tuple[Path, Path], isolated_home: Path) -> None:
    reference, current = files
    folder = isolated_home / "cache" / "profiles"
    drift_json(str(reference), str(current))
    drift_json(str(reference), str(current), "--no-outliers")  # no detectors: another profile
    drift_json(str(reference), str(current), "--seed", "1")
    table = pd.read_csv(reference)
    table.loc[0, "distance"] = 4_983.0
    table.to_csv(reference, index=False)
    drift_json(str(reference), str(current))
    assert len(list(folder.glob("*.profile"))) == 4


def test_a_damaged_profile_is_rebuilt(files: tuple[Path, Path], isolated_home: Path) -> None:
    reference, current = files
    table = pd.read_csv(reference)
    config = DriftConfig()
    folder = isolated_home / "cache" / "profiles"
    first = reference_profile(reference, table, categorical=["carrier", "origin"], config=config, folder=folder)
    assert not first.reused
    (folder / f"{first.key}.profile").write_bytes(b"not a profile")
    again = reference_profile(reference, table, categorical=["carrier", "origin"], config=config, folder=folder)
    assert not again.reused and again.key == first.key
    reused = reference_profile(reference, table, categorical=["carrier", "origin"], config=config, folder=folder)
    assert reused.reused
    current_table = pd.read_csv(current)
    assert compare(reused.profile, current_table, config=config).to_dict() == \
        compare(table, current_table, categorical=["carrier", "origin"], config=config).to_dict()


def test_the_cache_keeps_the_newest(files: tuple[Path, Path], isolated_home: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reference, _ = files
    monkeypatch.setattr(cache_module, "MAX_CACHED", 2)
    table = pd.read_csv(reference)
    folder = isolated_home / "cache" / "profiles"
    keys = [reference_profile(reference, table, categorical=["carrier", "origin"], config=DriftConfig(seed=s),
                              folder=folder).key for s in range(3)]
    assert {p.name for p in folder.glob("*.profile")} == {f"{k}.profile" for k in keys[1:]}


def test_an_unwritable_home_still_compares(files: tuple[Path, Path], tmp_path: Path) -> None:
    reference, _ = files
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    built = reference_profile(reference, pd.read_csv(reference), categorical=["carrier", "origin"],
                              config=DriftConfig(), folder=blocked / "profiles")
    assert not built.reused and built.profile.n == 4_000
