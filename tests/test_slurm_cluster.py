"""reslab on a real SLURM 22.05 cluster: the scheduler's own daemons (slurmctld, slurmd, slurmdbd with MariaDB,
munge), started on loopback by tools/slurm_cluster.sh for this module and stopped after it. Each way SLURM stops a
job ends, after the user's one rerun where one is needed, with the same final metrics as an uninterrupted run.

Needs root and Debian's packages (the script installs them); skipped with the reason where they cannot be had.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, TINY, wait_for

# make test-slow runs this module alone, after the rest; the timeouts below leave room for a busy machine all the same
# (run beside the other tests, it passed in 1436 s against 746 s alone: experiments/test_tiers/).
pytestmark = pytest.mark.slow

SCRIPT = ROOT / "tools" / "slurm_cluster.sh"
# A run of ~15 s that checkpoints every 5 steps: long enough to be stopped mid-run, short enough for the suite.
ARGS = [
    *TINY,
    "model=plain",
    "trainer.max_steps=300",
    "callbacks.checkpoint.every_n_train_steps=5",
    "callbacks.grad_norms.figure_every_n_steps=0",
    "callbacks.responses.figure_every_n_steps=0",
]
ON_CLUSTER = ["hydra/launcher=slurm_cpu", "hydra.launcher.partition=debug"]  # the CPU preset, only the partition
FINAL_KEYS = ("steps", "train_error", "train_loss", "val_error", "val_loss", "test_error", "test_loss")
JOB = "plain-8_seed0"


@pytest.fixture(scope="module")
def cluster():
    """SLURM_CONF of a running one-node cluster; every daemon stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a SLURM test cluster needs root (its daemons run as root)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no SLURM installed and no apt-get to install it (Debian: slurm-wlm slurmdbd munge mariadb-server)")
    installed = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=900)
    if installed.returncode != 0:
        pytest.skip(f"SLURM's packages could not be installed: {installed.stderr.strip().splitlines()[-1:]}")
    # munged refuses a socket below a folder that not everyone may enter, as pytest's own temporary folders are.
    state = Path(tempfile.mkdtemp(prefix="reslab-slurm-"))
    state.chmod(0o755)
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield str(state / "slurm.conf")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def env(cluster, run_env):
    return {**run_env, "SLURM_CONF": cluster}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The final metrics of the same run, uninterrupted, in this process."""
    from reslab.config import compose_config
    from reslab.job import train

    result = train(compose_config(ARGS, output_dir=tmp_path_factory.mktemp("straight") / JOB))
    return {k: result[k] for k in FINAL_KEYS}


def launch(sweep: Path, env: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reslab", "-m", *ARGS, *ON_CLUSTER, *extra, f"hydra.sweep.dir={sweep}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, err


def slurm(env: dict, *cmd: str) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def running_job(env: dict, sweep: Path) -> str:
    """The SLURM id of the sweep's job once it has trained a few steps."""
    assert wait_for(lambda: (sweep / JOB / "checkpoints" / "step5.ckpt").exists(), 480), "training never started"
    ids = slurm(env, "squeue", "-h", "-t", "RUNNING", "-o", "%i").split()
    assert len(ids) == 1, ids
    return ids[0]


def attempts(env: dict, job_id: str) -> list[str]:
    """The state each run of a SLURM job ended in, requeued ones included, from the accounting database (slurmctld
    forgets a finished job after MinJobAge, 10 s here: too soon for a test on a busy machine)."""
    return slurm(env, "sacct", "-n", "-X", "-D", "-P", "-j", job_id, "-o", "State").split()


def final(job_dir: Path) -> dict:
    record = json.loads((job_dir / "metrics.json").read_text())
    assert record["status"] == "finished", record
    return {k: record[k] for k in FINAL_KEYS}


def logs(sweep: Path) -> str:
    return "".join(p.read_text() for p in [*sweep.rglob("*_log.*"), *sweep.rglob("reslab.log")])


# How SLURM stops a running job, and whether the user has to rerun the command afterwards.
STOPS = {
    "SIGUSR2 (time limit or preemption signal)": (["scancel", "--signal=USR2"], "SIGUSR2"),
    "scontrol requeue (SLURM requeues; SIGTERM)": (["scontrol", "requeue"], "SIGTERM"),
    "SIGTERM alone (preemption grace time, scancel -s TERM)": (["scancel", "--signal=TERM"], "SIGTERM"),
}


@pytest.mark.parametrize("how", STOPS, ids=["usr2", "scontrol-requeue", "sigterm"])
def test_a_job_stopped_by_slurm_is_requeued_and_ends_as_if_never_stopped(how, env, straight, tmp_path):
    command, signame = STOPS[how]
    sweep = tmp_path / "sweep"
    proc = launch(sweep, env)
    job_id = running_job(env, sweep)
    slurm(env, *command, job_id)
    code, err = finish(proc)
    assert code == 0, err[-3000:]
    log = (sweep / JOB / "reslab.log").read_text()
    assert f"stopped by {signame}" in log and "resuming from" in log, log[-3000:]
    assert final(sweep / JOB) == straight
    assert "REQUEUED" in attempts(env, job_id) or "PREEMPTED" in attempts(env, job_id)


def test_a_job_preempted_by_a_higher_priority_partition_is_requeued_and_ends_as_if_never_stopped(
    env, straight, tmp_path
):
    """Real preemption: partition `low` (PreemptMode=REQUEUE, GraceTime=10 s) is preempted by any job of `high`;
    with preempt_send_user_signal the job gets submitit's SIGUSR2 at once, checkpoints, and SLURM requeues it."""
    sweep = tmp_path / "sweep"
    proc = launch(sweep, env, "hydra.launcher.partition=low")
    job_id = running_job(env, sweep)
    slurm(env, "sbatch", "-p", "high", "-c", "2", "-o", "/dev/null", "--wrap", "sleep 5")  # takes the whole node
    code, err = finish(proc)
    assert code == 0, err[-3000:]
    log = (sweep / JOB / "reslab.log").read_text()
    assert "stopped by SIG" in log and "resuming from" in log, log[-3000:]
    assert final(sweep / JOB) == straight
    assert "REQUEUED" in attempts(env, job_id) or "PREEMPTED" in attempts(env, job_id)


@pytest.mark.parametrize("how", ["SIGKILL", "scancel"])
def test_a_job_killed_or_cancelled_ends_alone_and_the_rerun_completes_it(how, env, straight, tmp_path):
    """SIGKILL (the kernel's OOM killer): no checkpoint at the kill, no result; the command records the failure with
    SLURM's state. scancel: SIGTERM, the job checkpoints and is not requeued (the user cancelled it). Either way the
    command reports and exits 1 without a traceback, and the same command again resumes the job."""
    sweep = tmp_path / "sweep"
    proc = launch(sweep, env)
    job_id = running_job(env, sweep)
    if how == "SIGKILL":
        os.kill(int((sweep / JOB / ".lock").read_text().split()[1]), signal.SIGKILL)
    else:
        slurm(env, "scancel", job_id)
    code, err = finish(proc)
    assert code == 1 and "Traceback" not in err, err[-3000:]
    record = json.loads((sweep / JOB / "metrics.json").read_text())
    if how == "SIGKILL":
        assert record["status"] == "failed" and "SLURM job" in record["error"] and "without a result" in record["error"]
        assert f"{JOB} | failed" in (sweep / "summary.md").read_text()
    else:
        assert record["status"] == "interrupted", record
        assert "cancelled by the scheduler, so not requeued" in (sweep / JOB / "reslab.log").read_text()
    assert f"did not finish: {JOB}" in err
    code, err = finish(launch(sweep, env))
    assert code == 0, err[-3000:]
    assert final(sweep / JOB) == straight


def test_a_time_limit_requeues_the_job_until_it_ends_as_if_never_stopped(env, tmp_path, one_torch_thread):
    """submitit asks SLURM for SIGUSR2 45 s before a 2-minute limit; SLURM checks limits once a minute, so the signal
    comes 15 to 75 s into an attempt: the job checkpoints and is requeued (counted against max_num_timeout) until it
    has trained all its steps, as if never stopped. One torch thread each: the job and the uninterrupted run here
    train side by side on the 2-core machine."""
    from reslab.config import compose_config
    from reslab.job import train

    # Long enough to outlast the first signal on a fast machine too: the job starts training about 10 s into an
    # attempt and 2400 steps took 67 s (experiments/test_tiers/), under the 75 s the first signal can take; 4000
    # steps leave room for a machine 1.5 times as fast.
    long = ["trainer.max_steps=4000", "trainer.val_check_interval=1000", "runtime.threads=1"]
    sweep = tmp_path / "sweep"
    proc = launch(sweep, env, *long, "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=45")
    straight = train(compose_config([*ARGS, *long], output_dir=tmp_path / "straight"))  # meanwhile, here
    code, err = finish(proc, 900)
    assert code == 0, err[-3000:]
    assert "this job is timed-out" in logs(sweep) and "resuming from" in (sweep / JOB / "reslab.log").read_text()
    assert final(sweep / JOB) == {k: straight[k] for k in FINAL_KEYS}


def test_a_sweep_on_the_cpu_preset_stopped_by_ctrl_c_cancels_its_jobs_and_a_rerun_completes_them(
    env, straight, tmp_path
):
    """The CPU preset asks SLURM for CPUs and no GPU and runs one job at a time on the 2-CPU node. The user's Ctrl+C
    to the command checkpoints the running job and cancels the pending one; the same command again completes both,
    the stopped one as if never stopped, with no srun hint in any log."""
    sweep = tmp_path / "sweep"
    proc = launch(sweep, env, "model=plain,residual")
    job_id = running_job(env, sweep)
    tres = slurm(env, "scontrol", "show", "job", "-o", job_id).split(" TRES=")[1].split()[0]
    assert "cpu=2" in tres and "gpu" not in tres, tres  # what the preset asked SLURM for
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 128 + signal.SIGINT, err[-3000:]
    assert json.loads((sweep / JOB / "metrics.json").read_text())["status"] == "interrupted"
    assert not (sweep / "residual-8_seed0" / "metrics.json").exists()  # pending: cancelled before it started
    assert slurm(env, "squeue", "-h") == ""  # nothing left running unwatched
    assert "rerun the same command" in err
    code, err = finish(launch(sweep, env, "model=plain,residual"))
    assert code == 0, err[-3000:]
    assert final(sweep / JOB) == straight and final(sweep / "residual-8_seed0")["steps"] == 300
    assert "srun` command is available" not in logs(sweep)


def test_a_request_slurm_refuses_or_can_never_start_is_one_line(env, tmp_path):
    gpu = subprocess.run(
        [sys.executable, "-m", "reslab", "-m", *ARGS, "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'a'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gpu.returncode == 2 and "Traceback" not in gpu.stderr, gpu.stderr[-3000:]
    assert gpu.stderr.strip().splitlines()[-1].startswith("reslab: error: SLURM refused the sweep's jobs: Invalid gen")
    assert "slurm_cpu" in gpu.stderr
    sweep = tmp_path / "b"
    code, err = finish(launch(sweep, env, "hydra.launcher.cpus_per_task=8"), 300)  # on a 2-CPU node
    assert code == 1 and "Traceback" not in err, err[-3000:]
    record = json.loads((sweep / JOB / "metrics.json").read_text())
    assert record["status"] == "failed" and "never started" in record["error"] and "cpus_per_task" in record["error"]
    assert slurm(env, "squeue", "-h") == ""


def test_a_run_on_a_slurm_host_outside_srun_has_no_srun_warning(env, tmp_path):
    """Lightning warns whenever `srun` is on the PATH and the process was not started by it (a login node, a job
    script without srun, joblib's workers); reslab starts a run's processes itself, so the hint would mislead."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "reslab", *TINY, "trainer.max_steps=2", f"hydra.run.dir={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and shutil.which("srun", path=env.get("PATH")), proc.stderr[-3000:]
    assert "srun` command is available" not in proc.stdout + proc.stderr + (out / "reslab.log").read_text()
