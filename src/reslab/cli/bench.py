"""``reslab bench``'s command line: the options of every mode, and the dispatch to step mode (`reslab.bench.step`),
the paper's schedule as one whole job (`reslab.bench.whole_job`) and jobs sharing a device (`reslab.bench.share`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import reslab.bench as bench
from reslab.bench import share, step, whole_job
from reslab.bench.peak import FMA_UNITS
from reslab.bench.step import DEFAULT_WARMUP, PATHS
from reslab.errors import UserError

MODES = ("step", "job", "share")
# Options of one mode only, and the modes they belong to: given to another, they are refused, not ignored.
MODE_OPTIONS = {
    "project_steps": ("job",),
    "jobs": ("share",),
    "skip_series": ("share",),
    "loop_overrides": ("step",),
}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reslab bench",
        description=description,
        epilog="Config overrides (key=value) go before --depths/--models/--paths or after --: those options take "
        "several values and would read an override that follows them as one of theirs. In job and share "
        "mode they are added to the mode's own (a key given replaces the mode's value), e.g. "
        "reslab bench --mode job --project-steps 64000 -- trainer.max_steps=2000",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="step",
        help="step: one training step, reslab against a plain loop (default); job: one whole job, the paper's "
        f"ResNet-56 schedule ({' '.join(whole_job.DEFAULTS)}), launch to exit; share: a sweep (default: "
        f"{' '.join(share.DEFAULTS)}) in series and --jobs at a time, and the speed-up",
    )
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="the JSON report (every mode)")
    p.add_argument(
        "--fma-units",
        type=int,
        default=None,
        help=f"CPU peak: FMA units per core, which the flags do not say (assumed: {FMA_UNITS}; 1 for Zen 4's AVX-512)",
    )
    p.add_argument("--cpu-clock-ghz", type=float, default=None, help="CPU peak: the clock, instead of reading it")
    step = p.add_argument_group("step mode")
    step.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    step.add_argument("--models", nargs="+", default=["plain", "residual"])
    step.add_argument("--steps", type=int, default=12, help="timed steps per timing")
    step.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed steps before them")
    step.add_argument("--repeats", type=int, default=3, help="timings per path; the median is reported")
    step.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS,
        default=list(PATHS),
        help="loop: plain PyTorch; full: reslab, default callbacks; bare: reslab, instruments off",
    )
    step.add_argument(
        "--loop-overrides",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="config overrides for the plain loop alone, after the others: the reference at its best, e.g. "
        "runtime.compile=reduce-overhead runtime.cuda_graph=false against reslab's runtime.cuda_graph=true",
    )
    step.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run reslab's full path once under torch.profiler; write DIR/<model>-<depth>.txt",
    )
    jobs = p.add_argument_group("schedule and share modes")
    jobs.add_argument(
        "--run-dir", type=Path, default=None, help="where the jobs are written (default: a new temporary folder)"
    )
    jobs.add_argument(
        "--project-steps",
        type=int,
        default=None,
        metavar="N",
        help="schedule: also the time N steps would take at the measured rate, labelled projected",
    )
    jobs.add_argument("--jobs", type=int, default=None, help=f"share: jobs at a time (default {share.DEFAULT_JOBS})")
    jobs.add_argument("--skip-series", action="store_true", help="share: run only the parallel sweep")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. runtime.precision=32")
    return p


def run(argv: list[str], description: str) -> int:
    args = parser(description).parse_args(argv)
    for name, modes in MODE_OPTIONS.items():
        if getattr(args, name) not in (None, False) and args.mode not in modes:
            raise UserError(f"--{name.replace('_', '-')} belongs to --mode {' or '.join(modes)}")
    if args.mode == "job":
        return whole_job.main(args)
    if args.mode == "share":
        return share.main(args)
    if args.run_dir is not None:
        raise UserError("--run-dir belongs to --mode job or share")
    return step.step_mode(args)


def main(argv: list[str] | None = None) -> int:
    """``reslab bench``: returns the exit status; a `UserError` (missing data, a bad option) is one line and 2."""
    from reslab.console import quiet_console

    quiet_console()
    try:
        return run(argv, description=bench.__doc__.splitlines()[0])
    except UserError as e:
        print(f"reslab bench: error: {e}", file=sys.stderr)
        return 2
