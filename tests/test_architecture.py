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
#: The layers, bottom up (docs/architecture.md): a file may import its own rank and those
#: below, never above. Every top-level module and package of loopwatch has a rank here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "config", "simulate"),
    ("records",),
    ("features", "stats"),
    ("drift", "performance", "detectors", "feedback", "auth", "poisoning", "models", "loops", "summaries"),
    ("stores", "registry"),
    ("application", "engines"),
    ("service", "cli", "client"),
    ("demo",),
    ("__init__", "__main__"),  # the package's front door and the program: they assemble the rest
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """The top-level module or package of loopwatch that ``module`` lies in."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """The loopwatch modules ``path`` imports, at its top or inside functions alike; ``from
    package import module`` counts as importing that module, not the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
    return {m for m in found if m == "loopwatch" or m.startswith("loopwatch.")}


def _module_name(path: Path) -> str:
    name = ".".join(("loopwatch", *path.relative_to(SRC).with_suffix("").parts))
    return name.removesuffix(".__init__")


def _files(part: str) -> list[Path]:
    target = SRC / part
    if target.is_file():
        return [target]
    return sorted(target.rglob("*.py")) if target.exists() else []


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_file_has_a_rank_and_every_rank_names_something_real() -> None:
    # a renamed or new package fails here instead of passing every rule vacuously
    units = {_unit(_module_name(path)) for path in SOURCES}
    assert units - RANK.keys() == set(), f"files without a layer: {sorted(units - RANK.keys())}"
    assert RANK.keys() - units == set(), f"layers naming nothing: {sorted(RANK.keys() - units)}"


def test_no_import_points_up_a_layer() -> None:
    upward = []
    for path in SOURCES:
        me = _unit(_module_name(path))
        for module in sorted(_imports(path)):
            them = _unit(module)
            if RANK[them] > RANK[me]:
                upward.append(f"{path.relative_to(SRC)} ({me}, layer {RANK[me]}) imports {module} (layer {RANK[them]})")
    assert not upward, "\n".join(upward)


def _graph() -> dict[str, set[str]]:
    names = {_module_name(path): path for path in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = set()
        for module in _imports(path):
            while module and module not in names:  # an attribute of a module: the module
                module = module.rpartition(".")[0]
            if module and module != name:
                deps.add(module)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules_or_packages() -> None:
    graph = _graph()
    assert _cycles(graph) == []
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # the checks above could pass by finding nothing: the finder must see a planted cycle
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_client_imports_only_records_and_errors() -> None:
    for path in _files("client"):
        assert {_unit(m) for m in _imports(path)} <= {"client", "records", "errors"}, path


def test_the_pure_layers_never_import_the_stores_or_the_edges() -> None:
    # below the stores: statistics, detectors and the domain packages take data, not a store
    for path in SOURCES:
        me = _unit(_module_name(path))
        if RANK[me] < RANK["stores"]:
            assert not {m for m in _imports(path) if _unit(m) in ("stores", "registry", "service", "cli")}, path


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
