"""``reslab bench``'s step mode: a training step of reslab against a plain PyTorch loop, over nets and paths, with
the table and the JSON report (the command line: `reslab.cli.bench`)."""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from collections.abc import Sequence

import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from reslab.bench import whole_job
from reslab.bench.flops import TRAIN_FLOP_PER_MAC, macs_per_image
from reslab.bench.matmul import matmul_rate
from reslab.bench.peak import Peak
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
    about, peak = whole_job.device_header(first, args.fma_units, args.cpu_clock_ghz)
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
