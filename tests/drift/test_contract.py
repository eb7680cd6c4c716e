"""The JSON contract of ``DriftReport.to_dict()`` / ``loopwatch drift --json`` (docs/drift.md),
the exit codes of ``loopwatch drift``, and its HTML report."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from loopwatch.cli.main import cli
from loopwatch.drift import compare
from loopwatch.features.tables import read_table

ROOT = Path(__file__).resolve().parents[2]
NUMERIC_STATISTICS = {"ks", "wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger"}
CATEGORICAL_STATISTICS = {"chi2", "kl_divergence", "js_distance", "psi", "hellinger"}
DISTANCES = {"wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger"}
MULTIVARIATE = {"pca_reconstruction", "pca_ks", "mmd", "domain_classifier"}
OUTLIERS = {"isolation_forest", "elliptic_envelope", "novelty"}
DATA_QUALITY = {"missing_columns", "unknown_columns", "missing_rate", "reference_missing_rate",
                "unseen_categories", "out_of_range_rate", "unexpected_missing"}


def table(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "watch_hours": rng.gamma(4.0, 2.5, n) + shift * 5.0,
            "tenure": rng.integers(1, 60, n).astype(float),
            "fee": rng.normal(12.0, 3.0, n),
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.3, 0.2]),
            "country": rng.choice(["US", "GB", "DE", "FR"], n),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("drift-files")
    rng = np.random.default_rng(20)
    out = {
        "reference": table(rng, 1500),
        "same": table(rng, 600),
        "shifted": table(rng, 600, shift=0.4),
    }
    paths = {}
    for name, frame in out.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def report(files: dict[str, Path]) -> dict[str, Any]:
    """The library's report for the shifted file, the way the CLI computes it."""
    return compare(read_table(files["reference"]), read_table(files["shifted"])).to_dict()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["drift", *args])


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ the contract


def test_top_level(report: dict[str, Any]) -> None:
    assert {"dataset_drift", "n_reference", "n_current", "alpha", "drifted_features", "features",
            "multivariate", "outliers", "data_quality", "predictions", "prediction_drift",
            "config"} <= set(report)
    assert report["dataset_drift"] is True
    assert report["n_reference"] == 1500 and report["n_current"] == 600
    assert type(report["n_reference"]) is int and type(report["n_current"]) is int
    assert report["alpha"] == 0.05
    assert report["drifted_features"] == ["watch_hours"]
    assert set(report["features"]) == {"watch_hours", "tenure", "fee", "plan", "country"}
    assert set(report["data_quality"]) == DATA_QUALITY
    assert report["predictions"] == {} and report["prediction_drift"] is False


def test_numeric_features(report: dict[str, Any]) -> None:
    for name in ("watch_hours", "tenure", "fee"):
        feature = report["features"][name]
        assert {"kind", "drift", "decided_by", "statistics", "thresholds", "distribution", "n_reference",
                "n_current"} <= set(feature)
        assert feature["kind"] == "numeric" and feature["decided_by"] == "ks"
        assert isinstance(feature["drift"], bool)
        stats = feature["statistics"]
        assert set(stats) == NUMERIC_STATISTICS  # exactly: no chi2
        assert set(stats["ks"]) == {"statistic", "p_value", "p_value_adjusted"}
        assert 0 <= stats["ks"]["statistic"] <= 1
        assert 0 <= stats["ks"]["p_value"] <= stats["ks"]["p_value_adjusted"] <= 1
        for distance in DISTANCES:
            assert is_number(stats[distance]) and stats[distance] >= 0, (name, distance)
        assert set(feature["thresholds"]) == DISTANCES
        assert all(is_number(v) and v > 0 for v in feature["thresholds"].values()), name
        dist = feature["distribution"]
        assert {"edges", "reference", "current", "range"} <= set(dist)
        assert len(dist["reference"]) == len(dist["current"]) == len(dist["edges"]) + 1
        assert sum(dist["reference"]) == 1500 and sum(dist["current"]) == 600
    assert report["features"]["watch_hours"]["drift"] is True
    assert report["features"]["fee"]["drift"] is False


def test_categorical_features(report: dict[str, Any]) -> None:
    for name in ("plan", "country"):
        feature = report["features"][name]
        assert feature["kind"] == "categorical" and feature["decided_by"] == "chi2"
        stats = feature["statistics"]
        assert set(stats) == CATEGORICAL_STATISTICS  # exactly: no ks, no wasserstein
        assert set(stats["chi2"]) == {"statistic", "p_value", "p_value_adjusted"}
        for distance in CATEGORICAL_STATISTICS - {"chi2"}:
            assert is_number(stats[distance]) and stats[distance] >= 0
        assert set(feature["thresholds"]) == CATEGORICAL_STATISTICS - {"chi2"}
        assert all(is_number(v) and v > 0 for v in feature["thresholds"].values())
        assert set(feature["distribution"]["categories"]) == set(
            {"plan": ["basic", "standard", "premium"], "country": ["US", "GB", "DE", "FR"]}[name])


def test_multivariate_and_outliers(report: dict[str, Any]) -> None:
    assert set(report["multivariate"]) == MULTIVARIATE
    for name, test in report["multivariate"].items():
        assert {"drift", "statistic", "p_value", "threshold"} <= set(test), name
        assert isinstance(test["drift"], bool)
        assert is_number(test["statistic"]) and 0 <= test["p_value"] <= 1
    assert set(report["outliers"]) == OUTLIERS
    for name, rate in report["outliers"].items():
        assert {"rate", "expected_rate", "p_value", "drift", "n_flagged", "n_scored"} <= set(rate), name
        assert 0 <= rate["rate"] <= 1 and 0 < rate["expected_rate"] < 1 and 0 <= rate["p_value"] <= 1
        assert isinstance(rate["drift"], bool) and type(rate["n_flagged"]) is int
        assert type(rate["n_scored"]) is int and rate["n_flagged"] <= rate["n_scored"] <= report["n_current"]


def test_config_states_the_split_of_alpha(report: dict[str, Any]) -> None:
    config = report["config"]
    assert config["alpha"] == 0.05
    assert config["family_alpha"] == {"features": 0.025, "multivariate": 0.0125, "outliers": 0.0125}
    assert config["numeric_test"] == "ks" and config["categorical_test"] == "chi2"
    assert config["practical_thresholds"] == {} and config["practical_band_rows"] == 1000


def test_every_key_of_the_documented_example_is_present(report: dict[str, Any]) -> None:
    text = (ROOT / "docs" / "drift.md").read_text()
    block = re.search(r"## The JSON contract.*?```json\n(.*?)```", text, re.S)
    assert block, "docs/drift.md lost its JSON example"
    example = json.loads(block.group(1))
    assert set(example) <= set(report)
    documented_feature = example["features"]["watch_hours"]
    real = report["features"]["watch_hours"]
    assert set(documented_feature) <= set(real)
    assert set(documented_feature["statistics"]) == set(real["statistics"])
    assert set(documented_feature["statistics"]["ks"]) == set(real["statistics"]["ks"])
    assert set(example["multivariate"]) == set(report["multivariate"])
    assert set(example["multivariate"]["pca_reconstruction"]) <= set(report["multivariate"]["pca_reconstruction"])
    assert set(example["outliers"]) == set(report["outliers"])
    assert set(example["outliers"]["isolation_forest"]) == set(report["outliers"]["isolation_forest"])
    assert set(example["data_quality"]) == set(report["data_quality"])


def test_json_has_no_nan_even_for_awkward_columns() -> None:
    rng = np.random.default_rng(21)
    reference = table(rng, 400)
    reference["constant"] = 7.0
    current = table(rng, 200)
    current["constant"] = 7.0
    current["fee"] = np.nan  # nothing to compare
    current.loc[:9, "plan"] = "unheard-of"
    data = compare(reference, current).to_dict()
    json.dumps(data, allow_nan=False)  # raises on NaN or infinity
    assert data["features"]["fee"]["statistics"] == {} and data["features"]["fee"]["drift"] is False
    assert data["features"]["constant"]["drift"] is False
    assert data["data_quality"]["unseen_categories"] == {"plan": {"unheard-of": 10}}


# ------------------------------------------------------------------ the command


def test_cli_json_is_the_library_report(files: dict[str, Path], report: dict[str, Any]) -> None:
    result = run(str(files["reference"]), str(files["shifted"]), "--json")
    no_traceback(result)
    assert result.exit_code == 1
    assert strict_json(result.stdout) == json.loads(json.dumps(report))


def test_cli_exit_code_0_without_drift(files: dict[str, Path]) -> None:
    result = run(str(files["reference"]), str(files["same"]), "--json")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["dataset_drift"] is False and data["drifted_features"] == []


def test_cli_table_output_and_options(files: dict[str, Path]) -> None:
    result = run(str(files["reference"]), str(files["shifted"]), "--no-multivariate", "--no-outliers",
                 "--numeric-test", "psi", "--alpha", "0.01")
    no_traceback(result)
    assert result.exit_code == 1
    assert "drift: YES" in result.stdout and "watch_h" in result.stdout  # rich may shorten names
    result = run(str(files["reference"]), str(files["shifted"]), "--no-multivariate", "--no-outliers",
                 "--categorical", "tenure", "--json")
    data = strict_json(result.stdout)
    assert data["features"]["tenure"]["kind"] == "categorical"
    assert data["multivariate"] == {} and data["outliers"] == {}
    assert data["config"]["family_alpha"] == {"features": 0.05}


def _error(result: Result, *words: str) -> None:
    no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "error" in result.output.lower() or "usage" in result.output.lower()
    for word in words:
        assert word in result.output


def test_cli_missing_file(files: dict[str, Path], tmp_path: Path) -> None:
    _error(run(str(tmp_path / "nope.csv"), str(files["same"])), "nope.csv")
    _error(run(str(files["reference"]), str(tmp_path / "nope.parquet")), "nope.parquet")


def test_cli_unreadable_files(files: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"\x00\x01 this is not parquet \xff" * 10)
    _error(run(str(files["reference"]), str(garbage)))
    header_only = tmp_path / "empty.csv"
    header_only.write_text("watch_hours,tenure,fee,plan,country\n")
    _error(run(str(files["reference"]), str(header_only)), "no rows")
    unknown_format = tmp_path / "data.xlsx"
    unknown_format.write_text("a,b\n1,2\n")
    _error(run(str(files["reference"]), str(unknown_format)), "format")
    _error(run(str(files["reference"]), str(tmp_path)))  # a folder


def test_cli_strings_in_a_numeric_column(files: dict[str, Path], tmp_path: Path) -> None:
    frame = pd.read_csv(files["same"])
    frame["fee"] = frame["fee"].astype(object)
    frame.loc[3, "fee"] = "twelve"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    _error(run(str(files["reference"]), str(bad), "--no-multivariate", "--no-outliers"), "fee")


def test_cli_no_shared_columns(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    pd.DataFrame({"something": [1.0, 2.0, 3.0], "else": ["a", "b", "c"]}).to_csv(other, index=False)
    _error(run(str(files["reference"]), str(other), "--no-multivariate", "--no-outliers"), "no feature column")


def test_cli_bad_options(files: dict[str, Path]) -> None:
    _error(run(str(files["reference"]), str(files["same"]), "--numeric-test", "chi2"))
    _error(run(str(files["reference"]), str(files["same"]), "--alpha", "1.5"))
    _error(run(str(files["reference"]), str(files["same"]), "--categorical", "no_such_column"), "no_such_column")


def test_real_process_exit_code(tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    reference, shifted = tmp_path / "r.csv", tmp_path / "s.csv"
    table(rng, 400).to_csv(reference, index=False)
    table(rng, 300, shift=1.0).to_csv(shifted, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "drift", str(reference), str(shifted), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert strict_json(done.stdout)["drifted_features"][0] == "watch_hours"
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ the HTML report


def _html(tmp_path: Path, n: int) -> str:
    rng = np.random.default_rng(23)
    reference, current = table(rng, n), table(rng, n, shift=0.2)
    # distinctive raw values that a page built from aggregates can never contain
    reference.loc[0, "fee"] = 987654.321
    current.loc[0, "fee"] = 123456.789
    current.loc[1, "tenure"] = 4242.4242
    paths = tmp_path / f"r{n}.csv", tmp_path / f"c{n}.csv"
    reference.to_csv(paths[0], index=False)
    current.to_csv(paths[1], index=False)
    page = tmp_path / f"report{n}.html"
    result = run(str(paths[0]), str(paths[1]), "--html", str(page), "--no-multivariate", "--no-outliers")
    no_traceback(result)
    assert result.exit_code == 1
    return page.read_text()


NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def test_html_is_built_from_aggregates(tmp_path: Path) -> None:
    small, large = _html(tmp_path, 1_000), _html(tmp_path, 100_000)
    for page in (small, large):
        assert page.startswith("<!doctype html>") and "<svg" in page
        assert page.count("<svg") == 5  # one plot per feature
        for raw in ("987654", "123456", "4242"):
            assert raw not in page
    # a hundred times the rows, about the same page
    assert 0.5 < len(large) / len(small) < 2
    # how many numbers a page holds depends on features and bins, not on rows
    count_small, count_large = len(NUMBER.findall(small)), len(NUMBER.findall(large))
    assert abs(count_large - count_small) <= 0.05 * count_small
    assert count_large < 5 * 12 * 25  # features x (bins + 2) x numbers per bar, with room for the tables


def test_html_with_every_family(files: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "full.html"
    result = run(str(files["reference"]), str(files["shifted"]), "--html", str(page))
    no_traceback(result)
    text = page.read_text()
    for name in ("Multivariate", "Outliers and novelty", "pca_reconstruction", "isolation_forest", "watch_hours"):
        assert name in text
    assert "drift" in text and "<svg" in text


def test_the_practical_threshold_example_in_the_docs_holds() -> None:
    import doctest

    text = (ROOT / "docs" / "drift.md").read_text()
    block = re.search(r"## Practical thresholds.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/drift.md lost its practical-threshold example"
    test = doctest.DocTestParser().get_doctest(block.group(1), {}, "drift.md", "docs/drift.md", 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.summarize(verbose=False) == (0, 10)


def test_cli_practical_threshold_options(files: dict[str, Path]) -> None:
    result = run(str(files["reference"]), str(files["shifted"]), "--no-multivariate", "--no-outliers", "--json",
                 "--practical-threshold", "wasserstein_normed=5", "--practical-band-rows", "2000")
    data = strict_json(result.stdout)
    assert data["config"]["practical_thresholds"] == {"wasserstein_normed": 5.0}
    assert data["config"]["practical_band_rows"] == 2000
    shifted = data["features"]["watch_hours"]
    assert shifted["significant"] and shifted["practical"]["source"] == "configured" and not shifted["drift"]
    _error(run(str(files["reference"]), str(files["shifted"]), "--practical-threshold", "js_distance"),
           "STATISTIC=NUMBER")
    _error(run(str(files["reference"]), str(files["shifted"]), "--practical-threshold", "psi=0.1"), "psi")
