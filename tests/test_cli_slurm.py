"""What reslab makes of SLURM's words without a cluster: sbatch's refusals as one line with the setting to change,
and the CPUs a job may use. The real cluster's answers are tested in test_slurm_cluster.py."""

from __future__ import annotations

import os

import pytest

from reslab.cli.slurm import submission_error
from reslab.training.placement import threads_per_process, usable_cores

# sbatch's own words (SLURM 22.05), as the FailedJobError from submitit carries them.
REFUSALS = {
    "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification": "slurm_cpu",
    "sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid partition "
    "name specified": "hydra.launcher.partition",
    "sbatch: error: Batch job submission failed: Requested node configuration is not available": "cpus_per_task",
    "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: "
    "Memory required by task is not available": "mem_gb",
    "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)": (
        "timeout_min"
    ),
    "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified": (
        "hydra.launcher.account"
    ),
}


@pytest.mark.parametrize("stderr, setting", REFUSALS.items(), ids=[v for v in REFUSALS.values()])
def test_an_sbatch_refusal_is_one_line_naming_the_setting_to_change(stderr, setting):
    line = submission_error(stderr)
    assert "\n" not in line and line.startswith("SLURM refused the sweep's jobs: ")
    assert setting in line
    assert "sbatch: error" not in line and stderr.splitlines()[-1].split("failed: ")[-1] in line


def test_threads_follow_the_cpus_slurm_grants_where_it_does_not_bind_them(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert usable_cores() == cores and threads_per_process("auto") is None  # torch's own default
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")  # task/none: every core visible to a 1-CPU job
    assert usable_cores() == 1 and threads_per_process("auto") == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(cores + 8))  # never more than the process may use
    assert usable_cores() == cores
    assert threads_per_process(3) == 3  # an explicit number is the user's
