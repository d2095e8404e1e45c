"""The job's side of a stop signal: while training, SIGTERM, SIGINT and the preemption signal make the job finish
the step in progress, checkpoint and stop (who owns which signal: `reslab.signals`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from reslab.signals import REPEAT_S, launcher_requeue, preemption_signal, stop_signals


class StopOnSignal(L.Callback):
    """Takes SIGTERM and SIGINT for the duration of training; at the next step's end, checkpoints and stops."""

    def __init__(self, checkpoint_path: Path):
        self.checkpoint_path = Path(checkpoint_path)
        self.signum: int | None = None
        self.requeue: Callable | None = None  # the launcher's handler of the preemption signal, if any
        self._previous: dict[int, object] = {}
        self._since = 0.0

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.signum == signum and now - self._since > REPEAT_S:  # asked twice: stop now
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        if self.signum is None:
            self.signum, self._since = signum, now

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning installed its own handlers at fit start: ours replace them until training ends.
        for signum in stop_signals():
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)
        self.requeue = launcher_requeue(self._previous.get(preemption_signal()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.world_size > 1:  # every process stops at the same step: agree on it (one scalar per step)
            agreed = trainer.strategy.reduce(torch.tensor(self.signum or 0, device=pl_module.device), reduce_op="max")
            self.signum = int(agreed) or None
        if self.signum is not None and not trainer.should_stop:
            trainer.save_checkpoint(self.checkpoint_path)
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
