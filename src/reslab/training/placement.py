"""The share of the machine a job gets: its GPU among several, and its CPU threads among the jobs a launcher runs at
once. How many jobs run at once, and which one this is, come from the job's config (``launch``), which the command
line sets from the launcher's state: nothing here reads Hydra."""

from __future__ import annotations

import os

import torch

from reslab.schema import check_threads


def gpu_for_job(job: int, concurrent: int, visible: int) -> int:
    """The GPU a one-device job trains on. Where a launcher runs several jobs at once on a machine with several
    GPUs, job k takes GPU k mod the GPUs visible, so the jobs spread over them instead of all sharing the first
    (round robin by job number: a long job can share its GPU while another is idle); else GPU 0. A cluster
    launcher gives each job its own GPU, which it sees as the only one."""
    return job % visible if concurrent > 1 and visible > 1 else 0


def threads_per_process(setting: object, processes: int = 1, concurrent_jobs: int = 1) -> int | None:
    """torch's CPU threads for each process of a job; None: torch's default. ``auto``: the cores this process may
    use, shared among the ``concurrent_jobs`` the launcher runs at once on this machine and the run's own
    ``processes`` (None when neither shares them); a number: that many."""
    check_threads(setting)
    if setting == "auto":
        share, cores = concurrent_jobs * processes, usable_cores()
        return max(1, cores // share) if share > 1 or cores < len(os.sched_getaffinity(0)) else None
    return int(setting)


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, and no more than SLURM granted the job's task (a cluster
    without CPU binding, ``TaskPlugin=task/none``, leaves every core visible to a 1-CPU job)."""
    cores = len(os.sched_getaffinity(0))
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cores, int(granted)) if granted.isdigit() and int(granted) > 0 else cores


def set_threads(threads: int | None) -> None:
    """Set in the job itself: joblib reuses its worker processes, so an environment variable read once at import
    would not follow a change of ``n_jobs``."""
    if threads is not None:
        torch.set_num_threads(threads)
