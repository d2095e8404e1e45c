"""The package's shape, as the README's layout describes it: small modules, no import cycles, results that never
import training code, and every subpackage shipped by `pip install .`."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
MAX_LINES = 320  # the layout's "about 300 lines" with a little slack for formatting


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "reslab").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_at_load(path: Path, known: set[str]) -> set[str]:
    """reslab modules that ``path`` imports when it is loaded (imports inside functions run later)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def test_no_module_is_long():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_no_import_cycles():
    mods = modules()
    graph = {name: imports_at_load(path, set(mods)) - {name} for name, path in mods.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, name, dep]))
            if dep not in state:
                visit(dep, [*path, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_results_never_import_training_code():
    training = ("reslab.job", "reslab.training", "reslab.models", "reslab.data", "reslab.instruments")
    for name, path in modules().items():
        if name.startswith("reslab.results"):
            text = path.read_text()
            assert not any(f"from {t}" in text or f"import {t}" in text for t in training), name


def test_every_package_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in modules().items() if path.name == "__init__.py"} | {"reslab.conf"}
    plugins = {p.parent.name for p in (ROOT / "src" / "hydra_plugins").glob("*/__init__.py")}
    assert packages | {f"hydra_plugins.{name}" for name in plugins} == listed and plugins == {"reslab_launchers"}
