"""Throughput benchmark: reslab's Lightning training path against a hand-written PyTorch loop.

    python -m reslab.bench [--depths 20 56 110] [--steps 12] [--warmup 3] [--out bench.json] [key=value ...]

Config overrides (``key=value``) go before ``--depths``/``--models``/``--paths`` or after ``--``: those options
take several values and would read an override that follows them as one of theirs.

Both paths train the same net on the same data (the config's dataset, batch 128, augmentation) with the same
precision, memory layout, compilation, optimiser and schedule, in the same process, after ``--warmup``
untimed steps (compilation and CUDA-graph capture happen there). reslab's path is timed with the default
callbacks and logging on, and again with the instruments off, to give their overhead; the instruments fire
every N steps, so the timed window must cover their periods (``--steps 300`` at the defaults) for that
overhead to include all of them. Each path is timed ``--repeats`` times in rotating order and the median is
reported. The machine's peak is measured, not looked up: the best rate of a large matrix product in the
training precision. Prints a table and writes JSON with the machine's description. Not a test: timings vary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from reslab.config import compose_config
from reslab.job import build_job, build_trainer, configured_callbacks
from reslab.models import weight_layers
from reslab.training import DivergenceGuard, RunSummary
from reslab.training.device import compile_mode, is_compiled, resolve_accelerator, resolve_precision

DEFAULT_WARMUP = 3


def macs_per_image(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass (conv and linear layers), counted with hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight[0].numel()  # in_ch/groups * kh * kw
            total += output[0].numel() * k
        else:
            total += module.weight.numel()

    hooks = [m.register_forward_hook(hook) for _, m in weight_layers(net)]
    device = next(net.parameters()).device
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        net.eval()(torch.zeros(1, *shape, device=device))
    net.train()
    for h in hooks:
        h.remove()
    return total


class StepTimer(L.Callback):
    """Wall time of training steps ``warmup``..max_steps, synchronised on the GPU."""

    def __init__(self, warmup: int):
        self.warmup = warmup

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            _sync()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        _sync()
        self.seconds = time.perf_counter() - self.start


class StepProfiler(L.Callback):
    """``torch.profiler`` over training steps ``warmup``..max_steps; writes where the time went to ``path``:
    the time per step, the device's busy time per step and the most expensive operators on the host and
    on the device. A diagnosis, run apart from the timings (the profiler slows the host side down).

    A callback rather than Lightning's ``PyTorchProfiler``: this one opens exactly at the benchmark's timed
    window (after the warm-up steps, where compilation and CUDA-graph capture happen) and reports the
    per-step figures the benchmark compares against; the tables themselves are torch.profiler's own."""

    def __init__(self, warmup: int, path: Path):
        self.warmup, self.path = warmup, Path(path)
        self.profile = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.profile is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            _sync()
            self.profile = torch.profiler.profile(activities=activities)
            self.profile.__enter__()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        _sync()
        seconds = time.perf_counter() - self.start
        self.profile.__exit__(None, None, None)
        steps = trainer.global_step - self.warmup
        table = self.profile.key_averages()
        lines = [f"{1000 * seconds / steps:.3f} ms per step under the profiler, {steps} steps"]
        if torch.cuda.is_available():
            # The kernels' own time, as the table's footer counts it: device events, not the host-side ranges
            # (operators, user annotations such as Optimizer.step) that also carry device time.
            kernels = [e for e in table if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation]
            busy = sum(e.self_device_time_total for e in kernels) / 1000 / steps  # microseconds -> ms
            lines.append(f"device busy {busy:.3f} ms per step (sum of the kernels' time)")
            lines.append(table.table(sort_by="self_device_time_total", row_limit=25))
        lines.append(table.table(sort_by="self_cpu_time_total", row_limit=25))
        self.path.write_text("\n".join(lines) + "\n")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_reslab(cfg: DictConfig, with_instruments: bool, warmup: int, profile: Path | None = None) -> float:
    """Seconds per step of reslab's training path (Lightning, default callbacks, TensorBoard logging);
    with ``profile``, under ``torch.profiler``, its findings written there."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.trainer.precision, accelerator)
    datamodule, system = build_job(cfg)
    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer(warmup)
        summary = RunSummary(Path(out) / "metrics.json", {}, cfg.callbacks.summary.train_window)
        configured = configured_callbacks(cfg)
        if not with_instruments:
            configured = [c for c in configured if isinstance(c, DivergenceGuard)]
        callbacks = [timer, summary, *configured]
        if profile is not None:
            callbacks.append(StepProfiler(warmup, profile))
        trainer = build_trainer(cfg, Path(out), accelerator, precision, callbacks)
        trainer.fit(system, datamodule=datamodule)
    return timer.seconds / (cfg.trainer.max_steps - warmup)


def time_plain_loop(cfg: DictConfig, warmup: int) -> float:
    """Seconds per step of the simplest honest loop: same net (layout, compilation), data on the same device,
    batch, augmentation, precision, optimiser and schedule; no callbacks, no logging."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    bf16 = resolve_precision(cfg.trainer.precision, accelerator) == "bf16-mixed"
    torch.backends.cudnn.benchmark = bool(cfg.trainer.cudnn_benchmark)  # as the Trainer sets it
    datamodule, system = build_job(cfg)
    net = system.net.to(device)
    compiled = is_compiled(net)
    configured = system.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    batches = _endless(lambda step: datamodule.train_batches(device, next_step=step))
    start = 0.0
    for step in range(cfg.trainer.max_steps):
        if step == warmup:
            _sync()
            start = time.perf_counter()
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()
        x, y = next(batches)
        x = datamodule.normalize(datamodule.augment(x))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    _sync()
    return (time.perf_counter() - start) / (cfg.trainer.max_steps - warmup)


def _endless(batches_from):
    """Batches across epoch ends, as Lightning re-iterates the loader: ``batches_from(step)`` starts at ``step``."""
    step = 0
    while True:
        for batch in batches_from(step):
            step += 1
            yield batch


def peak_gflop_s(precision: str, accelerator: str) -> float:
    """The machine's practical peak: the best of a few large square matrix products, in the training dtype."""
    device = "cuda" if accelerator == "gpu" else "cpu"
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    n = 8192 if device == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))  # random: zeros run faster
    per_timing = 3 if device == "cuda" else 1
    times: list[float] = []
    # Five timings, or fewer once 10 s are spent: an emulated dtype (bf16 on a CPU without it) takes about a
    # minute per product, and one is enough to show it.
    while len(times) < 5 and sum(times) * per_timing <= 10.0:
        _sync()
        start = time.perf_counter()
        for _ in range(per_timing):
            a @ b
        _sync()
        times.append((time.perf_counter() - start) / per_timing)
    best = min(times)
    return 2 * n**3 / best / 1e9


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "cpu": cpu,
        "cores": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


PATHS = ("loop", "full", "bare")  # the plain loop; reslab with its default callbacks; reslab without instruments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reslab.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--models", nargs="+", default=["plain", "residual"])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per timing")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=3, help="timings per path; the median is reported")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS,
        default=list(PATHS),
        help="loop: plain PyTorch; full: reslab, default callbacks; bare: reslab, instruments off",
    )
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run reslab's full path once under torch.profiler; write DIR/<model>-<depth>.txt",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. trainer.precision=32")
    args = parser.parse_args(argv)
    about = machine()
    print(f"machine: {about}")
    rows, peak = [], None
    print(
        f"{'model':>9} {'depth':>5} {'plain loop img/s':>17} {'reslab img/s':>13} {'ratio':>6} "
        f"{'no-instr img/s':>15} {'instr cost':>10} {'GFLOP/s':>9} {'of peak':>7}"
    )
    for depth in args.depths:
        for model in args.models:
            cfg = compose_config(
                [
                    f"model={model}",
                    f"depth={depth}",
                    f"trainer.max_steps={args.steps + args.warmup}",
                    "trainer.val_every_n_steps=1000000",
                    "trainer.limit_val_batches=0",
                    "callbacks.checkpoint.every_n_steps=1000000",
                    *args.overrides,
                ],
                output_dir=tempfile.mkdtemp(),
            )
            accelerator = resolve_accelerator(cfg.trainer.accelerator)
            precision = resolve_precision(cfg.trainer.precision, accelerator)
            if peak is None:
                peak = peak_gflop_s(precision, accelerator)
            batch = cfg.dataset.batch_size
            timers = {
                "loop": lambda: time_plain_loop(cfg, args.warmup),
                "full": lambda: time_reslab(cfg, True, args.warmup),
                "bare": lambda: time_reslab(cfg, False, args.warmup),
            }
            # Each path timed `repeats` times, the order rotated so no path always runs first; medians.
            seconds = {name: [] for name in args.paths}
            for r in range(args.repeats):
                k = r % len(args.paths)
                for name in args.paths[k:] + args.paths[:k]:
                    seconds[name].append(timers[name]())
            rate = {name: batch / statistics.median(times) for name, times in seconds.items()}
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                time_reslab(cfg, True, args.warmup, profile=args.profile / f"{model}-{depth}.txt")
            datamodule, system = build_job(cfg)
            macs = macs_per_image(system.net, tuple(datamodule.train[0].shape[1:]))
            # forward 2 FLOPs per MAC, backward about twice the forward
            flops = 6 * macs * rate.get("full", rate.get("bare", rate.get("loop")))
            row = {
                "model": model,
                "depth": depth,
                "batch": batch,
                "precision": precision,
                "channels_last": cfg.trainer.channels_last,
                "compile": compile_mode(cfg.trainer.compile),
                "loop_img_s": rate.get("loop"),
                "reslab_img_s": rate.get("full"),
                "reslab_no_instruments_img_s": rate.get("bare"),
                "ratio": rate["full"] / rate["loop"] if {"full", "loop"} <= rate.keys() else None,
                "instrument_cost": 1 - rate["full"] / rate["bare"] if {"full", "bare"} <= rate.keys() else None,
                "seconds_per_step": {name: times for name, times in seconds.items()},
                "macs_per_image": macs,
                "achieved_gflop_s": flops / 1e9,
                "fraction_of_peak": flops / 1e9 / peak,
            }
            rows.append(row)
            print(
                f"{model:>9} {depth:>5} {_fmt(row['loop_img_s'], 17, '.1f')} {_fmt(row['reslab_img_s'], 13, '.1f')} "
                f"{_fmt(row['ratio'], 6, '.3f')} {_fmt(row['reslab_no_instruments_img_s'], 15, '.1f')} "
                f"{_fmt(row['instrument_cost'] and 100 * row['instrument_cost'], 9, '.1f')}{'%' if row['instrument_cost'] is not None else ' '} "
                f"{flops / 1e9:9.1f} {100 * row['fraction_of_peak']:6.1f}%",
                flush=True,
            )
    print(f"peak (best large matrix product, {rows[0]['precision'] if rows else '-'}): {peak:.1f} GFLOP/s")
    report = {
        "machine": about,
        "peak_gflop_s": peak,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "overrides": args.overrides,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _fmt(value: float | None, width: int, spec: str) -> str:
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
