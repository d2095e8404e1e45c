"""experiments/ (its README.md): every study listed in the index has run.sh and README.md, every Python script there
imports, no runtime debris is tracked or left unignored, and every committed sweep folder holds only what the
retention rule keeps and loads with reslab's run loader."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
INDEX = EXPERIMENTS / "README.md"

# Names a run leaves that no study keeps (experiments/README.md, "The retention rule").
DEBRIS_NAMES = {".lock", ".report.lock", "hparams.yaml", "multirun.yaml"}
DEBRIS_SUFFIXES = (".log", ".ckpt", ".reslab-sweep", "-figure")
DEBRIS_FOLDERS = {"checkpoints", ".hydra", "__pycache__"}


def indexed_studies() -> list[str]:
    """The study folders the index lists, as paths relative to experiments/ (``performance/parallel_sweep``)."""
    return re.findall(r"^\| \[([\w./-]+)/\]\(\1/\) \|", INDEX.read_text(), flags=re.M)


def kept_logs() -> list[str]:
    """The logs the index keeps as evidence: the bullets of its "Logs kept as evidence" section."""
    section = INDEX.read_text().partition("### Logs kept as evidence")[2]
    return re.findall(r"^- `([^`]+)`", section, flags=re.M)


def scripts() -> list[Path]:
    return sorted(p for p in EXPERIMENTS.rglob("*.py") if "__pycache__" not in p.parts)


def shell_scripts() -> list[Path]:
    return sorted(EXPERIMENTS.rglob("*.sh"))


def tracked() -> list[str]:
    """experiments/'s tracked files, relative to experiments/."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "experiments"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [str(Path(p).relative_to("experiments")) for p in out.split("\0") if p]


def sweep_folders(files: list[str]) -> dict[str, list[Path]]:
    """Committed sweep folders (those holding <job>/metrics.json), each with its tracked files relative to it."""
    sweeps = {str(Path(f).parent.parent) for f in files if Path(f).name == "metrics.json"}
    return {s: [Path(f).relative_to(s) for f in files if Path(f).is_relative_to(s)] for s in sorted(sweeps)}


def retention():
    return load_script(EXPERIMENTS / "retention.py")


def load_script(path: Path):
    """Import a script by path under a name of its own, so its ``if __name__ == "__main__"`` block does not run."""
    name = "experiments_" + "_".join(path.relative_to(EXPERIMENTS).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def rel(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


# ---- the index and the study folders


def test_the_index_lists_every_study():
    studies = set(indexed_studies())
    assert studies, "experiments/README.md lists no study (rows: | [folder/](folder/) | ... |)"
    top = {p.name for p in EXPERIMENTS.iterdir() if p.is_dir() and p.name not in DEBRIS_FOLDERS}
    with_readme = {str(p.parent.relative_to(EXPERIMENTS)) for p in EXPERIMENTS.rglob("README.md")} - {"."}
    assert not top - studies, f"folders of experiments/ missing from its index: {sorted(top - studies)}"
    assert not with_readme - studies, (
        f"folders with a README.md missing from the index: {sorted(with_readme - studies)}"
    )
    assert all((EXPERIMENTS / s).is_dir() for s in studies), "the index lists a folder that does not exist"


@pytest.mark.parametrize("study", indexed_studies())
def test_each_study_has_run_sh_and_a_readme_saying_command_machine_commit(study):
    folder = EXPERIMENTS / study
    assert (folder / "run.sh").is_file(), f"{study}/ has no run.sh"
    readme = (folder / "README.md").read_text().lower()
    missing = [word for word in ("command", "machine", "commit") if word not in readme]
    assert not missing, f"{study}/README.md does not say its {', '.join(missing)}"


@pytest.mark.parametrize("script", shell_scripts(), ids=rel)
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---- the Python scripts


def _runs_work_at_import(tree: ast.Module) -> list[int]:
    """Line numbers of top-level statements that do work when the module is imported (calls, loops, with-blocks);
    imports, definitions, assignments and the ``__main__`` guard are fine."""
    lines = []
    for node in tree.body:
        if isinstance(node, ast.If):
            continue  # the __main__ guard (checked below) or a conditional import
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, (ast.Expr, ast.For, ast.While, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith)):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("script", scripts(), ids=rel)
def test_scripts_import_and_keep_their_work_under_main(script, monkeypatch):
    tree = ast.parse(script.read_text())
    guarded = any(
        isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) and "__main__" in ast.unparse(n.test)
        for n in tree.body
    )
    assert guarded, f'{rel(script)} has no `if __name__ == "__main__":` block'
    assert not _runs_work_at_import(tree), f"{rel(script)} does work at import, lines {_runs_work_at_import(tree)}"
    monkeypatch.setattr(sys, "path", list(sys.path))  # a script may put tests/ or src/ on it
    module = load_script(script)
    assert callable(getattr(module, "main", None)), f"{rel(script)} has no main()"


def test_bad_input_table_keeps_the_readme_above_its_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    make_table = load_script(EXPERIMENTS / "bad_input" / "make_table.py")
    assert make_table.MARKER in make_table.README.read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nHand-written.\n\n{make_table.MARKER}\n| old table |\n")
    monkeypatch.setattr(make_table, "README", readme)
    make_table.write_table(["| input |", "|---|", "| depth 7 |"])
    assert readme.read_text() == f"# Title\n\nHand-written.\n\n{make_table.MARKER}\n| input |\n|---|\n| depth 7 |\n"


# ---- what is committed: no debris, the retention rule, the run loader


def test_no_runtime_debris_is_tracked():
    allowed = set(kept_logs())
    files = tracked()
    assert allowed <= set(files), (
        f"experiments/README.md keeps logs that are not tracked: {sorted(allowed - set(files))}"
    )
    debris = [
        f
        for f in files
        if f not in allowed
        and (
            Path(f).name in DEBRIS_NAMES
            or Path(f).name.endswith(DEBRIS_SUFFIXES)
            or DEBRIS_FOLDERS & set(Path(f).parts)
        )
    ]
    assert not debris, f"runtime debris tracked under experiments/ (git rm it; see experiments/README.md): {debris}"


def test_runtime_debris_is_ignored():
    debris = [
        "experiments/s/sweep/.report.lock",
        "experiments/s/sweep/job/.lock",
        "experiments/s/sweep/job/hparams.yaml",
        "experiments/s/sweep/job/reslab.log",
        "experiments/s/sweep/job/checkpoints/last.ckpt",
        "experiments/s/sweep/job/.hydra/config.yaml",
        "experiments/s/sweep/multirun.yaml",
        "experiments/s/sweep.log",
        "experiments/s/sweep/events.out.tfevents.1.vm.1.reslab-sweep",
        "experiments/s/sweep/job/events.out.tfevents.1.vm.1.0",
        "experiments/s/sweep/job/csv/metrics.csv",
        "experiments/s/sweep/job/mlflow_run.json",
    ]
    kept = ["experiments/s/sweep/job/curves.csv", "experiments/s/sweep/job/metrics.json"]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *debris, *kept], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode == 128:
        pytest.skip(f"git check-ignore: {proc.stderr.strip()}")
    ignored = set(proc.stdout.split())
    assert ignored == set(debris), (
        f"not ignored: {sorted(set(debris) - ignored)}; ignored: {sorted(ignored - set(debris))}"
    )


def test_committed_sweeps_keep_only_what_the_retention_rule_keeps():
    sweeps = sweep_folders(tracked())
    assert sweeps, "no committed sweep folder found"
    rule = retention()
    dropped = {s: [str(f) for f in rule.dropped(EXPERIMENTS / s, files)] for s, files in sweeps.items()}
    dropped = {s: d for s, d in dropped.items() if d}
    assert not dropped, f"files the retention rule drops (experiments/README.md): {dropped}"


def test_committed_sweeps_load_with_the_run_loader():
    from reslab.results.runs import load_sweep

    for sweep, files in sweep_folders(tracked()).items():
        jobs = {f.parent for f in files if f.name == "metrics.json"}
        runs = load_sweep(EXPERIMENTS / sweep, series=False)
        assert len(runs) == len(jobs), f"{sweep}: {len(runs)} runs loaded for {len(jobs)} job folders"
        for run in runs:
            assert "status" in run.record and run.status != "unreadable", f"{sweep}/{run.path.name}: {run.record}"


def test_the_retention_rule_as_code(tmp_path):
    sweep = tmp_path / "sweep"
    keep = [
        "summary.md",
        "summary.csv",
        "figures/error_curves.png",
        "figures/error_curves.pdf",
        "analysis/lesion.md",
        "analysis/lesion.png",
        "plain-20_seed0/metrics.json",
        "plain-20_seed0/config.yaml",
        "plain-20_seed0/grad_norms.npz",
        "plain-20_seed0/responses.npz",
        "plain-20_seed0/curves.csv",
        "plain-20_seed0/analysis/lesion.npz",
        "plain-20_seed0/analysis/lesion.json",
    ]
    drop = [
        ".report.lock",
        "multirun.yaml",
        "events.out.tfevents.1.vm.1.reslab-sweep",
        "plain-20_seed0/events.out.tfevents.2.vm.1.3.reslab-sweep",
        "plain-20_seed0/events.out.tfevents.2.vm.1.4.reslab-session",
        "plain-20_seed0/events.out.tfevents.1795750267.vm.569.0",  # the curves are in curves.csv
        "plain-20_seed0/csv/metrics.csv",
        "plain-20_seed0/mlflow_run.json",
        "plain-20_seed0/.lock",
        "plain-20_seed0/hparams.yaml",
        "plain-20_seed0/reslab.log",
        "plain-20_seed0/error.log",
        "plain-20_seed0/checkpoints/last.ckpt",
        "plain-20_seed0/.hydra/config.yaml",
        "plain-20_seed0/analysis/lesion.png",  # a one-run analysis' figure: the sweep's is kept
    ]
    for name in keep + drop:
        (sweep / name).parent.mkdir(parents=True, exist_ok=True)
        (sweep / name).write_text(name)
    rule = retention()
    assert sorted(map(str, rule.dropped(sweep))) == sorted(drop)
    copied = rule.copy_sweep(sweep, tmp_path / "kept")
    assert sorted(map(str, copied)) == sorted(keep)
    assert sorted(
        str(p.relative_to(tmp_path / "kept")) for p in (tmp_path / "kept").rglob("*") if p.is_file()
    ) == sorted(keep)
    # A kept config says where reslab was launched relative to the checkout, not as this machine's path.
    (sweep / "plain-20_seed0" / "config.yaml").write_text(f"launch:\n  cwd: {ROOT}\ndata_dir: {ROOT}/data\n")
    rule.copy_sweep(sweep, tmp_path / "kept")
    assert (tmp_path / "kept" / "plain-20_seed0" / "config.yaml").read_text() == "launch:\n  cwd: .\ndata_dir: data\n"


def test_no_committed_study_holds_the_checkouts_own_path():
    """A run made in this checkout and kept by retention.py names the checkout relatively (launch.cwd: .)."""
    holding = [f for f in tracked() if (EXPERIMENTS / f).is_file() and str(ROOT) in _text(EXPERIMENTS / f)]
    assert not holding, f"files holding {ROOT} (keep runs with retention.py copy): {holding}"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (UnicodeDecodeError, OSError):
        return ""
