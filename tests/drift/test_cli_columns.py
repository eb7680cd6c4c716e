"""``loopwatch drift --columns / --exclude``: ids and targets are left out of the comparison,
on real data (New York's 2013 departures), and a name in neither file is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from loopwatch.cli.main import cli
from loopwatch.errors import InvalidInput
from loopwatch.features.tables import select_columns, split_names
from tests.realdata import flights


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two random halves of one week of departures, each row with the id a database gave it
    when it was loaded: the current half was loaded later, so its ids are all larger."""
    week = flights()
    week = week[(week["time"] >= "2013-03-04") & (week["time"] < "2013-03-11")].drop(columns="time")
    halves = np.random.default_rng(11).permutation(len(week)) % 2
    folder = tmp_path_factory.mktemp("drift-columns")
    paths = []
    for half, first_id in ((0, 1), (1, 1_000_000)):
        part = week[halves == half].reset_index(drop=True)
        part.insert(0, "flight_id", np.arange(first_id, first_id + len(part)))
        path = folder / f"half{half}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def drift(files: tuple[Path, Path], *options: str) -> Result:
    return CliRunner().invoke(cli, ["drift", str(files[0]), str(files[1]), "--json", "--no-multivariate",
                                    "--no-outliers", *options])


def report(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def test_an_id_column_is_tested_as_a_feature_unless_excluded(files: tuple[Path, Path]) -> None:
    everything = report(drift(files))
    assert {"flight_id", "late"} <= set(everything["features"])
    assert everything["features"]["flight_id"]["drift"] is True  # ids only grow: always "drift"
    assert "flight_id" in everything["drifted_features"]

    excluded = report(drift(files, "--exclude", "flight_id,late"))
    assert set(excluded["features"]) == set(everything["features"]) - {"flight_id", "late"}
    assert "flight_id" not in excluded["drifted_features"]
    # repeated options say the same as one comma-separated list
    assert report(drift(files, "--exclude", "flight_id", "--exclude", "late"))["features"].keys() == \
        excluded["features"].keys()


def test_only_the_named_columns_are_compared(files: tuple[Path, Path]) -> None:
    chosen = report(drift(files, "--columns", "distance,carrier", "--columns", "air_time"))
    assert set(chosen["features"]) == {"distance", "carrier", "air_time"}
    assert chosen["n_reference"] + chosen["n_current"] == sum(len(pd.read_csv(f)) for f in files)
    both = report(drift(files, "--columns", "distance,late", "--exclude", "late", "--categorical", "carrier,late"))
    assert set(both["features"]) == {"distance"}


@pytest.mark.parametrize("options, named", [
    (["--exclude", "flight_idd"], ["'flight_idd'"]),
    (["--columns", "distance,Carrier", "--exclude", "nope"], ["'Carrier'", "'nope'"]),
])
def test_a_name_in_neither_file_is_a_clear_error(files: tuple[Path, Path], options: list[str], named: list[str]) -> None:
    result = drift(files, *options)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no column named" in result.output and all(n in result.output for n in named), result.output
    assert "distance" in result.output  # the columns there are, to pick from


def test_excluding_every_column_is_an_error(files: tuple[Path, Path]) -> None:
    result = drift(files, "--columns", "late", "--exclude", "late")
    assert result.exit_code == 2 and "no column is left" in result.output


def test_names_split_on_commas_keep_their_order_once_each() -> None:
    assert split_names(["b,a", " c ,b", "", "a,,d"]) == ["b", "a", "c", "d"]
    assert select_columns(["id", "x", "y"], ["x", "y", "z"], include=["z", "x"]) == ["x", "z"]
    assert select_columns(["id", "x"], ["id", "x", "z"], exclude=["id"]) == ["x", "z"]
    with pytest.raises(InvalidInput, match="'w'"):
        select_columns(["x"], ["x"], exclude=["w"])
