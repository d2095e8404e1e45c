"""`StepProfiler`: where a training step's time goes, from ``torch.profiler`` over the benchmark's window."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.benchmark import timer as synced_clock


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
            self.profile = torch.profiler.profile(activities=activities)
            self.profile.__enter__()
            self.start = synced_clock()

    def on_train_end(self, trainer, pl_module):
        seconds = synced_clock() - self.start
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
