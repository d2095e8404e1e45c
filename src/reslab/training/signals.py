"""SIGTERM and SIGINT during training: stop after the step in progress, checkpoint, and say so.

reslab owns these signals while a job trains (Lightning's own SIGTERM handling is replaced for that time, and
its SLURM auto-requeue is not used): a scheduler's SIGTERM (preemption, a time limit) or a Ctrl+C makes the job
finish its current step, write ``last.ckpt`` atomically, and stop. The job then records status ``interrupted``
and exits with 128 + the signal's number, as shells do; rerunning the same command resumes exactly. A second
signal of the same kind while stopping ends the process at once.
"""

from __future__ import annotations

import signal
from pathlib import Path

import lightning as L

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(SystemExit):
    """A job stopped by a signal; a SystemExit, so that no launcher mistakes it for a failed job and goes on."""

    def __init__(self, signum: int, job_dir: Path):
        super().__init__(128 + signum)
        self.signum, self.job_dir = signum, Path(job_dir)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class StopOnSignal(L.Callback):
    """Takes SIGTERM and SIGINT for the duration of training; at the next step's end, checkpoints and stops."""

    def __init__(self, checkpoint_path: Path):
        self.checkpoint_path = Path(checkpoint_path)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signum:  # asked twice: stop now
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        self.signum = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning installed its own handlers at fit start: ours replace them until training ends.
        for signum in SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
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
