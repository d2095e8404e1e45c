"""``reslab status SWEEP_DIR``: where each job of a sweep stands and what rerunning the sweep's command will do.

A job's status is its own record's (``metrics.json``), read as the report reads it: ``running`` only while a
process holds the job's lock, ``died`` when the record says running and nobody holds it (killed without a word).
The jobs the sweep should have come from its launch's ``multirun.yaml``: Hydra's own basic sweeper expands the
command line's overrides (or the tuning sweeper's ``n_trials``), so jobs that never started are counted too.
Exit status 0 when every job the sweep asks for has ended (finished or diverged), 1 when a rerun has work to do,
2 for a path that is not a sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# What a rerun of the same command does with a job in each state (reslab.job.train and reslab.jobdir).
RERUN = {
    "finished": "kept (a rerun does not train it again)",
    "diverged": "kept: its divergence is its result (retrain=true trains it again)",
    "interrupted": "resumed from its checkpoint",
    "died": "resumed from its checkpoint",
    "failed": "trained again (from its checkpoint if it has one); see its error.log",
    "running": "left alone: a process is training it now (a rerun counts it as not finished)",
    "unreadable": "trained again: its metrics.json is missing or not JSON",
}
ENDED = ("finished", "diverged")


def expected_jobs(sweep: Path) -> int | None:
    """How many jobs the launch asked for, from its ``multirun.yaml``; None if the folder has none (a folder the
    user assembled) or the sweep cannot be expanded."""
    import yaml

    try:
        saved = yaml.safe_load((sweep / "multirun.yaml").read_text())
        hydra = saved["hydra"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    sweeper = hydra.get("sweeper") or {}
    if "n_trials" in sweeper:  # a tuning sweeper (Optuna): the stated total of trials
        return int(sweeper["n_trials"])
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # Hydra's own expansion, not a copy of it
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(list(hydra["overrides"]["task"]))
        return len(BasicSweeper.split_arguments(overrides, None)[0])
    except Exception:  # an override Hydra's basic sweeper does not expand (a range, an interval)
        return None


def describe(run) -> str:
    status = run.status
    steps, total = run.record.get("steps"), run.record.get("max_steps")
    where = f"step {steps} of {total}" if steps is not None and total else ""
    action = RERUN.get(status, "trained again")
    if status in ("interrupted", "died", "failed") and not (run.path / "checkpoints" / "last.ckpt").exists():
        action = "trained from the start: it has no checkpoint"
    return f"{run.path.name:<40} {status:<12} {where:<18} {action}"


def main(argv: list[str] | None = None) -> int:
    from reslab.results.runs import load_sweep

    parser = argparse.ArgumentParser(prog="reslab status", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    sweep: Path = args.sweep_dir
    if not sweep.is_dir():
        print(f"reslab: error: {sweep} is not a directory; pass a sweep directory (hydra.sweep.dir)", file=sys.stderr)
        return 2
    runs = load_sweep(sweep, series=False)
    expected = expected_jobs(sweep)
    if not runs and expected is None:
        print(f"reslab: error: no jobs (no metrics.json) and no multirun.yaml under {sweep}; is it a sweep?",
              file=sys.stderr)  # fmt: skip
        return 2
    for run in runs:
        print(describe(run))
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    missing = max(0, expected - len(runs)) if expected is not None else 0
    parts = [f"{n} {s}" for s, n in sorted(counts.items())] + ([f"{missing} not started"] if missing else [])
    of = f" of {expected}" if expected is not None else ""
    print(f"{len(runs)} job(s){of} have a record: {', '.join(parts) or 'none'}")
    todo = [r for r in runs if r.status not in ENDED]
    if not todo and not missing:
        print("the sweep is complete: a rerun trains nothing")
        return 0
    running = sum(r.status == "running" for r in todo)
    print(
        f"a rerun of the sweep's command (same hydra.sweep.dir) trains {len(todo) - running + missing} job(s)"
        + (f" and leaves the {running} running one(s) alone" if running else "")
        + (" (the not-started jobs included)" if missing else "")
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
