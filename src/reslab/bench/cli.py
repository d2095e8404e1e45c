"""``reslab bench``: the command line of every mode (dispatching to `schedule` and `share`), and step mode: the loop
over nets and paths, the table and the JSON report."""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

import reslab.bench.schedule as schedule
import reslab.bench.share as share
from reslab.bench.flops import TRAIN_FLOP_PER_MAC, macs_per_image
from reslab.bench.matmul import matmul_rate
from reslab.bench.peak import FMA_UNITS, Peak
from reslab.bench.timing import time_plain_loop, time_reslab
from reslab.build import build_job
from reslab.config import compose_config
from reslab.errors import UserError
from reslab.overrides import check_groups, composition_error
from reslab.record import machine
from reslab.schema import check_values
from reslab.training.accelerator import resolve_accelerator, resolve_precision
from reslab.training.net_layout import compile_mode
from reslab.training.step_graph import check_cuda_graph, cuda_graph_mode

DEFAULT_WARMUP = 3
MODES = ("step", "schedule", "share")
# Options of one mode only, and the modes they belong to: given to another, they are refused, not ignored.
MODE_OPTIONS = {
    "project_steps": ("schedule",),
    "jobs": ("share",),
    "skip_series": ("share",),
    "loop_overrides": ("step",),
}
PATHS = ("loop", "full", "bare")  # the plain loop; reslab with its default callbacks; reslab without instruments
# (column title, width, format) of the table, in order
COLUMNS = (
    ("model", 9, "s"),
    ("depth", 5, "d"),
    ("plain loop img/s", 17, ".1f"),
    ("reslab img/s", 13, ".1f"),
    ("ratio", 6, ".3f"),
    ("no-instr img/s", 15, ".1f"),
    ("instr cost", 10, ".1%"),
    ("GFLOP/s", 9, ".1f"),
    ("of peak", 7, ".1%"),
    ("of matmul", 9, ".1%"),
)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reslab bench",
        description=description,
        epilog="Config overrides (key=value) go before --depths/--models/--paths or after --: those options take "
        "several values and would read an override that follows them as one of theirs. In schedule and share "
        "mode they are added to the mode's own (a key given replaces the mode's value), e.g. "
        "reslab bench --mode schedule --project-steps 64000 -- trainer.max_steps=2000",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="step",
        help="step: one training step, reslab against a plain loop (default); schedule: one whole job, the paper's "
        f"ResNet-56 schedule ({' '.join(schedule.DEFAULTS)}), launch to exit; share: a sweep (default: "
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


def compose(model: str, depth: int, args: argparse.Namespace, extra: Sequence[str] = ()) -> DictConfig:
    """The job the benchmark times: no validation and no checkpoints inside the window; ``extra`` overrides last."""
    overrides = [
        f"model={model}",
        f"depth={depth}",
        f"trainer.max_steps={args.steps + args.warmup}",
        "trainer.val_check_interval=1000000",
        "trainer.limit_val_batches=0",
        "callbacks.checkpoint.every_n_train_steps=1000000",
        *args.overrides,
        *extra,
    ]
    try:
        cfg = compose_config(overrides, output_dir=tempfile.mkdtemp())
    except ConfigCompositionException as e:
        raise UserError(composition_error(e)) from None
    check_values(cfg)
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.runtime.precision, accelerator)
    graph = cuda_graph_mode(cfg.runtime.cuda_graph)  # as train() checks it: a CPU would run the graph step unrecorded
    check_cuda_graph(graph, accelerator, cfg.trainer.devices, precision, compile_mode(cfg.runtime.compile))
    return cfg


def time_paths(cfg: DictConfig, args: argparse.Namespace, loop_cfg: DictConfig) -> dict[str, list[float]]:
    """Seconds per step of each path, ``repeats`` times in rotating order so no path always runs first."""
    timers = {
        "loop": functools.partial(time_plain_loop, loop_cfg, args.warmup),
        "full": functools.partial(time_reslab, cfg, True, args.warmup),
        "bare": functools.partial(time_reslab, cfg, False, args.warmup),
    }
    seconds: dict[str, list[float]] = {name: [] for name in args.paths}
    for r in range(args.repeats):
        k = r % len(args.paths)
        for name in args.paths[k:] + args.paths[:k]:
            seconds[name].append(timers[name]())
    return seconds


def measure(model: str, depth: int, args: argparse.Namespace, peak: Peak, matmul: dict) -> dict:
    """One table row: the paths' images per second, their ratios, and the rate of useful arithmetic."""
    cfg = compose(model, depth, args)
    loop_cfg = compose(model, depth, args, args.loop_overrides) if args.loop_overrides else cfg
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    seconds = time_paths(cfg, args, loop_cfg)
    batch = cfg.dataset.batch_size
    rate = {name: batch / statistics.median(times) for name, times in seconds.items()}
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        time_reslab(cfg, True, args.warmup, profile=args.profile / f"{model}-{depth}.txt")
    datamodule, system = build_job(cfg)
    macs = macs_per_image(system.net, tuple(datamodule.train[0].shape[1:]))
    gflop_s = TRAIN_FLOP_PER_MAC * macs * rate.get("full", rate.get("bare", rate.get("loop"))) / 1e9
    return {
        "model": model,
        "depth": depth,
        "batch": batch,
        "precision": resolve_precision(cfg.runtime.precision, accelerator),
        "channels_last": cfg.runtime.channels_last,
        "compile": compile_mode(cfg.runtime.compile),
        "cuda_graph": str(cfg.runtime.cuda_graph).lower(),
        "loop_overrides": list(args.loop_overrides or []),
        "loop_img_s": rate.get("loop"),
        "reslab_img_s": rate.get("full"),
        "reslab_no_instruments_img_s": rate.get("bare"),
        "ratio": rate["full"] / rate["loop"] if {"full", "loop"} <= rate.keys() else None,
        "instrument_cost": 1 - rate["full"] / rate["bare"] if {"full", "bare"} <= rate.keys() else None,
        "seconds_per_step": seconds,
        "macs_per_image": macs,
        "achieved_gflop_s": gflop_s,
        "fraction_of_peak": gflop_s / peak.gflop_s if peak.gflop_s else None,
        "fraction_of_matmul": gflop_s / matmul["best_gflop_s"],
    }


def table_line(values: list) -> str:
    cells = []
    for (_, width, spec), value in zip(COLUMNS, values, strict=True):
        cells.append(f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}")
    return " ".join(cells)


def row_line(row: dict) -> str:
    keys = ("model", "depth", "loop_img_s", "reslab_img_s", "ratio", "reslab_no_instruments_img_s")
    keys += ("instrument_cost", "achieved_gflop_s", "fraction_of_peak", "fraction_of_matmul")
    return table_line([row[k] for k in keys])


def main(argv: list[str] | None = None, description: str = "") -> int:
    args = parser(description).parse_args(argv)
    for name, modes in MODE_OPTIONS.items():
        if getattr(args, name) not in (None, False) and args.mode not in modes:
            raise UserError(f"--{name.replace('_', '-')} belongs to --mode {' or '.join(modes)}")
    if args.mode == "schedule":
        return schedule.main(args)
    if args.mode == "share":
        return share.main(args)
    if args.run_dir is not None:
        raise UserError("--run-dir belongs to --mode schedule or share")
    return step_mode(args)


def step_mode(args: argparse.Namespace) -> int:
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name}={getattr(args, name)} must be at least 1")
    if args.warmup < 0:
        raise UserError(f"--warmup={args.warmup} must be 0 or more")
    for model in args.models:
        check_groups([f"model={model}"])
    for depth in args.depths:
        compose(args.models[0], depth, args)  # every depth valid, every override known, before any timing
        compose(args.models[0], depth, args, args.loop_overrides or ())
    print(f"machine: { ({**machine(), 'torch_threads': torch.get_num_threads()}) }")
    first = compose(args.models[0], args.depths[0], args)
    about, peak = schedule.device_header(first, args.fma_units, args.cpu_clock_ghz)
    accelerator = about["accelerator"]
    matmul = matmul_rate(peak.dtype, accelerator)
    print(" ".join(f"{title:>{width}}" for title, width, _ in COLUMNS))
    rows = []
    for depth in args.depths:
        for model in args.models:
            rows.append(measure(model, depth, args, peak, matmul))
            print(row_line(rows[-1]), flush=True)
    print(
        f"matmul: {matmul['n']}² {matmul['dtype']} product, best {matmul['best_gflop_s']:.1f} GFLOP/s "
        f"(median {matmul['median_gflop_s']:.1f}, {matmul['runs']} runs, {matmul['timer']}); "
        f"'of matmul' divides by the best"
    )
    beaten = peak.gflop_s is not None and matmul["best_gflop_s"] > peak.gflop_s
    if beaten:
        print(
            "note: the matmul beats the theoretical peak, so one of its factors is too low; where the clock is the "
            "current one, boost is the likely cause (give the real one with --cpu-clock-ghz)"
        )
    report = {
        "mode": "step",
        "machine": about,
        "peak": peak.as_dict(),
        "peak_gflop_s": peak.gflop_s,
        "matmul": matmul,
        "matmul_gflop_s": matmul["best_gflop_s"],
        "matmul_beats_peak": beaten,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "overrides": args.overrides,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0
