"""The shape of the house: the core never imports an edge, the public API is pinned,
one error hierarchy, and importing loopwatch is cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import loopwatch
from loopwatch import errors

SRC = Path(loopwatch.__file__).parent
EDGES = ("loopwatch.service", "loopwatch.cli", "loopwatch.demo")
CORE = ("records", "features", "models", "stats", "detectors", "performance", "feedback", "loops", "poisoning",
        "auth",
        "prediction.py", "config.py", "errors.py", "tables.py", "registry")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _files(part: str) -> list[Path]:
    target = SRC / part
    if target.is_file():
        return [target]
    return sorted(target.rglob("*.py")) if target.exists() else []


@pytest.mark.parametrize("part", CORE)
def test_the_core_never_imports_an_edge(part: str) -> None:
    for path in _files(part):
        bad = {m for m in _imports(path) if m.startswith(EDGES)}
        assert not bad, f"{path.relative_to(SRC)} imports edges {bad}"


def test_the_core_never_imports_the_stores_except_the_registry() -> None:
    for part in CORE:
        if part == "registry":
            continue
        for path in _files(part):
            bad = {m for m in _imports(path) if m.startswith("loopwatch.stores")}
            assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_simulator_stands_alone() -> None:
    for path in _files("simulate"):
        loopwatch_imports = {m for m in _imports(path) if m.startswith("loopwatch")}
        assert all(m.startswith("loopwatch.simulate") for m in loopwatch_imports), path


def test_nothing_but_the_demo_and_tests_imports_the_simulator() -> None:
    for path in SRC.rglob("*.py"):
        if "simulate" in path.parts or "demo" in path.parts:
            continue
        assert not {m for m in _imports(path) if m.startswith("loopwatch.simulate")}, path


def test_public_api_is_pinned() -> None:
    assert sorted(loopwatch.__all__) == ["LoopwatchError", "Settings", "Workspace", "create_app", "open_store"]
    for name in loopwatch.__all__:
        assert getattr(loopwatch, name) is not None
    with pytest.raises(AttributeError):
        loopwatch.nothing_here  # noqa: B018


def test_importing_loopwatch_is_cheap() -> None:
    code = "import sys, loopwatch; print(','.join(m for m in ('pandas','sklearn','fastapi','numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_one_error_hierarchy_with_statuses() -> None:
    classes = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]
    ours = [c for c in classes if issubclass(c, Exception) and c.__module__ == errors.__name__]
    assert all(issubclass(c, errors.LoopwatchError) for c in ours)
    for cls in ours:
        assert 400 <= cls.status < 600
        assert cls.__name__ in errors.__doc__  # drawn in the module docstring
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    body = errors.Conflict("taken", detail={"id": "x"}).to_dict()
    assert body == {"error": {"status": 409, "code": "conflict", "message": "taken", "detail": {"id": "x"}}}


def test_no_file_is_too_long_to_read_in_one_sitting() -> None:
    long = [p.relative_to(SRC) for p in SRC.rglob("*.py") if len(p.read_text().splitlines()) > 500]
    assert not long, long
