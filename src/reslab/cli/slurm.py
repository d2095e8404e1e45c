"""What reslab asks SLURM, through its own commands (squeue, scontrol, scancel, sinfo), and how it words SLURM's
answers for the user. Every call has a timeout and none raises: a cluster that does not answer is treated as
saying nothing, and the caller keeps waiting as submitit would.
"""

from __future__ import annotations

import os
import re
import subprocess

TIMEOUT_S = 30

# squeue's pending reasons that no amount of waiting clears: the request exceeds what the partition or the
# account may ever get (an administrator has to change the cluster). "Resources" and "Priority" clear by
# themselves, except for a request larger than any node, which `larger_than_any_node` catches.
NEVER_CLEARS = (
    "BadConstraints",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "PartitionConfig",
    "InvalidAccount",
    "InvalidQOS",
    "DependencyNeverSatisfied",
)


def _run(*cmd: str, unknown_job_is_empty: bool = False) -> str | None:
    """The command's output, or None if it failed; with ``unknown_job_is_empty``, SLURM's answer for a job id it no
    longer knows (purged ``MinJobAge`` after it ended) is an empty listing, not a failure."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 and unknown_job_is_empty and "Invalid job id" in proc.stderr:
        return ""
    return proc.stdout if proc.returncode == 0 else None


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job``'s fields of a job (JobState, Restarts, ...), from the controller; {} if it cannot tell."""
    out = _run("scontrol", "show", "job", "-o", job_id) or ""
    return dict(re.findall(r"\b(\w+)=(\S*)", out))


def this_job() -> dict[str, str]:
    """`job_fields` of the SLURM job this process runs in; {} outside SLURM."""
    job_id = os.environ.get("SLURM_JOB_ID")
    return job_fields(job_id) if job_id else {}


def this_job_cancelled() -> bool:
    """Whether the SLURM job this process runs in is being cancelled (``scancel``), as opposed to requeued or
    preempted, which also reach it as SIGTERM. While its processes are being signalled scontrol says COMPLETING
    either way; the accounting record already says CANCELLED (measured on SLURM 22.05). False outside SLURM."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False
    accounted = _run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State") or ""
    return accounted.strip().startswith("CANCELLED") or job_fields(job_id).get("JobState") == "CANCELLED"


def this_job_requeued() -> bool:
    """Whether SLURM is already requeueing the job this process runs in (``scontrol requeue``, preemption in
    REQUEUE mode): its restart count has gone up since this run of it started. False outside SLURM."""
    job = this_job()
    started_as = os.environ.get("SLURM_RESTART_COUNT", "0")
    restarts = job.get("Restarts", "")
    return restarts.isdigit() and started_as.isdigit() and int(restarts) > int(started_as)


def queue(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} of the jobs that squeue still lists (pending, running, requeued, completing);
    a job that ended is absent. Array tasks are listed one per line (``123_4``). None if squeue did not answer."""
    if not job_ids:
        return {}
    out = _run("squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r", unknown_job_is_empty=True)
    if out is None:
        return None
    listed = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            listed[parts[0]] = (parts[1], parts[2])
    return listed


def larger_than_any_node(job_id: str) -> str | None:
    """Why a pending job can never start on its partition's nodes (CPUs or memory per node beyond the largest
    node's), or None."""
    job = _run("scontrol", "show", "job", "-o", job_id) or ""
    partition = re.search(r"\bPartition=(\S+)", job)
    cpus = re.search(r"\bMinCPUsNode=(\d+)", job)
    memory = re.search(r"\bMinMemoryNode=(\d+)([KMGT]?)", job)
    if partition is None:
        return None
    nodes = _run("sinfo", "-h", "-p", partition.group(1), "-o", "%c|%m") or ""
    sizes = [tuple(int(x) for x in re.findall(r"\d+", line)[:2]) for line in nodes.splitlines() if "|" in line]
    sizes = [s for s in sizes if len(s) == 2]
    if not sizes:
        return None
    most_cpus, most_mb = max(s[0] for s in sizes), max(s[1] for s in sizes)
    if cpus and int(cpus.group(1)) > most_cpus:
        return (
            f"it asks for {cpus.group(1)} CPUs on one node and the largest node of partition {partition.group(1)} has "
            f"{most_cpus}: lower hydra.launcher.cpus_per_task"
        )
    if memory:
        mb = int(memory.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "": 1}[memory.group(2)]
        if mb > most_mb:
            return (
                f"it asks for {mb / 1024:.0f} GB on one node and the largest node of partition {partition.group(1)} "
                f"has {most_mb / 1024:.0f} GB: lower hydra.launcher.mem_gb"
            )
    return None


def cancel(job_ids: list[str], signal: str | None = None, state: str | None = None) -> None:
    """scancel the jobs; with ``signal``, only send it to their running steps (they checkpoint and end);
    with ``state``, only those in that state (PENDING)."""
    if job_ids:
        _run("scancel", *([f"--signal={signal}"] if signal else []), *([f"--state={state}"] if state else []), *job_ids)


# sbatch's refusal, matched on its own words (the first match wins), and the setting that changes it.
SUBMISSION_FIXES = (
    ("account", "set your account: hydra.launcher.account=<account> (sacctmgr show assoc user=$USER)"),
    ("qos", "set a QOS you may use: hydra.launcher.qos=<qos>"),
    ("gres", "a GPU request where the partition has none: use hydra/launcher=slurm_cpu (or set gpus_per_node)"),
    ("invalid partition", "choose a partition the cluster has (sinfo): hydra.launcher.partition=<name>"),
    ("partition", "check hydra.launcher.partition against the cluster's partitions (sinfo)"),
    ("memory", "ask for less memory: hydra.launcher.mem_gb"),
    (
        "node configuration",
        "ask for fewer CPUs, GPUs or less memory per job: hydra.launcher.cpus_per_task, gpus_per_node, mem_gb",
    ),
    ("time limit", "ask for less time per job: hydra.launcher.timeout_min (a job is requeued when it runs out)"),
)


def submission_error(stderr: str) -> str:
    """sbatch's refusal as one line: what SLURM said and which setting to change."""
    said = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in said if "error" in line.lower()] or said or ["no reason given"]
    line = re.sub(r"^sbatch: error:\s*", "", errors[-1])
    line = re.sub(r"^Batch job submission failed:\s*", "", line)
    fixes = (fix for word, fix in SUBMISSION_FIXES if word in line.lower())
    fix = next(fixes, "see the launcher's settings with: reslab --cfg hydra -p hydra.launcher")
    return f"SLURM refused the sweep's jobs: {line}; {fix}"
