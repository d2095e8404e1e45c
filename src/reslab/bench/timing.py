"""Seconds per training step of reslab's path (Lightning) and of a plain PyTorch loop, on the same job.

Both use torch.utils.benchmark's clock, which synchronises the accelerator before reading the time. The plain
loop's step is a statement, so `torch.utils.benchmark.Timer` times it (threads, warm-up, synchronisation).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.utils import benchmark
from torch.utils.benchmark import timer as synced_clock

from reslab.bench.profiler import StepProfiler
from reslab.build import build_job, build_trainer, configured_callbacks
from reslab.training import DivergenceGuard, RunSummary
from reslab.training.accelerator import resolve_accelerator, resolve_precision
from reslab.training.net_layout import is_compiled


class StepTimer(L.Callback):
    """Wall time of training steps ``warmup``..max_steps, synchronised on the GPU.

    A callback, not a `benchmark.Timer`: Lightning's steps run inside one ``trainer.fit`` call, which cannot be
    split into a timed statement per step; the window opens and closes from Lightning's own hooks instead."""

    def __init__(self, warmup: int):
        self.warmup = warmup

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = synced_clock()

    def on_train_end(self, trainer, pl_module):
        self.seconds = synced_clock() - self.start


def time_reslab(cfg: DictConfig, with_instruments: bool, warmup: int, profile: Path | None = None) -> float:
    """Seconds per step of reslab's training path (Lightning, default callbacks, TensorBoard logging);
    with ``profile``, under ``torch.profiler``, its findings written there."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.runtime.precision, accelerator)
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
    batch, augmentation, precision, optimiser and schedule; no callbacks, no logging.

    ``warmup`` steps run untimed, then the Timer's own warm-up (a few more steps), then the timed
    ``max_steps - warmup`` steps: the schedule runs slightly past ``max_steps``, which costs the same."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    bf16 = resolve_precision(cfg.runtime.precision, accelerator) == "bf16-mixed"
    torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)  # as the Trainer sets it
    datamodule, system = build_job(cfg)
    net = system.net.to(device)
    compiled = is_compiled(net)
    configured = system.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    batches = _endless(lambda step: datamodule.train_batches(device, next_step=step))

    def step() -> None:
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

    for _ in range(warmup):
        step()
    timer = benchmark.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.timeit(cfg.trainer.max_steps - warmup).mean


def _endless(batches_from):
    """Batches across epoch ends, as Lightning re-iterates the loader: ``batches_from(step)`` starts at ``step``."""
    step = 0
    while True:
        for batch in batches_from(step):
            step += 1
            yield batch
