"""Nothing lost: SIGKILL and resume, determinism, divergence, failing jobs in a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
from conftest import NO_RUN_FIGURES, ROOT, TINY, wait_for
from faults import NanWeightsAt

from reslab.errors import UserError
from reslab.job import train

FINAL = ("train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error", "steps", "status")


def final(record: dict) -> dict:
    return {k: record[k] for k in FINAL}


def assert_same_series(a, b) -> None:
    """The instruments' series of two job directories are identical."""
    for name in ("grad_norms.npz", "responses.npz"):
        x, y = np.load(a / name), np.load(b / name)
        assert list(x["steps"]) == list(y["steps"]) and list(x["names"]) == list(y["names"]), name
        assert np.array_equal(x["values"], y["values"]), name


class Crash(Exception):
    """Stands in for a machine that goes away mid-run."""


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(tiny_cfg, tmp_path):
    a = train(tiny_cfg("trainer.max_steps=12", out=tmp_path / "a"))
    b = train(tiny_cfg("trainer.max_steps=12", out=tmp_path / "b"))
    c = train(tiny_cfg("trainer.max_steps=12", "seed=1", out=tmp_path / "c"))
    assert final(a) == final(b)
    assert final(a) != final(c)


def test_resume_in_process_matches_an_uninterrupted_run(tiny_cfg, tmp_path):
    """Stop at step 7 (checkpoint every 3, so the last one is step 6), continue to 16: same as straight 16."""
    overrides = [
        "trainer.max_steps=16",
        "callbacks.checkpoint.every_n_train_steps=3",
        "dataset.crop_pad=2",
        "dataset.hflip=true",
        *NO_RUN_FIGURES,
    ]
    straight = train(tiny_cfg(*overrides, out=tmp_path / "straight"))
    stopped = tiny_cfg(*overrides, out=tmp_path / "resumed")

    class CrashAtStep7(L.Callback):  # kill the run's training at step 7 with an exception
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 7:
                raise Crash

    with pytest.raises(Crash):
        train(stopped, callbacks=[CrashAtStep7()])
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["status"] != "finished"
    resumed = train(stopped)
    assert final(resumed) == final(straight)
    assert_same_series(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_same_final_metrics(tmp_path, run_env):
    overrides = [
        *TINY,
        "trainer.max_steps=40",
        "callbacks.checkpoint.every_n_train_steps=5",
        "dataset.crop_pad=2",
        "dataset.hflip=true",
        "callbacks.grad_norms.figure_every_n_steps=0",
        "callbacks.responses.figure_every_n_steps=0",
    ]  # no figure rendering: a faster test
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    cmd = [sys.executable, "run.py", *overrides]
    subprocess.run(
        [*cmd, f"hydra.run.dir={straight_dir}"], cwd=ROOT, env=run_env, check=True, capture_output=True, timeout=300
    )

    proc = subprocess.Popen(
        [*cmd, f"hydra.run.dir={killed_dir}"],
        cwd=ROOT,
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill once training is under way (last.ckpt exists), at whatever step it has reached.
    started = wait_for(lambda: (killed_dir / "checkpoints" / "last.ckpt").exists(), timeout=240)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert started, "training never wrote a checkpoint"
    interrupted = json.loads((killed_dir / "metrics.json").read_text())
    assert interrupted["status"] == "running"  # it really died mid-run

    rerun = subprocess.run(
        [*cmd, f"hydra.run.dir={killed_dir}"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stderr + rerun.stdout
    a = json.loads((straight_dir / "metrics.json").read_text())
    b = json.loads((killed_dir / "metrics.json").read_text())
    assert final(a) == final(b)
    assert_same_series(straight_dir, killed_dir)


def test_injected_nan_is_recorded_as_diverged(tiny_cfg, tmp_path):
    record = train(tiny_cfg("trainer.max_steps=40", out=tmp_path / "job"), callbacks=[NanWeightsAt(5)])
    assert record["status"] == "diverged"
    assert record["diverged_at_step"] == 5
    assert record["last_finite_loss"] is not None and record["last_finite_loss"] > 0
    assert record["steps"] <= 5 + 5  # stopped within the check interval
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_a_checkpoint_of_another_experiment_is_refused(tiny_cfg, tmp_path):
    train(tiny_cfg("model=plain", out=tmp_path / "plain"))
    ckpt = tmp_path / "plain" / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"different experiment: model='plain' \(this run: 'residual'\)"):
        train(tiny_cfg("model=residual", f"resume={ckpt}", out=tmp_path / "residual"))
    with pytest.raises(UserError, match="depth=8 .this run: 14."):
        train(tiny_cfg("model=plain", "depth=14", f"resume={ckpt}", out=tmp_path / "deeper"))
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        train(tiny_cfg(f"resume={bad}", out=tmp_path / "x"))


@pytest.mark.slow  # keeps the fast suite under 5 minutes; its parts are tested fast elsewhere
def test_one_failing_job_does_not_stop_the_sweep(tmp_path, run_env):
    sweep = tmp_path / "sweep"
    # dataset=mnist has no files here and downloads are off: that job fails, the others run.
    cmd = [
        sys.executable,
        "run.py",
        "-m",
        *TINY,
        "model=plain",
        "dataset=synthetic,mnist,synthetic",
        "dataset.download=false",
        f"data_dir={tmp_path / 'nodata'}",
        "seed=0",
        f"hydra.sweep.dir={sweep}",
    ]
    cmd = [c for c in cmd if c != "dataset=synthetic"]
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    statuses = {
        p.name: json.loads((p / "metrics.json").read_text())["status"]
        for p in sweep.iterdir()
        if (p / "metrics.json").exists()
    }
    assert statuses == {"plain-8_seed0_dataset=synthetic": "finished", "plain-8_seed0_dataset=mnist": "failed"}
    failed = json.loads((sweep / "plain-8_seed0_dataset=mnist" / "metrics.json").read_text())
    assert "mnist" in failed["error"] and (sweep / "plain-8_seed0_dataset=mnist" / "error.log").exists()
    summary = (sweep / "summary.md").read_text()
    assert "Jobs that did not finish" in summary and failed["error"] in summary
    assert "job plain-8_seed0_dataset=mnist failed" in proc.stderr


# During step 4's validation (its checkpoint not written yet), and as step 5 starts (resumed from that checkpoint).
@pytest.mark.parametrize("crash_in", ["on_validation_start", "on_train_batch_start"])
def test_a_crash_around_a_validation_at_a_checkpoint_step_resumes_the_same_curves(tiny_cfg, tmp_path, crash_in, caplog):
    """Found by tools/chaos.py: a job killed after the step-4 checkpoint and before that step's validation ended lost
    the validation point on resume (Lightning skips the validation after a checkpoint saved at the batch's end), so
    that checkpoint is now written after the validation (`reslab.training.StepCheckpoint`)."""
    overrides = ["trainer.max_steps=12", *NO_RUN_FIGURES]  # checkpoint and validation every 4 steps (debug=tiny)
    straight = train(tiny_cfg(*overrides, out=tmp_path / "straight"))
    stopped = tiny_cfg(*overrides, out=tmp_path / "resumed")

    class CrashAtStep4Validation(L.Callback):
        def hook(self, trainer, *args):
            if trainer.global_step == 4 and trainer.state.fn == "fit":
                raise Crash

    setattr(CrashAtStep4Validation, crash_in, CrashAtStep4Validation.hook)
    with pytest.raises(Crash):
        train(stopped, callbacks=[CrashAtStep4Validation()])
    resumed = train(stopped)
    if crash_in == "on_train_batch_start":  # resumed from step 4's checkpoint, written after its validation
        assert "Restoring states from the checkpoint" in caplog.text
    assert final(resumed) == final(straight)
    curves = [(p / "curves.csv").read_text() for p in (tmp_path / "straight", tmp_path / "resumed")]
    assert curves[0] == curves[1]
