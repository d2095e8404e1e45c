"""SIGTERM, SIGINT and the preemption signal during training: stop after the step in progress, checkpoint, say so.

Who owns which signal (one owner each, so nothing fights):

- reslab owns the *checkpoint*: while a job trains, SIGTERM (a scheduler stopping it), SIGINT (Ctrl+C) and
  submitit's preemption signal (SIGUSR2, or ``$SUBMITIT_PREEMPT_SIGNAL``) make the job finish its current step,
  write ``last.ckpt`` atomically, record status ``interrupted`` and stop. Rerunning the same job resumes exactly.
- the launcher owns the *requeue*: after that checkpoint, the handler that submitit installed for its preemption
  signal before training is called, whichever of the three signals stopped the job (on SLURM, SIGTERM is how
  ``scontrol requeue``, preemption and a grace time stop a job; submitit itself ignores it), and submitit requeues
  the job (``scontrol requeue`` on SLURM, a restart under ``submitit_local``); the requeued job resumes from
  ``last.ckpt``. Not when the user is stopping the whole sweep (`sweep_stopping`) or cancelled the job
  (`reslab.cli.hydra_app`). Without such a launcher the job exits with 128 + the signal's number, as shells do.
- the launching command owns the *sweep*: only a signal to the process that launched the sweep stops the sweep
  (`SweepStop`); a job that trains in that same process (the basic launcher) took over its signals, so its
  stop is the sweep's (`reslab.cli.hydra_app`). A signal to a job in any other process stops that job alone, and
  the sweep goes on.
- Lightning's own SLURM auto-requeue (SIGUSR1) is switched off (`reslab.build.build_trainer`), and its SIGTERM
  handler is replaced while training.

A second signal of the same kind while stopping (a second or more after the first) ends the process at once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

# The same signal again within this many seconds is the same request delivered twice (by the terminal and by
# the process that started this one), not a second request to stop at once.
REPEAT_S = 1.0
# submitit's variable naming its preemption/timeout signal (without "SIG"); USR2 by default.
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"


def preemption_signal() -> signal.Signals:
    """The signal a scheduler sends before preempting or timing out a job: submitit's (SIGUSR2 by default)."""
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")
    return getattr(signal, "SIG" + name, signal.SIGUSR2)


def stop_signals() -> tuple[signal.Signals, ...]:
    return (signal.SIGTERM, signal.SIGINT, preemption_signal())


class Interrupted(SystemExit):
    """A job stopped by a signal; a SystemExit, so that no launcher mistakes it for a failed job and goes on.

    ``requeue`` is the launcher's own handler of the preemption signal (submitit's), to be called once the
    checkpoint is written (`hand_over`) if the job is to be requeued."""

    def __init__(self, signum: int, job_dir: Path, requeue: Callable | None = None):
        super().__init__(128 + signum)
        self.signum, self.job_dir, self.requeue = signum, Path(job_dir), requeue

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def hand_over(self) -> None:
        """Let the launcher requeue the job (submitit: pickles the job, requeues it and exits the process)."""
        if self.requeue is not None:
            self.requeue(self.signum, None)


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


def launcher_requeue(handler: object) -> Callable | None:
    """The launcher's handler of the preemption signal, if it installed one (submitit does, in every job)."""
    return handler if callable(handler) and not isinstance(handler, SweepStop) else None


class SweepStop:
    """The launching command's handler of SIGTERM and SIGINT while its sweep runs: mark the sweep as stopping
    (no new job starts, a stopped job is not requeued; a cluster launcher signals its jobs on seeing the mark,
    `reslab.cli.launchers`) and pass the signal to the launcher's worker processes."""

    def __init__(self, sweep: Path):
        self.sweep = Path(sweep)

    def __call__(self, signum, frame) -> None:
        mark_stopping(self.sweep, signum)
        forward_to_children(signum)


# In a sweep directory: a stop signal arrived, so jobs that have not started yet are not started (whichever process
# runs them: joblib's workers share nothing else with the process that launched the sweep). Holds the signal's number.
STOP_MARKER = ".stopping"


def sweep_stopping(sweep: Path) -> int | None:
    """The signal that is stopping the sweep in ``sweep``, if one is."""
    try:
        return int((Path(sweep) / STOP_MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


def mark_stopping(sweep: Path, signum: int) -> None:
    from reslab.files import write_text_atomic

    if sweep_stopping(sweep) is None:
        write_text_atomic(Path(sweep) / STOP_MARKER, str(int(signum)))


def forward_to_children(signum: int) -> None:
    """Send ``signum`` to this process's child processes (a launcher's workers), not to the whole process group,
    which may hold the shell, make or a scheduler's wrapper. Linux (/proc); elsewhere nothing is forwarded."""
    me = os.getpid()
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return
    for name in entries:
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == me:
                os.kill(int(name), signum)
        except (OSError, ValueError, IndexError):
            continue
