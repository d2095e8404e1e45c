"""One run on several devices: reslab starts one process per device (a *rank*) from the job's own config.

Why not one of Lightning's launchers: its ``ddp`` strategy re-runs the command line (``sys.argv``) in each child,
which under Hydra's multirun starts a new sweep in every child, and under the joblib and submitit launchers is
not reslab's command at all; ``ddp_spawn`` hands only rank 0's weights back and spawns again for validation and
test, so the job's own callbacks (its record, guards, signals) would not see the run. Here every rank runs the
whole job, as ``torchrun`` would start it, and Lightning's ``ddp`` strategy finds the ranks already started
(`LightningEnvironment` reads ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``).

What each rank does (the rest of reslab is written for it):

- every batch of ``dataset.batch_size`` is split into equal parts, one per rank (`StepShuffledBatches`), and the
  augmentation of the whole batch is drawn on every rank (`random_crop`), so the global batch is the
  single-device one; BN statistics are over the global batch (``trainer.sync_batchnorm``);
- the loss and error everyone reads (logs, ``metrics.json``, the divergence guard, the warm-up) are the whole
  batch's (`Classifier.training_step`), so every rank decides the same; a stop signal is agreed on every step;
- validation and test run on every rank over the whole split (so no reduction can be uneven);
- only rank 0 writes files; the instruments (gradient norms, responses) run on rank 0 only: the gradients they
  read are already averaged over the ranks, and the weights are the same on every rank.

The parent process holds the job directory's lock, forwards stop signals to the ranks, and stops the others if
one of them fails (a rank waiting in a collective operation would otherwise wait forever).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

from reslab.errors import UserError
from reslab.signals import Interrupted, launcher_requeue, preemption_signal, stop_signals

log = logging.getLogger("reslab")

RANK_ENV = "RESLAB_RANK"  # set in the ranks reslab starts: this process is rank N of a run


def rank() -> int:
    """This process's rank in a run reslab started on several devices; 0 otherwise."""
    return int(os.environ.get(RANK_ENV, "0"))


def is_rank_zero() -> bool:
    return rank() == 0


def in_a_rank() -> bool:
    return RANK_ENV in os.environ


def check_not_launched_externally(devices: int) -> None:
    """reslab starts the ranks itself; a job started several times by torchrun or srun would train each copy
    into the same directory."""
    tasks = int(os.environ.get("SLURM_NTASKS", "1") or 1) if "SLURM_JOB_ID" in os.environ else 1
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if not in_a_rank() and (tasks > 1 or world > 1):
        raise UserError(
            f"this job was started as {max(tasks, world)} processes (SLURM tasks or torchrun), but reslab starts "
            f"one process per device itself: run one task per job (hydra.launcher.tasks_per_node=1, no torchrun) "
            f"and set trainer.devices={max(devices, tasks, world)}"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the parent dies, so no rank outlives a killed job (and its lock)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _rank_main(rank: int, world_size: int, port: int, job: Callable[[], dict], log_file: str, results) -> None:
    _die_with_parent()
    os.environ.update(
        {
            RANK_ENV: str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(world_size),
            "NODE_RANK": "0",
            "LOCAL_RANK": str(rank),
            "RANK": str(rank),
        }
    )
    _log_like_the_parent(log_file, rank)
    try:
        job()
        results.put((rank, "ok", None))
    except Interrupted as e:
        results.put((rank, "interrupted", e.signum))
        raise
    except UserError as e:
        results.put((rank, "user_error", str(e)))
        sys.exit(2)
    except BaseException as e:
        results.put((rank, "error", f"{type(e).__name__}: {e}".splitlines()[0] + "\n" + traceback.format_exc()))
        sys.exit(1)


def _log_like_the_parent(log_file: str, rank: int) -> None:
    """Rank 0 logs to the console and the job's log file as the parent does; the others only errors."""
    from reslab.console import quiet_console

    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file and rank == 0:
        handlers.append(logging.FileHandler(log_file))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    quiet_console()


def run_ranks(job: Callable[[], dict], world_size: int, job_dir: Path, log_file: str = "") -> None:
    """Run ``job`` (picklable: it is sent to new processes) as ranks 0..world_size-1; return when all ended.

    Raises `Interrupted` if a stop signal ended them (with the launcher's requeue handler, as one rank would),
    `UserError` with a rank's one-line error, or `RuntimeError` with a failed rank's traceback."""
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA or threads
    results = ctx.SimpleQueue()
    port = _free_port()
    procs = [
        ctx.Process(target=_rank_main, args=(r, world_size, port, job, log_file, results), name=f"reslab-rank{r}")
        for r in range(world_size)
    ]
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    previous = {s: signal.getsignal(s) for s in stop_signals()}
    for s in previous:
        signal.signal(s, forward)
    try:
        with _spawn_as_start_method():
            for p in procs:
                p.start()
        _wait_all_or_stop_on_failure(procs)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    outcomes = {}
    while not results.empty():
        r, kind, payload = results.get()
        outcomes[r] = (kind, payload)
    for r in range(world_size):
        kind, payload = outcomes.get(r, ("died", None))
        if kind == "user_error":
            raise UserError(payload)
        if kind == "error":
            line, _, tb = payload.partition("\n")
            raise RuntimeError(f"rank {r} of {world_size} failed: {line}\n{tb}")
    if received or any(kind == "interrupted" for kind, _ in outcomes.values()):
        signum = received[0] if received else next(p for k, p in outcomes.values() if k == "interrupted")
        raise Interrupted(signum, job_dir, requeue=launcher_requeue(previous.get(preemption_signal())))
    if dead := [r for r in range(world_size) if r not in outcomes]:
        codes = ", ".join(f"rank {r}: exit code {procs[r].exitcode}" for r in dead)
        raise RuntimeError(f"{len(dead)} of {world_size} ranks died without a word ({codes})")


@contextlib.contextmanager
def _spawn_as_start_method():
    """A new process takes its parent's global start method; in a joblib (loky) worker that is ``loky``, which a
    fresh interpreter cannot set up before loky is imported. The ranks are told ``spawn`` instead."""
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(before, force=True)


def _wait_all_or_stop_on_failure(procs: list) -> None:
    """Wait for every rank; if one ends badly, the others are stopped (they would wait for it forever)."""
    running = list(procs)
    while running:
        for sentinel in wait([p.sentinel for p in running]):
            p = next(p for p in running if p.sentinel == sentinel)
            p.join()
            running.remove(p)
            if p.exitcode not in (0, None) and not _stopping_together(p.exitcode):
                for other in running:
                    other.kill()
                    other.join()
                running = []
                break


def _stopping_together(exitcode: int) -> bool:
    """A rank that exits with 128 + a stop signal stopped at the step all ranks agreed on; the others follow."""
    return exitcode - 128 in [int(s) for s in stop_signals()]
