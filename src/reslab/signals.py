"""SIGTERM, SIGINT and the preemption signal: which signals stop a job, who owns each, and the sweep's stop marker.
No torch or Lightning here: the process that launches a sweep imports this and nothing that trains.

Who owns which signal (one owner each, so nothing fights):

- reslab owns the *checkpoint*: while a job trains, SIGTERM (a scheduler stopping it), SIGINT (Ctrl+C) and
  submitit's preemption signal (SIGUSR2, or ``$SUBMITIT_PREEMPT_SIGNAL``) make the job finish its current step,
  write ``last.ckpt`` atomically (`reslab.training.stop_on_signal`), record status ``interrupted`` and stop.
  Rerunning the same job resumes exactly.
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

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

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


@contextlib.contextmanager
def stop_outside_training(job_dir: Path):
    """In a job's own process (a launcher's worker, a cluster job): a stop signal that arrives while the job sets up
    or ends, outside `StopOnSignal`'s watch, stops the job with `Interrupted` (nothing to checkpoint yet) instead of
    killing the process with the signal's default action, which under joblib made loky kill the other workers too
    (found by tools/chaos.py). Only signals left at their default: a launcher's own handler (submitit's preemption
    handler) stays, and `StopOnSignal` reads it as the requeue."""

    def stop(signum, frame):
        raise Interrupted(signum, job_dir)

    stop.reslab_own = True  # not a launcher's requeue handler (`launcher_requeue`)

    previous = {}
    for signum in stop_signals():
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def launcher_requeue(handler: object) -> Callable | None:
    """The launcher's handler of the preemption signal, if it installed one (submitit does, in every job)."""
    ours = isinstance(handler, SweepStop) or getattr(handler, "reslab_own", False)
    return handler if callable(handler) and not ours else None


class SweepStop:
    """The launching command's handler of SIGTERM and SIGINT while its sweep runs: mark the sweep as stopping
    (no new job starts, a stopped job is not requeued; a cluster launcher signals its jobs on seeing the mark,
    `reslab.cli.launchers`) and pass the signal to the launcher's worker processes."""

    def __init__(self, sweep: Path):
        self.sweep = Path(sweep)

    def __call__(self, signum, frame) -> None:
        mark_stopping(self.sweep, signum)
        forward_to_children(signum, training=job_processes(self.sweep))


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


def job_processes(sweep: Path) -> set[int]:
    """The processes training a job of the sweep now: the pid in each job's lock that a process holds."""
    from reslab.files import is_locked

    pids = set()
    for lock in Path(sweep).glob("*/.lock"):
        try:
            if is_locked(lock.parent):
                pids.add(int(lock.read_text().split()[1]))  # "pid N on HOST"
        except (OSError, ValueError, IndexError):
            continue
    return pids


def forward_to_children(signum: int, training: set[int] = frozenset()) -> None:
    """Send ``signum`` to this process's child processes (a launcher's workers), not to the whole process group,
    which may hold the shell, make or a scheduler's wrapper. Not to an idle worker of joblib's loky pool (none of
    ``training``): it has no handler, would die, and loky would then SIGKILL the workers still checkpointing (found
    by tools/chaos.py); it starts no new job once the sweep is marked stopping. Linux (/proc); elsewhere nothing is
    forwarded."""
    me = os.getpid()
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return
    for name in entries:
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            if int(name) not in training:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if b"loky" in f.read():
                        continue
            os.kill(int(name), signum)
        except (OSError, ValueError, IndexError):
            continue
