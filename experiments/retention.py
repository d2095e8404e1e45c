"""The retention rule of experiments/ (README.md here): which files of a sweep folder a study keeps.

    .venv/bin/python experiments/retention.py copy SWEEP_DIR DEST   # copy what the rule keeps, nothing else
    .venv/bin/python experiments/retention.py check DIR...          # list the files under DIR the rule drops

A job directory is a folder holding a metrics.json. Per job the rule keeps what `reslab report` reads to redraw the
tables and figures (metrics.json; the curves in curves.csv; grad_norms.npz, responses.npz and signal_steps.npz), the
resolved config.yaml (what reruns the job), and `reslab analyze`'s arrays (analysis/<kind>.json and .npz). At the
sweep's root it keeps the report (summary.md, summary.csv, figures/) and `reslab analyze`'s summaries and figures
(analysis/). Everything else is runtime debris and is dropped: checkpoints, locks (.lock, .report.lock), Lightning's
hparams.yaml, logs (reslab.log, error.log, the sweep's log), Hydra's .hydra/ and multirun.yaml, every TensorBoard
event file (the curves are in curves.csv; `reslab report` writes it from the event files of a run made before it
existed), the other loggers' files (csv/, mlflow_run.json) and the report's TensorBoard views."""

from __future__ import annotations

import fnmatch
import shutil
import sys
from pathlib import Path

JOB_FILES = ("metrics.json", "config.yaml", "curves.csv", "grad_norms.npz", "responses.npz", "signal_steps.npz")
JOB_ANALYSIS_FILES = ("*.json", "*.npz")  # <job>/analysis/: reslab analyze's arrays and the settings behind them
SWEEP_FILES = ("summary.md", "summary.csv")
SWEEP_FOLDERS = {"figures": ("*.png", "*.pdf"), "analysis": ("*.md", "*.png", "*.pdf")}


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def kept(relative: str | Path, job_dirs: set[Path]) -> bool:
    """Whether the rule keeps the file at ``relative`` (a path inside a sweep folder) whose sweep has the job
    directories ``job_dirs`` (paths relative to the sweep folder)."""
    path = Path(relative)
    parent = path.parent
    if parent in job_dirs:
        return _matches(path.name, JOB_FILES)
    if parent.name == "analysis" and parent.parent in job_dirs:
        return _matches(path.name, JOB_ANALYSIS_FILES)
    if parent == Path("."):
        return path.name in SWEEP_FILES
    if parent.parent == Path(".") and parent.name in SWEEP_FOLDERS:
        return _matches(path.name, SWEEP_FOLDERS[parent.name])
    return False


def job_dirs(files: list[Path]) -> set[Path]:
    """The job directories among a sweep's files (relative paths): the folders holding a metrics.json."""
    return {f.parent for f in files if f.name == "metrics.json" and ".hydra" not in f.parts}


def dropped(sweep_dir: Path, files: list[Path] | None = None) -> list[Path]:
    """The files (relative to ``sweep_dir``) the rule drops; ``files`` defaults to every file under it."""
    sweep_dir = Path(sweep_dir)
    if files is None:
        files = [p.relative_to(sweep_dir) for p in sorted(sweep_dir.rglob("*")) if p.is_file()]
    jobs = job_dirs(files)
    return [f for f in files if not kept(f, jobs)]


# The checkout's own path, which a job's config.yaml holds as launch.cwd (where reslab was launched): a kept config
# says "." instead, so no study records the machine's layout.
CHECKOUT = str(Path(__file__).resolve().parents[1])


def without_checkout_path(text: str) -> str:
    return text.replace(CHECKOUT + "/", "").replace(CHECKOUT, ".")


def copy_sweep(sweep_dir: Path, dest: Path) -> list[Path]:
    """Copy what the rule keeps of ``sweep_dir`` to ``dest`` (replaced if it exists); return the files copied. In a
    job's config.yaml the checkout's absolute path becomes relative (`without_checkout_path`)."""
    sweep_dir, dest = Path(sweep_dir), Path(dest)
    files = [p.relative_to(sweep_dir) for p in sorted(sweep_dir.rglob("*")) if p.is_file()]
    jobs = job_dirs(files)
    if not jobs:
        raise SystemExit(f"retention.py: no job directories (no metrics.json) under {sweep_dir}")
    if dest.exists():
        shutil.rmtree(dest)
    copied = []
    for f in files:
        if kept(f, jobs):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sweep_dir / f, dest / f)
            if f.name == "config.yaml":
                (dest / f).write_text(without_checkout_path((sweep_dir / f).read_text()))
            copied.append(f)
    return copied


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "copy":
        copied = copy_sweep(Path(argv[1]), Path(argv[2]))
        print(f"retention.py: kept {len(copied)} files of {argv[1]} in {argv[2]}")
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        bad = [Path(d) / f for d in argv[1:] for f in dropped(Path(d))]
        print("\n".join(str(b) for b in bad) or "retention.py: every file is kept by the rule")
        return 1 if bad else 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
