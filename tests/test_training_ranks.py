"""One run on two CPU processes (gloo): one job directory, each process its own part of every batch, the same
weights everywhere, and the loss curve of one process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import ROOT, TINY, wait_for

from reslab.config import compose_config
from reslab.job import train
from reslab.training.ranks import rank

# Augmentation on: each process must crop and flip its part exactly as one process does the whole batch.
DDP_RUN = ["dataset.crop_pad=2", "dataset.hflip=true", "trainer.max_steps=6"]


class RankLog(L.Callback):
    """Saves, per process, each step's images and whole-batch loss, and the final weights (sent to the ranks by
    pickling, so it lives at module level)."""

    def __init__(self, folder):
        self.folder = folder
        self.images, self.losses = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.images.append(batch[0].detach().cpu().clone())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["batch_loss"]))

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}
        torch.save(
            {"images": self.images, "losses": self.losses, "weights": state, "world": trainer.world_size},
            os.path.join(self.folder, f"rank{rank()}.pt"),
        )


@pytest.mark.slow
def test_two_processes_train_one_run_as_one_process_would(tiny_cfg, tmp_path, tmp_path_factory):
    ddp_log, one_log = tmp_path / "ddp_log", tmp_path / "one_log"
    ddp_log.mkdir(), one_log.mkdir()
    store = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    loggers = ["logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={store}"]
    ddp_cfg = tiny_cfg(*DDP_RUN, "trainer=ddp", *loggers, out=tmp_path / "ddp")
    ddp = train(ddp_cfg, callbacks=[RankLog(str(ddp_log))])
    one = train(tiny_cfg(*DDP_RUN, out=tmp_path / "one"), callbacks=[RankLog(str(one_log))])

    # One job directory, written once: nothing of rank 1's anywhere.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "ddp_log", "one", "one_log"]
    assert ddp["status"] == "finished" and ddp["steps"] == 6 and ddp["devices"] == 2
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text()) == ddp
    assert len(list((tmp_path / "ddp").glob("events.out.tfevents.*"))) == len(
        list((tmp_path / "one").glob("events.out.tfevents.*"))
    )

    r0, r1 = (torch.load(ddp_log / f"rank{r}.pt") for r in (0, 1))
    (single,) = (torch.load(one_log / "rank0.pt"),)
    assert r0["world"] == r1["world"] == 2 and single["world"] == 1
    for step, (a, b, whole) in enumerate(zip(r0["images"], r1["images"], single["images"], strict=True)):
        assert len(a) == len(b) == len(whole) // 2
        assert not torch.equal(a, b), f"both processes trained on the same images at step {step}"
        assert torch.equal(torch.cat([a, b]), whole), f"step {step}: the two parts are not the one-process batch"
    for name, w in r0["weights"].items():  # DDP keeps the copies equal, bit for bit
        assert torch.equal(w, r1["weights"][name]), name
    assert r0["losses"] == r1["losses"]  # every process sees the whole batch's loss
    assert r0["losses"] == pytest.approx(single["losses"], rel=1e-5)  # the one-process curve, to rounding
    for name, w in single["weights"].items():
        # fp32 rounding (sums in another order) grows over 6 steps at lr 0.1 to about 5e-5 on weights of ~0.6.
        assert torch.allclose(r0["weights"][name].float(), w.float(), rtol=0, atol=2e-4), name
    for key in ("train_loss", "val_loss", "test_loss", "test_error"):
        assert ddp[key] == pytest.approx(one[key], rel=1e-4), key
    # The loggers are rank 0's: one curves.csv with the one-process curves, one MLflow run.
    from mlflow.tracking import MlflowClient

    from reslab.curves import read_curve_rows

    rows, single_rows = (read_curve_rows(tmp_path / d / "curves.csv") for d in ("ddp", "one"))
    assert rows.keys() == single_rows.keys()
    for step, values in single_rows.items():
        assert rows[step] == pytest.approx(values, rel=1e-4), step
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("reslab").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == ddp["run_name"]


def test_a_batch_that_does_not_split_evenly_is_refused_in_one_line(tiny_cfg, tmp_path):
    from reslab.errors import UserError

    with pytest.raises(UserError, match=r"dataset.batch_size=33 does not split evenly across trainer.devices=2"):
        train(tiny_cfg("trainer=ddp", "dataset.batch_size=33", out=tmp_path / "job"))


# A run long enough to be signalled mid-way: checkpoints every 5 steps, no figures to render.
LONG_DDP = [
    *TINY,
    "trainer=ddp",
    "trainer.max_steps=100",
    "callbacks.checkpoint.every_n_train_steps=5",
    "trainer.val_check_interval=100",
    "callbacks.grad_norms.figure_every_n_steps=0",
    "callbacks.responses.figure_every_n_steps=0",
]
FINAL_KEYS = ("steps", "train_error", "train_loss", "val_error", "val_loss", "test_error", "test_loss")


@pytest.mark.slow
def test_a_run_on_two_processes_stopped_by_sigterm_resumes_to_the_uninterrupted_metrics(tmp_path, run_env):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(compose_config(LONG_DDP, output_dir=straight))  # the same run uninterrupted, launched from this process
    cmd = [sys.executable, "-m", "reslab", *LONG_DDP]
    proc = subprocess.Popen(
        [*cmd, f"hydra.run.dir={stopped}"], cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert wait_for(lambda: (stopped / "checkpoints" / "last.ckpt").exists(), 240), "training never started"
    proc.send_signal(signal.SIGTERM)  # to the parent, which forwards it to both processes
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    record = json.loads((stopped / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["steps"] < 100
    rerun = subprocess.run(
        [*cmd, f"hydra.run.dir={stopped}"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0 and "resuming from" in rerun.stdout + rerun.stderr
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, stopped))
    assert {k: b[k] for k in FINAL_KEYS} == {k: a[k] for k in FINAL_KEYS}


@pytest.mark.slow
def test_runs_on_two_processes_in_a_joblib_sweep(tmp_path, run_env):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "reslab", "-m", *TINY, "trainer=ddp", "model=plain,residual"]
    cmd += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert jobs == ["plain-8_seed0", "residual-8_seed0"]
    for job in jobs:
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert record["status"] == "finished" and record["devices"] == 2
