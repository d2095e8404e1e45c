"""The job's own Lightning callbacks: ``metrics.json`` (`RunSummary`), the divergence guard and progress lines.

`RunSummary` keeps ``metrics.json`` in the job directory, written at start, at the end and on failure, since the
report reads it for every outcome: ``running`` while training, ``finished``, ``diverged`` or ``failed`` with the
error line. Final training loss/error are the mean over the last ``train_window`` training batches (augmented
images, BN in train mode: the running training error the paper plots).

`DivergenceGuard` stops a run whose loss becomes NaN or inf: the losses stay on the device and every
``check_every_n_steps`` steps one copy to the host, read once it has arrived, finds the first non-finite one; the
job then records the run as ``diverged`` with that step and the last finite loss, and the sweep carries on.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import lightning as L
import torch

from reslab.files import write_json_atomic
from reslab.schema import check_choice
from reslab.training.ranks import is_rank_zero
from reslab.training.readback import Readback

log = logging.getLogger("reslab")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class RunSummary(L.Callback):
    """Keeps ``metrics.json`` up to date: static facts of the run plus the final metrics and status."""

    def __init__(self, path: Path, facts: dict, train_window: int = 50):
        self.path = Path(path)
        self.facts = dict(facts)
        self.train_window = train_window
        self._losses: deque = deque(maxlen=train_window)
        self._errors: deque = deque(maxlen=train_window)
        self._start = time.perf_counter()
        self._wall_before = 0.0  # wall time of earlier attempts of a resumed run
        self.record: dict = {}
        # The latest validation and test results; the trainer's callback_metrics forget val after a test.
        self.eval_metrics: dict = {k: None for k in ("val_loss", "val_error", "test_loss", "test_error")}
        self.last_val_step: int | None = None  # global step of the latest validation

    def write(self, status: str, trainer: L.Trainer | None = None, **extra: Any) -> dict:
        record = {
            **self.facts,
            "status": status,
            "steps": trainer.global_step if trainer is not None else 0,
            **self.train_metrics(),
            **self.eval_metrics,
            "wall_time_s": round(self._wall_before + time.perf_counter() - self._start, 2),
            **extra,
        }
        if is_rank_zero():  # with several processes, every one keeps the record; rank 0 writes it
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, record)
        self.record = record
        return record

    def train_metrics(self) -> dict:
        if not self._losses:
            return {"train_loss": None, "train_error": None}
        return {
            "train_loss": _number(torch.stack(list(self._losses)).mean()),
            "train_error": _number(torch.stack(list(self._errors)).mean()),
        }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write("running", trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Detached device scalars; no host sync per step.
        self._losses.append(outputs["batch_loss"].float())
        self._errors.append(outputs["error"].float())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep_eval(trainer, "val")
        self.last_val_step = trainer.global_step

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep_eval(trainer, "test")

    def _keep_eval(self, trainer: L.Trainer, stage: str) -> None:
        for name in ("loss", "error"):
            if (value := trainer.callback_metrics.get(f"{stage}/{name}")) is not None:
                self.eval_metrics[f"{stage}_{name}"] = _number(value)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.record.get("status", "running") == "running":  # the steps done so far, as often as checkpoints
            self.write("running", trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.write("failed", trainer, error=f"{type(exception).__name__}: {exception}".splitlines()[0])

    def state_dict(self) -> dict:
        return {
            "losses": list(self._losses),
            "errors": list(self._errors),
            "eval_metrics": self.eval_metrics,
            "last_val_step": self.last_val_step,
            "wall_time_s": self._wall_before + time.perf_counter() - self._start,
        }

    def load_state_dict(self, state: dict) -> None:
        self._losses.extend(state["losses"])
        self._errors.extend(state["errors"])
        self._wall_before = state["wall_time_s"]
        self.eval_metrics.update(state.get("eval_metrics", {}))
        self.last_val_step = state.get("last_val_step")


class DivergenceGuard(L.Callback):
    """Stops a run at the first NaN/inf training loss and keeps that step and the last finite loss.

    The losses stay on the device; every ``check_every_n_steps`` steps they start their way to the host as one
    `Readback`, which is read at the first step it has arrived (on a CPU, at once; on a GPU, typically a step or
    two later), so the guard never makes the host wait for the GPU. The step recorded is exact either way; on a
    GPU the run may take those few more steps before it stops.
    """

    def __init__(self, check_every_n_steps: int = 5):
        self.check_every_n_steps = check_every_n_steps
        self._losses: list[torch.Tensor] = []
        self._first_step = 0
        self._pending: list[tuple[int, Readback]] = []  # (step of the first loss, its copy on the way)
        self.last_finite_loss: float | None = None
        self.diverged_at_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._losses:
            self._first_step = trainer.global_step - 1  # the step whose loss this is
        self._losses.append(outputs["batch_loss"])
        if len(self._losses) >= self.check_every_n_steps:
            self._send()
        self.check()
        if self.diverged_at_step is not None:
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self.check(wait=True)

    def _send(self) -> None:
        if self._losses:
            self._pending.append((self._first_step, Readback(torch.stack(self._losses).float())))
            self._losses = []

    def check(self, wait: bool = False) -> None:
        """Read the copies that have arrived (with ``wait``: every loss so far), in order, up to the first
        non-finite loss."""
        if wait:
            self._send()
        while self._pending and self.diverged_at_step is None and (wait or self._pending[0][1].ready()):
            first, copy = self._pending.pop(0)
            for offset, loss in enumerate(copy.wait().tolist()):
                if not math.isfinite(loss):
                    self.diverged_at_step = first + offset
                    return
                self.last_finite_loss = loss

    def state_dict(self) -> dict:
        self.check(wait=True)  # a checkpoint keeps the last finite loss up to its own step
        return {"last_finite_loss": self.last_finite_loss}

    def load_state_dict(self, state: dict) -> None:
        self.last_finite_loss = state.get("last_finite_loss")


class ProgressLog(L.Callback):
    """One log line every ``every_percent`` of the run: step, loss, error, steps/s and the time left.

    For output that is not a terminal (a file, a cluster's job log), where a live bar would write thousands of
    carriage returns; in a terminal `wants_bar` picks Lightning's own bar instead. Reads the loss once per line,
    so it costs one host sync every few percent of the run.
    """

    def __init__(self, every_percent: float = 5.0, name: str = ""):
        self.every_percent = every_percent
        self.prefix = f"{name}: " if name else ""
        self._next = 0
        self._start: tuple[float, int] | None = None

    @staticmethod
    def wants_bar(mode: str) -> bool:
        """``runtime.progress``: bar, log, none, or auto (a bar when stdout is a terminal, else log lines)."""
        check_choice("runtime.progress", mode)
        return mode == "bar" or (mode == "auto" and sys.stdout.isatty())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)
        self._next = self._due_after(trainer.global_step, trainer.max_steps)

    def _due_after(self, step: int, total: int) -> int:
        every = max(1, round(total * self.every_percent / 100))
        return (step // every + 1) * every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        if step < self._next and step < total:
            return
        self._next = self._due_after(step, total)
        began, first = self._start
        rate = (step - first) / max(time.perf_counter() - began, 1e-9)
        left = (total - step) / rate if rate > 0 else float("nan")
        loss, error = float(outputs["batch_loss"]), float(outputs["error"])
        minutes, seconds = divmod(int(left), 60) if math.isfinite(left) else (0, 0)
        log.info(
            "%sstep %d/%d (%d%%)  loss %.4f  error %.4f  %.1f steps/s  ETA %d:%02d",
            self.prefix,
            step,
            total,
            100 * step // total,
            loss,
            error,
            rate,
            minutes,
            seconds,
        )
