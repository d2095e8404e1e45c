"""``reslab bench --mode share``: how much faster a sweep runs with several jobs at once on one machine than in series.

The sweep (default: the paper's Fig. 6 sweep, ``experiment=paper model=plain,residual depth=20,32,44,56,110``, plus
the user's overrides) runs twice as real ``python -m reslab -m`` commands, into two folders under ``--run-dir``: in
series (Hydra's basic launcher, one job after another) and ``--jobs`` at a time (``hydra/launcher=joblib
hydra.launcher.n_jobs=K``). On a CPU, ``runtime.threads=auto`` gives each of the K jobs the cores divided by K as
torch threads (a job in series has them all); on a GPU the K jobs share the one card. The speed-up is the series
wall time over the parallel one, each from launch to exit. ``--skip-series`` runs the parallel sweep only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from reslab.bench.whole_job import (
    checked_config,
    device_header,
    duration,
    fresh_run_dir,
    hydra_path,
    last_line,
    of_peak,
    read_job,
    run_command,
    train_flop,
    with_defaults,
)
from reslab.config import parse_overrides
from reslab.errors import UserError
from reslab.overrides import sweep_values

DEFAULTS = ["experiment=paper", "model=plain,residual", "depth=20,32,44,56,110"]
DEFAULT_JOBS = 4
# Set by the bench for each of its two runs; the user's own would make them the same run.
OWN_KEYS = ("hydra/launcher", "hydra.launcher", "hydra.sweep.dir")


def sweep_size(overrides: list[str]) -> int:
    """Jobs in the sweep: the product of the numbers of values of the swept keys."""
    size = 1
    for o in parse_overrides(overrides):
        if o.is_sweep_override() and not o.key_or_group.startswith("hydra"):
            size *= len(sweep_values(o))
    return size


def run_sweep(name: str, overrides: list[str], launcher: list[str], run_dir: Path, expected: int) -> dict:
    """Run the sweep into ``run_dir/name``; its wall time, and each job's record."""
    sweep = run_dir / name
    cmd = [sys.executable, "-m", "reslab", "-m", *overrides, *launcher, f"hydra.sweep.dir={hydra_path(sweep)}"]
    log = run_dir / f"{name}.log"
    print(f"{name}: {shlex.join(cmd)}\n  (output: {log})", flush=True)
    code, wall = run_command(cmd, log, echo=False)
    jobs, flop = {}, 0.0
    for job_dir in sorted(sweep.iterdir()) if sweep.is_dir() else []:
        record, cfg = read_job(job_dir)
        if record is None:
            continue
        jobs[job_dir.name] = {
            "status": record.get("status"),
            "steps": record.get("steps"),
            "training_s": record.get("wall_time_s"),
            "threads": record.get("threads"),
            "error": record.get("error"),
        }
        if cfg is not None and record.get("steps") and record.get("image_size"):
            flop += train_flop(record, cfg)
    failed = {job: j["error"] or j["status"] for job, j in jobs.items() if j["status"] != "finished"}
    finished = len(jobs) - len(failed)
    return {
        "command": cmd,
        "exit_code": code,
        "wall_s": wall,
        "jobs_expected": expected,
        "jobs_finished": finished,
        "failed": failed,
        "missing": max(0, expected - len(jobs)),
        "last_line": last_line(log) if code else None,
        "training_s_sum": sum(j["training_s"] or 0.0 for j in jobs.values()),
        "gflop_s": flop / wall / 1e9,
        "jobs": jobs,
    }


def main(args: argparse.Namespace) -> int:
    k = DEFAULT_JOBS if args.jobs is None else args.jobs
    if k < 1:
        raise UserError(f"--jobs={k} must be at least 1")
    for o in parse_overrides(args.overrides):
        if o.key_or_group.startswith(OWN_KEYS):
            raise UserError(f"{o.input_line}: the bench sets the launcher and the sweep folders itself (use --jobs)")
    overrides = with_defaults(DEFAULTS, args.overrides)
    parallel = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={k}"]
    runs = ["parallel"] if args.skip_series else ["series", "parallel"]
    run_dir, made = fresh_run_dir(args.run_dir, runs)
    sweep_dir = f"hydra.sweep.dir={hydra_path(run_dir / runs[-1])}"
    cfg = checked_config(["-m", *overrides, *parallel, sweep_dir], run_dir if made else None)
    about, peak = device_header(cfg, args.fma_units, args.cpu_clock_ghz)
    expected = sweep_size(overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    sharing = "the GPU" if about["accelerator"] == "gpu" else "the CPU cores, as runtime.threads=auto shares them"
    print(f"sweep: {expected} jobs, in series, then {k} at a time sharing {sharing}; run dir: {run_dir}", flush=True)
    results = {}
    for name in runs:
        results[name] = run_sweep(name, overrides, parallel if name == "parallel" else [], run_dir, expected)
    series = results.get("series")
    speed_up = series["wall_s"] / results["parallel"]["wall_s"] if series else None
    report = {
        "mode": "share",
        "machine": about,
        "peak": peak.as_dict(),
        "peak_gflop_s": peak.gflop_s,
        "jobs_at_once": k,
        "overrides": overrides,
        "commands": [r["command"] for r in results.values()],
        "run_dir": str(run_dir),
        "series": series,
        "parallel": results["parallel"],
        "speed_up": speed_up,
    }
    print_results(results, k, peak.gflop_s, speed_up)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    bad = any(r["failed"] or r["missing"] or r["exit_code"] for r in results.values())
    return 1 if bad else 0


def print_results(results: dict, k: int, peak_gflop_s: float | None, speed_up: float | None) -> None:
    names = sorted({job for r in results.values() for job in r["jobs"]})
    width = max([len(n) for n in names] + [3])
    print(f"{'job':<{width}} " + " ".join(f"{name + ': status':>18} {'train s':>8} {'threads':>7}" for name in results))
    for job in names:
        cells = []
        for r in results.values():
            j = r["jobs"].get(job) or {"status": "-", "training_s": None, "threads": None}
            seconds = f"{j['training_s']:.1f}" if j["training_s"] is not None else "-"
            cells.append(f"{j['status']:>18} {seconds:>8} {j['threads'] or '-':>7}")
        print(f"{job:<{width}} " + " ".join(cells))
    for name, r in results.items():
        at_once = f"{k} at a time" if name == "parallel" else "one at a time"
        flop = f"{r['gflop_s']:.1f} GFLOP/s" + (of_peak(r["gflop_s"] / peak_gflop_s) if peak_gflop_s else of_peak(None))
        print(
            f"{name}: {duration(r['wall_s'])} launch -> exit ({at_once}), {r['jobs_finished']}/{r['jobs_expected']} "
            f"jobs finished, jobs' training times sum to {duration(r['training_s_sum'])}, {flop}"
        )
        for job, why in r["failed"].items():
            print(f"  failed: {job}: {why}")
        if r["missing"]:
            print(f"  {r['missing']} job(s) left no metrics.json (exit code {r['exit_code']}: {r['last_line']})")
    if speed_up is not None:
        print(f"speed-up: {speed_up:.2f}x (series wall time / parallel wall time)")
