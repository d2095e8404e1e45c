"""Sweeps under Hydra's joblib and submitit launchers, where jobs run in other processes: each job named from its
own config, the exit status and the report read from the jobs' records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, wait_for

from reslab.config import compose_config
from reslab.job import train


@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
@pytest.mark.slow
def test_a_sweep_under_another_launcher_keeps_jobs_apart_and_reports_its_failure(launcher, tmp_path, run_env):
    sweep = tmp_path / "sweep"
    # dataset.batch_size is not in the run's name; 1000 is more than the 384 synthetic training images, so that
    # job fails when it loads its data (after the command's checks, as a job in a worker process).
    cmd = [sys.executable, "-m", "reslab", "-m", *TINY, "model=plain", "dataset.batch_size=32,1000", *launcher]
    cmd += ["runtime.threads=auto"]  # what the parallel launcher shares out (tiny's own is 1)
    proc = subprocess.run(
        [*cmd, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert jobs == ["plain-8_seed0_dataset.batch_size=1000", "plain-8_seed0_dataset.batch_size=32"]
    records = {j: json.loads((sweep / j / "metrics.json").read_text()) for j in jobs}
    # Each job's record is its own, not another job's.
    ok, bad = records["plain-8_seed0_dataset.batch_size=32"], records["plain-8_seed0_dataset.batch_size=1000"]
    assert ok["status"] == "finished" and ok["identity"]["dataset.batch_size"] == 32
    assert bad["status"] == "failed" and "fewer than batch_size=1000" in bad["error"]
    finished = sweep / "plain-8_seed0_dataset.batch_size=32"
    assert "batch_size: 32" in (finished / "config.yaml").read_text()
    if "hydra/launcher=parallel" in launcher:  # two jobs at once share the cores as torch threads
        assert records[finished.name]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| plain (dataset.batch_size=") == 2 and "## Jobs that did not finish" in summary
    assert "fewer than batch_size=1000" in summary
    assert "1 job(s) of" in proc.stderr and "did not finish" in proc.stderr


# A short run that checkpoints often and renders no figures.
PREEMPTIBLE = [
    *TINY,
    "model=plain",
    "trainer.max_steps=30",
    "callbacks.checkpoint.every_n_train_steps=5",
    "callbacks.grad_norms.figure_every_n_steps=0",
    "callbacks.responses.figure_every_n_steps=0",
]
FINAL_KEYS = ("steps", "train_error", "train_loss", "val_error", "val_loss", "test_error", "test_loss")


@pytest.mark.slow  # about 25 s: three processes start (the sweep, the job, the requeued job)
def test_a_job_preempted_under_submitit_is_requeued_and_ends_as_if_never_stopped(tmp_path, run_env):
    """submitit's preemption signal to a job stops that job, which checkpoints and is requeued; the sweep goes on and
    ends as if never stopped. SIGTERM (how SLURM requeues and preempts) is tested on the real cluster:
    test_slurm_cluster.py's `sigterm` and `scontrol-requeue` cases."""
    signum = signal.SIGUSR2
    straight, sweep = tmp_path / "straight", tmp_path / "sweep"
    train(compose_config(PREEMPTIBLE, output_dir=straight))  # the same run, uninterrupted, in this process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reslab",
            "-m",
            *PREEMPTIBLE,
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = sweep / "plain-8_seed0"
    try:  # preempt it as SLURM would, with submitit's signal, once training is under way
        assert wait_for(lambda: (job / "checkpoints" / "step5.ckpt").exists(), 240), "training never started"
        pid = int((job / ".lock").read_text().split()[1])  # "pid N on HOST": the job's own process
        os.kill(pid, signum)
        _, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    log = (job / "reslab.log").read_text()
    assert f"stopped by {signum.name}" in log and "handing over to the launcher to requeue" in log
    assert "resuming from" in log  # the requeued job went on from its checkpoint, not from scratch
    submitit_logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.out"))
    assert "Requeued job" in submitit_logs
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((job / "metrics.json").read_text())
    assert b["status"] == "finished" and {k: b[k] for k in FINAL_KEYS} == {k: a[k] for k in FINAL_KEYS}


def test_under_slurm_lightning_leaves_preemption_to_reslab_and_submitit(tiny_cfg, tmp_path, monkeypatch):
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from reslab.build import build_trainer

    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "reslab")
    monkeypatch.setenv("SLURM_NODELIST", "node1")
    trainer = build_trainer(tiny_cfg(), tmp_path, "cpu", "32-true", [])
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False


def test_the_launcher_presets_compose_with_what_reslab_needs():
    from hydra import compose, initialize_config_dir

    from reslab.config import conf_dir

    def launcher(*overrides):
        return compose("config", list(overrides), return_hydra_config=True).hydra.launcher

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        gpu, gpus = launcher("hydra/launcher=slurm"), launcher("hydra/launcher=slurm", "trainer.devices=2")
        cpu, parallel = launcher("hydra/launcher=slurm_cpu"), launcher("hydra/launcher=parallel")
    for slurm in (gpu, cpu):  # reslab's own launcher (watches every job), one task, requeued on time-outs
        assert slurm._target_ == "hydra_plugins.reslab_launchers.SlurmLauncher" and slurm.tasks_per_node == 1
        assert slurm.max_num_timeout > 0 and slurm.signal_delay_s > 0
    assert gpu.gpus_per_node == 1 and gpus.gpus_per_node == 2  # the GPUs follow the run's trainer.devices
    assert cpu.gpus_per_node is None and cpu.cpus_per_task <= 2 and cpu.mem_gb <= 4  # fits any node
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == -1


# The preemption signal to the launching command (a scheduler preempting the allocation the sweep runs in): its
# default action killed the command and left the workers unwatched (found by tools/chaos.py).
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["SIGTERM", "preempt"])
@pytest.mark.slow
def test_a_joblib_sweep_stopped_by_a_signal_checkpoints_its_jobs_and_starts_no_new_one(signum, tmp_path, run_env):
    sweep = tmp_path / "sweep"
    long = [a for a in PREEMPTIBLE if not a.startswith(("model=", "trainer.max_steps="))]
    long += ["trainer.max_steps=3000", "model=plain,residual", "seed=0,1"]
    cmd = [sys.executable, "-m", "reslab", "-m", *long, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
    proc = subprocess.Popen(
        [*cmd, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    first = [sweep / "plain-8_seed0", sweep / "plain-8_seed1"]  # the two jobs joblib starts first
    assert wait_for(lambda: all((j / "checkpoints" / "last.ckpt").exists() for j in first), 240)
    proc.send_signal(signum)  # to the launching process only: it passes the signal to its workers
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signum, err.decode()[-3000:]
    for job in first:
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "interrupted" and record["steps"] < 3000
    assert not (sweep / "residual-8_seed0").exists() and not (sweep / "residual-8_seed1").exists()
    assert b"rerun the same command" in err


@pytest.mark.slow  # about 40 s: a sweep of two jobs, one killed (the rerun's exact resume: test_slurm_cluster.py)
def test_a_job_killed_outright_under_submitit_fails_alone_and_the_sweep_goes_on(tmp_path, run_env):
    """SIGKILL (the OOM killer) leaves no result: the launching command waits for the other job, records the killed
    one as failed, reports, and exits 1 without a traceback."""
    sweep = tmp_path / "sweep"
    args = [{"trainer.max_steps=30": "trainer.max_steps=200"}.get(a, a) for a in PREEMPTIBLE]  # killed mid-run
    cmd = [sys.executable, "-m", "reslab", "-m", *args, "model=plain,residual", "hydra/launcher=submitit_local"]
    proc = subprocess.Popen(
        [*cmd, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    job = sweep / "plain-8_seed0"
    try:
        assert wait_for(lambda: (job / "checkpoints" / "step5.ckpt").exists(), 240), "training never started"
        os.kill(int((job / ".lock").read_text().split()[1]), signal.SIGKILL)
        _, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 1, err[-3000:]
    record = json.loads((job / "metrics.json").read_text())
    assert record["status"] == "failed" and "without a result" in record["error"], record
    assert "Traceback" not in err and f"reslab: job {job.name} failed:" in err
    assert json.loads((sweep / "residual-8_seed0" / "metrics.json").read_text())["status"] == "finished"
    assert "plain-8_seed0 | failed" in (sweep / "summary.md").read_text()


def test_a_job_whose_task_raised_is_recorded_and_never_ends_the_sweep(tiny_cfg, tmp_path):
    """Hydra returns such a job FAILED and every sweeper re-raises its error, ending the sweep (found by
    tools/chaos.py: a submitit job could not write its error message on a full disk). reslab's launchers record it."""
    from hydra.core.utils import JobReturn, JobStatus

    from reslab.cli.launchers_local import contained

    cfg = tiny_cfg(out=tmp_path / "sweep" / "job")
    failed = JobReturn(overrides=["seed=0"], status=JobStatus.FAILED, _return_value=OSError(28, "No space left"))
    ret = contained(failed, lambda: cfg, ["seed=0"])
    assert ret.status == JobStatus.COMPLETED and ret.return_value != ret.return_value  # NaN: the sweeper goes on
    record = json.loads((tmp_path / "sweep" / "job" / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("OSError: [Errno 28] No space left")
    done = JobReturn(overrides=["seed=0"], status=JobStatus.COMPLETED, _return_value=0.25)
    assert contained(done, lambda: cfg, ["seed=0"]) is done


def test_a_job_s_last_words_lost_on_a_full_disk_do_not_raise(monkeypatch):
    from reslab.cli.hydra_app import tell

    class FullDisk:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sys, "stderr", FullDisk())
    tell("reslab: job plain-8_seed0 failed: ...")  # lost, and the job still returns
