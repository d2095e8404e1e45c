"""The package's shape, as the README's layout describes it: small modules, no import cycles, results that never
import training code, and every subpackage shipped by `pip install .`."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
MAX_LINES = 320  # the layout's "about 300 lines" with a little slack for formatting


def modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted((src / "reslab").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


# The package's layers, lowest first: a module may import its own layer and those below, never one above. Each
# layer's parts are the first name under reslab (reslab.training.placement -> training).
LAYERS = (
    ("", "errors", "files", "console", "signals"),  # "": reslab/__init__.py
    ("record", "schema", "config", "overrides", "tensorboard_views", "curves"),
    ("models", "data", "plots"),
    ("training", "instruments"),
    ("jobdir", "build", "job"),
    ("results", "analysis", "bench"),
    ("cli", "__main__"),
)
# Imports against the order that are allowed, and why (module, imported module).
ALLOWED_UPWARD: set[tuple[str, str]] = set()  # none today: the command line is the top layer and dispatches down
# What figure code may import besides the standard library and reslab.plots: it draws arrays, nothing else.
PLOTS_MAY_IMPORT = ("numpy", "matplotlib", "reslab.plots", "reslab.errors")


def layer_of(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else ""
    return next(i for i, parts in enumerate(LAYERS) if part in parts)


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name ``path`` imports, wherever the import is (inside functions too), relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """reslab module -> the reslab modules it imports (a name is mapped to the longest module it is in)."""
    mods = modules(src)
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imported in imported_names(path, name):
            while imported and imported not in mods:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                deps.add(imported)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                return [*path, name, dep]
            if dep not in state and (cycle := visit(dep, [*path, name])):
                return cycle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            return cycle
    return None


def test_no_module_is_long():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_no_import_cycles_counting_imports_inside_functions():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same imports between the package's top-level parts (reslab.analysis.runner -> reslab.analysis)."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    parts: dict[str, set[str]] = {}
    for name, deps in graph.items():
        parts.setdefault(part(name), set()).update(part(d) for d in deps if part(d) != part(name))
    return parts


def test_no_import_cycles_between_the_packages_parts():
    """Modules of one layer may import each other, but two parts never both ways (analysis and results: the report
    reads what the analyses wrote from their files, by the names in reslab.plots.ANALYSES)."""
    cycle = find_cycle(package_graph(import_graph()))
    assert cycle is None, "import cycle between parts of the package: " + " -> ".join(cycle or [])


def test_the_cycle_checks_find_a_cycle_through_a_function_level_import(tmp_path):
    """The check above can fail: a copy of the package with one import added inside a function (schema importing
    the job module, which imports schema at load time) has a cycle, and the check names it."""
    copy = tmp_path / "src"
    shutil.copytree(SRC / "reslab", copy / "reslab")
    schema = copy / "reslab" / "schema.py"
    schema.write_text(schema.read_text() + "\n\ndef _late():\n    from reslab.job import train\n\n    return train\n")
    cycle = find_cycle(import_graph(copy))
    assert cycle is not None and "reslab.schema" in cycle and "reslab.job" in cycle
    # Between parts, in a second copy: the report importing the analyses (which import its reader), inside a function.
    copy = tmp_path / "src2"
    shutil.copytree(SRC / "reslab", copy / "reslab")
    report = copy / "reslab" / "results" / "report.py"
    late = "\n\ndef _late():\n    from reslab.analysis import KINDS\n\n    return KINDS\n"
    report.write_text(report.read_text() + late)
    parts = find_cycle(package_graph(import_graph(copy)))
    assert parts is not None and {"reslab.analysis", "reslab.results"} <= set(parts)


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)  # StopIteration: a new top-level part of the package that LAYERS does not place


def test_no_import_against_the_layers():
    wrong = [
        f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
        for name, deps in import_graph().items()
        for dep in deps
        if layer_of(dep) > layer_of(name) and (name, dep) not in ALLOWED_UPWARD
    ]
    assert not wrong, "\n".join(wrong)


def test_figure_code_draws_arrays_only():
    mods = modules()
    for name, path in mods.items():
        if name.startswith("reslab.plots"):
            outside = {
                n
                for n in imported_names(path, name)
                if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith(PLOTS_MAY_IMPORT)
            }
            assert not outside, f"{name} imports {sorted(outside)}"


def test_a_measurement_never_imports_its_figure():
    from reslab.analysis import KINDS

    graph = import_graph()
    for module, _ in KINDS.values():
        deps = graph[module]
        assert not any(d.startswith("reslab.plots") for d in deps), f"{module} imports {deps}"


def test_nothing_below_the_command_line_reads_hydras_state():
    readers = [
        name
        for name, path in modules().items()
        if not name.startswith("reslab.cli") and "HydraConfig" in path.read_text()
    ]
    assert not readers, f"these read Hydra's global state; pass what they need in the job's config: {readers}"


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
    assert packages | {f"hydra_plugins.{name}" for name in plugins} == listed
    assert plugins == {"reslab_launchers", "reslab_sweepers"}


# What the process that launches a sweep imports (the command line, the watched launchers, Hydra's task function,
# the stop signals, the sweep's report): a cluster sweep's launcher trains nothing, so it must not pay for torch and
# Lightning (about 6 s of every launch on a 2-core machine); its jobs import them in their own processes.
LAUNCHING_SIDE = (
    "reslab.cli",
    "reslab.cli.launchers",
    "reslab.cli.launchers_local",
    "reslab.cli.status",
    "reslab.cli.tuning",
    "reslab.cli.hydra_app",
    "reslab.signals",
    "reslab.results.report",
)


def test_the_launching_command_imports_no_torch(run_env, tmp_path):
    code = f"import sys\nfor m in {LAUNCHING_SIDE!r}: __import__(m)\n"
    # and what the report writes into a sweep's runs for TensorBoard
    (tmp_path / "plain-8_seed0").mkdir()
    code += "from reslab.tensorboard_views import write_sweep_views\n"
    code += f"write_sweep_views({str(tmp_path)!r}, {{'plain-8_seed0': ({{'model': 'plain'}}, True)}}, [8], ['plain'])\n"
    code += "print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the launching side imports {out.strip()}: import it inside the job's function"


# Test modules that test the project as a whole rather than one part of the package.
WHOLE_PROJECT_TESTS = {"layout", "experiments", "bad_input", "notebook", "slurm_cluster", "chaos"}


def test_every_test_module_is_named_after_the_part_it_tests():
    parts = {name.split(".")[1] for name in modules() if name.count(".") >= 1}  # reslab.<part>[...]

    def names_a_part(subject: str) -> bool:
        return subject in WHOLE_PROJECT_TESTS or any(subject == p or subject.startswith(f"{p}_") for p in parts)

    tests = sorted((ROOT / "tests").glob("test_*.py"))
    misnamed = [path.name for path in tests if not names_a_part(path.stem.removeprefix("test_"))]
    assert not misnamed, (
        f"name these test_<part>[_<module>].py after a part of src/reslab/ (docs/testing.md): {misnamed}"
    )
