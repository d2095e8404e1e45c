"""Faults done for real: interrupted and full-disk writes, a crafted checkpoint, signals, reruns of another
experiment, concurrent launches into one directory, and a job that died without a word."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, wait_for

from reslab.errors import UserError
from reslab.files import write_atomic
from reslab.job import train
from reslab.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint

# A run long enough to be signalled mid-way: checkpoints every 5 steps, no figures to render.
LONG = [
    *TINY,
    "trainer.max_steps=400",
    "callbacks.checkpoint.every_n_train_steps=5",
    "trainer.val_check_interval=400",
    "callbacks.grad_norms.figure_every_n_steps=0",
    "callbacks.responses.figure_every_n_steps=0",
]


class Boom(Exception):
    pass


def test_a_write_interrupted_at_any_stage_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    write_atomic(target, lambda f: torch.save({"step": 1}, f))

    def half_then_fail(f):
        f.write(b"\x80\x02partial")
        raise Boom

    with pytest.raises(Boom):  # the writer dies mid-file
        write_atomic(target, half_then_fail)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):  # the flush to disk fails
        write_atomic(target, lambda f: torch.save({"step": 2}, f))
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):  # the rename fails
        write_atomic(target, lambda f: torch.save({"step": 3}, f))
    monkeypatch.undo()
    assert load_checkpoint(target) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_in_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        io = AtomicCheckpointIO()
        io.save_checkpoint({"w": torch.zeros(1000)}, disk / "last.ckpt")  # 4 kB: fits
        with pytest.raises(UserError, match="cannot write checkpoint .* the previous checkpoint is intact"):
            io.save_checkpoint({"w": torch.zeros(200_000)}, disk / "last.ckpt")  # 800 kB: does not
        assert load_checkpoint(disk / "last.ckpt")["w"].shape == (1000,)
        assert [p.name for p in disk.iterdir()] == ["last.ckpt"]
    finally:
        subprocess.run(["umount", str(disk)])


class Payload:
    """Pickled, this calls ``Path.touch`` on load: what a crafted checkpoint would do with any function."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_checkpoint_does_not_run_its_payload(tiny_cfg, tmp_path):
    marker = tmp_path / "payload-ran"
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"reslab_identity": {}, "state_dict": {}, "x": Payload(marker)}, crafted)
    with pytest.raises(UserError, match="holds more than tensors and plain containers"):
        train(tiny_cfg(f"resume={crafted}", out=tmp_path / "job"))
    assert not marker.exists()
    planted = tmp_path / "planted"  # the same file found in a job directory
    (planted / "checkpoints").mkdir(parents=True)
    shutil.copy(crafted, planted / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match="it could run code"):
        train(tiny_cfg(out=planted))
    assert not marker.exists()


@pytest.mark.slow
def test_a_rerun_of_another_experiment_is_refused_and_a_log_interval_is_not(tiny_cfg, tmp_path):
    job = tmp_path / "job"
    first = train(tiny_cfg(out=job))
    before = (job / "metrics.json").read_bytes()
    for change, shown in [
        ("optim.lr=0.05", "optim.lr=0.1 (this run: 0.05)"),
        ("depth=14", "depth=8 (this run: 14)"),
        ("dataset.crop_pad=2", "dataset.crop_pad=0 (this run: 2)"),
        ("runtime.precision=bf16", "precision='32-true' (this run: 'bf16-mixed')"),
    ]:
        with pytest.raises(
            UserError,
            match="holds a finished run of a different experiment: " + shown.replace("(", r"\(").replace(")", r"\)"),
        ):
            train(tiny_cfg(change, out=job))
    assert (job / "metrics.json").read_bytes() == before  # untouched
    same = train(tiny_cfg("trainer.log_every_n_steps=1", "callbacks.grad_norms.every_n_steps=1", out=job))
    assert same == first  # settings that do not change the run may differ: the finished record is reused


@pytest.mark.slow
def test_a_resume_with_another_lr_is_refused(tiny_cfg, tmp_path):
    """A run killed mid-way and rerun with another optim.lr does not mix the two."""
    job = tmp_path / "job"
    train(tiny_cfg("trainer.max_steps=16", out=job))
    record = json.loads((job / "metrics.json").read_text())
    record["status"] = "running"  # as if killed after its last checkpoint
    (job / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"optim.lr=0.1 \(this run: 0.2\)"):
        train(tiny_cfg("trainer.max_steps=16", "optim.lr=0.2", out=job))


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reslab", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def started_within(predicate, timeout: float = 120) -> bool:
    return wait_for(predicate, timeout)


def training_started(job: Path) -> bool:
    return (job / "checkpoints" / "last.ckpt").exists()


# SIGINT takes the same path as SIGTERM: its cases run with the slow tests (make test-all).
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["SIGTERM", "SIGINT"]
)
@pytest.mark.slow
def test_a_signal_checkpoints_marks_interrupted_and_exits_128_plus_signal(signum, tmp_path, run_env):
    job = tmp_path / "job"
    proc = start([*LONG, f"hydra.run.dir={job}"], run_env)
    assert started_within(lambda: training_started(job)), "training never started"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    record = json.loads((job / "metrics.json").read_text())
    assert record["status"] == "interrupted" and signal.Signals(signum).name in record["error"]
    ckpt = load_checkpoint(job / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == record["steps"] < 400  # the checkpoint is the step it stopped at
    assert "the same command resumes it" in err


# SIGINT and the preemption signal take the same path as SIGTERM. The preemption signal's default action killed
# the launching command before it was watched (found by tools/chaos.py).
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2], ids=["SIGTERM", "SIGINT", "preempt"]
)
@pytest.mark.slow
def test_a_stopped_sweep_says_what_did_not_run(signum, tmp_path, run_env):
    sweep = tmp_path / "sweep"
    proc = start(["-m", *LONG, "model=plain,residual", f"hydra.sweep.dir={sweep}"], run_env)
    assert started_within(lambda: training_started(sweep / "plain-8_seed0")), "training never started"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "jobs not finished: plain-8_seed0" in err and "rerun the same command" in err
    assert "| plain | 8 |" in (sweep / "summary.md").read_text()
    assert not (sweep / "residual-8_seed0").exists()  # the sweep stopped instead of going on


@pytest.mark.slow
def test_two_launches_into_one_directory_never_train_the_same_job_twice(tmp_path, run_env):
    job = tmp_path / "job"
    first = start([*LONG, f"hydra.run.dir={job}"], run_env)
    try:
        assert started_within(lambda: training_started(job)), "training never started"
        second = subprocess.run(
            [sys.executable, "-m", "reslab", *LONG, f"hydra.run.dir={job}"],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"job directory {job} is being trained by pid {first.pid}" in second.stderr
        from reslab.results.runs import load_run

        assert load_run(job).status == "running"  # the lock is held: running, not died
    finally:
        first.kill()
        first.communicate()
    from reslab.results.runs import load_run

    assert load_run(job).status == "died"  # killed without a word: nobody holds the lock any more


@pytest.mark.slow
def test_a_failure_never_overwrites_a_finished_record(tiny_cfg, tmp_path):
    """A sweep rerun refused before its checks (here: a size that cannot fit) leaves the finished record as it is."""
    from reslab.jobdir import record_failure

    job = tmp_path / "job"
    train(tiny_cfg(out=job))
    before = (job / "metrics.json").read_bytes()
    assert record_failure(tiny_cfg("dataset.synthetic_train=100000000", out=job), "UserError: too big", "tb") is None
    assert (job / "metrics.json").read_bytes() == before and not (job / "error.log").exists()


def test_an_atomic_write_gets_the_mode_a_plain_write_would(tmp_path):
    write_atomic(tmp_path / "atomic", lambda f: f.write(b"x"))
    (tmp_path / "plain").write_bytes(b"x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode  # not mkstemp's 0600


def test_a_failure_recorded_from_outside_the_job_does_not_block_its_rerun(tiny_cfg, tmp_path):
    """A launcher records a job that died before it recorded itself: no identity of its own, so the rerun of the
    same job (its settings overridden away from the YAML's) is not refused as another experiment, and trains."""
    from reslab.jobdir import record_failure

    cfg = tiny_cfg("trainer.max_steps=6", out=tmp_path / "job")
    (tmp_path / "job").mkdir()
    record_failure(cfg, "its worker process died", "")
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["identity"] is None
    assert train(cfg)["status"] == "finished"


def test_a_job_that_failed_before_its_directory_existed_still_gets_a_record(tiny_cfg, tmp_path):
    """Found by tools/chaos.py (seed 4, 100 faults): a SIGINT to a joblib worker before Hydra made the job's directory
    was recorded nowhere, so the job had no status saying what had happened to it."""
    from reslab.jobdir import record_failure

    cfg = tiny_cfg(out=tmp_path / "sweep" / "job")
    assert record_failure(cfg, "stopped by SIGINT outside its training; rerun the sweep to run it", "") is not None
    record = json.loads((tmp_path / "sweep" / "job" / "metrics.json").read_text())
    assert record["status"] == "failed" and record["identity"] is None and "SIGINT" in record["error"]


def test_a_job_stopped_before_it_recorded_itself_is_interrupted_and_its_rerun_trains(tiny_cfg, tmp_path):
    """A stop signal while a job sets up (`stop_outside_training`) records it interrupted; the rerun of the same job,
    its settings overridden away from the YAML's, trains instead of refusing it (found by tools/chaos.py)."""
    from reslab.jobdir import record_interrupted

    cfg = tiny_cfg("trainer.max_steps=6", out=tmp_path / "job")
    (tmp_path / "job").mkdir()
    record_interrupted(cfg, "stopped by SIGINT outside training")
    record = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["identity"] is None
    assert train(cfg)["status"] == "finished"
