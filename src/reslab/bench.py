"""Throughput benchmark: reslab's Lightning training path against a hand-written PyTorch loop.

    python -m reslab.bench [--depths 20 56 110] [--steps 12] [--out bench.json] [key=value ...]

Both paths train the same net on the same data (the default config's dataset, batch 128, augmentation) with
the same precision, optimiser and schedule, in the same process, after 3 warm-up steps. reslab's path is
timed with the default callbacks and logging on, and again with the instruments off, to give their
overhead. Each path is timed ``--repeats`` times in rotating order and the median is reported. Prints a
table and writes JSON with the machine's description. Not a test: timings vary.
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
from reslab.guard import DivergenceGuard
from reslab.nets import weight_layers
from reslab.precision import resolve_accelerator, resolve_precision
from reslab.summary import RunSummary
from reslab.train import build_job, build_trainer, instruments

WARMUP = 3


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
    with torch.no_grad():
        net.eval()(torch.zeros(1, *shape))
    net.train()
    for h in hooks:
        h.remove()
    return total


class StepTimer(L.Callback):
    """Wall time of training steps WARMUP..max_steps, synchronised on the GPU."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == WARMUP:
            _sync()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        _sync()
        self.seconds = time.perf_counter() - self.start


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_reslab(cfg: DictConfig, with_instruments: bool) -> float:
    """Seconds per step of reslab's training path (Lightning, default callbacks, TensorBoard logging)."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.trainer.precision, accelerator)
    datamodule, system = build_job(cfg)
    with tempfile.TemporaryDirectory() as out:
        timer = StepTimer()
        summary = RunSummary(Path(out) / "metrics.json", {}, cfg.callbacks.summary.train_window)
        guard = DivergenceGuard(cfg.callbacks.divergence.check_every_n_steps)
        callbacks = [timer, summary, guard, *(instruments(cfg.callbacks, Path(out)) if with_instruments else [])]
        trainer = build_trainer(cfg, Path(out), accelerator, precision, callbacks)
        trainer.fit(system, datamodule=datamodule)
    return timer.seconds / (cfg.trainer.max_steps - WARMUP)


def time_plain_loop(cfg: DictConfig) -> float:
    """Seconds per step of the simplest honest loop: same net, data, batch, precision, optimiser, schedule."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    bf16 = resolve_precision(cfg.trainer.precision, accelerator) == "bf16-mixed"
    datamodule, system = build_job(cfg)
    net = system.net.to(device)
    configured = system.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    batches = iter(datamodule.train_dataloader())
    start = 0.0
    for step in range(cfg.trainer.max_steps):
        if step == WARMUP:
            _sync()
            start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = datamodule.normalize(datamodule.augment(x))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    _sync()
    return (time.perf_counter() - start) / (cfg.trainer.max_steps - WARMUP)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reslab.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--models", nargs="+", default=["plain", "residual"])
    parser.add_argument("--steps", type=int, default=12, help="timed steps (after %d warm-up steps)" % WARMUP)
    parser.add_argument("--repeats", type=int, default=3, help="timings per path; the median is reported")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. trainer.precision=32")
    args = parser.parse_args(argv)
    rows = []
    print(f"machine: {machine()}")
    print(f"{'model':>9} {'depth':>5} {'plain loop img/s':>17} {'reslab img/s':>13} {'ratio':>6} "
          f"{'no-instr img/s':>15} {'instr cost':>10} {'GFLOP/s':>8}")
    for depth in args.depths:
        for model in args.models:
            cfg = compose_config([f"model={model}", f"depth={depth}", f"trainer.max_steps={args.steps + WARMUP}",
                           "trainer.val_every_n_steps=1000000", "trainer.limit_val_batches=0",
                           "callbacks.checkpoint.every_n_steps=1000000", *args.overrides],
                                 output_dir=tempfile.mkdtemp())
            batch = cfg.dataset.batch_size
            # Each path timed `repeats` times, the order rotated so no path always runs first; medians.
            paths = {"loop": lambda: time_plain_loop(cfg), "full": lambda: time_reslab(cfg, True),
                     "bare": lambda: time_reslab(cfg, False)}
            seconds = {name: [] for name in paths}
            for r in range(args.repeats):
                names = list(paths)[r % 3:] + list(paths)[:r % 3]
                for name in names:
                    seconds[name].append(paths[name]())
            loop, full, bare = (batch / statistics.median(seconds[n]) for n in ("loop", "full", "bare"))
            datamodule, system = build_job(cfg)
            macs = macs_per_image(system.net, tuple(datamodule.train[0].shape[1:]))
            flops = 6 * macs * full  # forward 2 FLOPs per MAC, backward about twice the forward
            row = {"model": model, "depth": depth, "batch": batch, "loop_img_s": loop, "reslab_img_s": full,
                   "ratio": full / loop, "reslab_no_instruments_img_s": bare, "instrument_cost": 1 - full / bare,
                   "macs_per_image": macs, "achieved_gflop_s": flops / 1e9,
                   "precision": resolve_precision(cfg.trainer.precision, resolve_accelerator(cfg.trainer.accelerator))}
            rows.append(row)
            print(f"{model:>9} {depth:>5} {loop:17.1f} {full:13.1f} {row['ratio']:6.3f} {bare:15.1f} "
                  f"{100 * row['instrument_cost']:9.1f}% {flops / 1e9:8.1f}")
    report = {"machine": machine(), "steps": args.steps, "repeats": args.repeats, "overrides": args.overrides,
              "rows": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
