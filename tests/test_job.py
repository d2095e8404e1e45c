"""train(cfg) end to end on a tiny synthetic run, and a real `python run.py -m` sweep in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reslab.job import train
from reslab.models import CifarNet, count_parameters
from reslab.record import RunRecord
from reslab.training import Classifier

METRIC_KEYS = {
    "run_name",
    "job",
    "variant",
    "model",
    "shortcut",
    "depth",
    "params",
    "dataset",
    "seed",
    "steps",
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "test_loss",
    "test_error",
    "wall_time_s",
    "status",
}


def test_train_returns_and_writes_final_metrics(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model=plain", out=tmp_path / "job")
    record = train(cfg)
    assert METRIC_KEYS <= record.keys()
    assert record["status"] == "finished" and record["steps"] == 8
    assert record["model"] == "plain" and record["shortcut"] == "none" and record["depth"] == 8
    for key in ("train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error"):
        assert record[key] is not None and record[key] >= 0, key
    assert json.loads((tmp_path / "job" / "metrics.json").read_text()) == record
    assert (tmp_path / "job" / "checkpoints" / "last.ckpt").exists()
    assert "depth: 8" in (tmp_path / "job" / "config.yaml").read_text()


@pytest.mark.slow
def test_training_learns_the_synthetic_task(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_steps=40", "trainer.val_check_interval=40", out=tmp_path / "job")
    record = train(cfg)
    assert record["test_error"] < 0.5  # chance is 0.9


@pytest.mark.slow
def test_lr_schedule_decays_at_half_and_three_quarters(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_steps=8", "trainer.log_every_n_steps=1", out=tmp_path / "job")
    train(cfg)
    acc = EventAccumulator(str(tmp_path / "job")).Reload()
    lrs = [round(e.value, 6) for e in acc.Scalars("lr")]
    assert lrs == [0.1] * 4 + [0.01] * 2 + [0.001] * 2


@pytest.mark.slow
def test_warmup_holds_the_low_lr_then_returns(tiny_cfg, tmp_path):
    cfg = tiny_cfg("schedule.warmup.steps=3", "trainer.log_every_n_steps=1", out=tmp_path / "job")
    train(cfg)
    lrs = [round(e.value, 6) for e in EventAccumulator(str(tmp_path / "job")).Reload().Scalars("lr")]
    assert lrs[:4] == [0.01, 0.01, 0.01, 0.1]


@pytest.mark.slow
def test_warmup_ends_when_the_training_error_drops_below_the_threshold(tiny_cfg, tmp_path):
    # The paper's rule: lr 0.01 until training error < 80%; the step cap (30) is far away.
    cfg = tiny_cfg(
        "schedule=step_warmup",
        "schedule.warmup.steps=30",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
        "trainer.log_every_n_steps=1",
        out=tmp_path / "job",
    )
    train(cfg)
    acc = EventAccumulator(str(tmp_path / "job")).Reload()
    lrs = [round(e.value, 6) for e in acc.Scalars("lr")]
    errors = [e.value for e in acc.Scalars("train/error")]
    first_below = next(i for i, e in enumerate(errors) if e < 0.8)
    assert lrs[: first_below + 1] == [0.01] * (first_below + 1)  # warm-up up to and including that step
    assert lrs[first_below + 1] == 0.1  # back to the base lr at once
    assert first_below + 1 < 15


@pytest.mark.slow
def test_validation_runs_at_its_interval_and_once_at_the_end(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_steps=10", "trainer.val_check_interval=4", out=tmp_path / "job"))
    acc = EventAccumulator(str(tmp_path / "job")).Reload()
    assert len(acc.Scalars("val/error")) == 3  # after steps 4 and 8, and the final one at 10
    assert len(acc.Scalars("test/error")) == 1


@pytest.mark.slow
def test_several_periodic_checkpoints_can_be_kept(tiny_cfg, tmp_path):
    train(
        tiny_cfg(
            "trainer.max_steps=12",
            "callbacks.checkpoint.every_n_train_steps=3",
            "callbacks.checkpoint.save_top_k=2",
            out=tmp_path / "job",
        )
    )
    kept = sorted(p.name for p in (tmp_path / "job" / "checkpoints").glob("step*.ckpt"))
    assert kept == ["step12.ckpt", "step9.ckpt"]


def test_a_finished_job_is_not_retrained(tiny_cfg, tmp_path):
    first = train(tiny_cfg(out=tmp_path / "job"))
    mtime = (tmp_path / "job" / "metrics.json").stat().st_mtime_ns
    assert train(tiny_cfg(out=tmp_path / "job")) == first
    assert (tmp_path / "job" / "metrics.json").stat().st_mtime_ns == mtime


def test_job_dir_name_adds_only_swept_keys(tmp_path):
    from reslab.config import compose_config, swept_keys

    argv = [
        "-m",
        "depth=20,56",
        "model=plain,residual",
        "optim.lr=0.1,0.05",
        "schedule=step,step_warmup",
        "trainer.max_steps=10",
        "hydra.launcher.n_jobs=1,2",
    ]
    assert swept_keys(argv) == ["depth", "model", "optim.lr", "schedule"]
    job = ["depth=20", "model=plain", "optim.lr=0.05", "schedule=step_warmup", "trainer.max_steps=10"]
    cfg = compose_config([*job, "sweep_keys=[depth,model,optim.lr,schedule]"], tmp_path)
    record = RunRecord.from_config(cfg, choices={"model": "plain", "schedule": "step_warmup"})
    assert record.job_dir_name == "plain-20_seed0_optim.lr=0.05_schedule=step_warmup"
    assert RunRecord.from_config(compose_config(job, tmp_path)).job_dir_name == "plain-20_seed0"


@pytest.mark.slow
def test_sweep_subprocess_writes_one_readable_job_dir_per_combination(tmp_path, run_env):
    # A time-stamped sweep directory, like the default one (the report must find it after the jobs).
    cmd = [
        sys.executable,
        "run.py",
        "-m",
        "model=plain,residual",
        *TINY,
        f"hydra.sweep.dir={tmp_path}/sweeps/${{now:%H-%M-%S-%f}}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [sweep] = list((tmp_path / "sweeps").iterdir())
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert jobs == ["plain-8_seed0", "residual-8_seed0"]
    # The Hydra callback wrote the report when the multirun ended.
    assert "| plain | 8 |" in (sweep / "summary.md").read_text() and (sweep / "summary.csv").exists()
    assert (sweep / "figures" / "error_curves.png").exists() and (sweep / "figures" / "error_vs_depth.pdf").exists()
    assert "report:" in proc.stdout
    for name in jobs:
        job = sweep / name
        record = json.loads((job / "metrics.json").read_text())
        assert METRIC_KEYS <= record.keys() and record["status"] == "finished"
        assert record["model"] == name.split("-")[0]
        assert (job / "config.yaml").exists() and (job / "checkpoints" / "last.ckpt").exists()
        acc = EventAccumulator(str(job)).Reload()
        scalars = set(acc.Tags()["scalars"])
        assert {"train/loss", "train/error", "val/loss", "val/error", "test/loss", "test/error", "lr"} <= scalars
        assert acc.Scalars("test/error")[-1].value == pytest.approx(record["test_error"], abs=1e-6)
        # The run's HParams session is the report's, in a file of its own; the sweep's experiment is in the first run.
        [session] = job.glob("events.out.tfevents.*.reslab-session")
        hparams = EventAccumulator(str(session)).Reload().PluginTagToContent("hparams")
        assert "_hparams_/session_start_info" in hparams and "_hparams_/experiment" not in hparams
    [views] = sweep.glob("*/events.out.tfevents.*.reslab-sweep")
    assert views.parent.name == jobs[0] and not list(sweep.glob("events.out.tfevents.*"))  # no stray "." run
    assert "_hparams_/experiment" in EventAccumulator(str(views)).Reload().PluginTagToContent("hparams")
    # Same parameters in both arms: identical counts in the records.
    params = {json.loads((sweep / n / "metrics.json").read_text())["params"] for n in jobs}
    assert len(params) == 1

    # Rerunning the sweep into its directory completes only what is missing.
    shutil.rmtree(sweep / "residual-8_seed0")
    kept = (sweep / "plain-8_seed0" / "metrics.json").stat().st_mtime_ns
    rerun = subprocess.run(
        [*cmd[:-1], f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=240
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (sweep / "plain-8_seed0" / "metrics.json").stat().st_mtime_ns == kept
    assert json.loads((sweep / "residual-8_seed0" / "metrics.json").read_text())["status"] == "finished"
    assert "plain-8_seed0 already finished" in rerun.stderr + rerun.stdout


def test_precision_auto_reads_the_cpu_flags(tmp_path, monkeypatch):
    from reslab.training import accelerator as precision

    native, emulated = tmp_path / "native", tmp_path / "emulated"
    native.write_text("flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    emulated.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert precision.cpu_has_native_bf16(native) and not precision.cpu_has_native_bf16(emulated)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    assert precision.resolve_precision(32, "cpu") == "32-true"
    assert precision.resolve_precision("bf16", "cpu") == "bf16-mixed"


@pytest.mark.slow
def test_paper_experiment_runs_end_to_end_on_cifar_format_files(tmp_path):
    """experiment=paper on small files in the official CIFAR-10 pickle format: 3×32×32 input, crop + flip."""
    from conftest import compose_config
    from test_data_sources import write_cifar10

    write_cifar10(tmp_path / "data", per_batch=20)  # 100 train (90 after the 10% val split), 21 test images
    cfg = compose_config(
        [
            "experiment=paper",
            "dataset.verify_checksums=false",
            f"data_dir={tmp_path / 'data'}",
            "depth=8",
            "model.width=4",
            "dataset.batch_size=16",
            "trainer.max_steps=8",
            "trainer.val_check_interval=4",
            "trainer.log_every_n_steps=1",
            "callbacks.checkpoint.every_n_train_steps=3",
            "callbacks.grad_norms.every_n_steps=2",
            "callbacks.responses.every_n_steps=3",
        ],
        output_dir=tmp_path / "job",
    )
    record = train(cfg)
    assert record["status"] == "finished" and record["dataset"] == "cifar10" and record["image_size"] == 32
    assert record["params"] == count_parameters(CifarNet(8, "A", in_channels=3, num_classes=10, width=4))
    lrs = [round(e.value, 6) for e in EventAccumulator(str(tmp_path / "job")).Reload().Scalars("lr")]
    assert lrs == [0.1] * 4 + [0.01] * 2 + [0.001] * 2  # ÷10 at 50% and 75% of the budget


class CountingClassifier(Classifier):
    """reslab's module, counting its writes of training scalars (chosen through the config's ``module._target_``)."""

    calls: list = []

    def _log_train(self, values, lr, step):
        CountingClassifier.calls.append(step)
        return super()._log_train(values, lr, step)


class LightningLogsEveryStep(Classifier):
    """reslab's module logging the training scalars with Lightning's ``self.log`` on every step, as Lightning's
    examples do, and leaving it to Lightning to drop the steps it does not write."""

    def _is_logging_step(self) -> bool:
        return True

    def _log_train(self, values, lr, step):
        self.log_dict({**values, "lr": lr}, on_step=True, on_epoch=False)


@pytest.mark.slow
def test_training_scalars_are_written_as_lightnings_self_log_writes_them(tiny_cfg, tmp_path):
    # reslab writes the training scalars itself, only on the steps Lightning would write (self.log costs a
    # millisecond per value): the same tags, steps and values. 10 steps, every 4, is not a multiple.
    overrides = ("trainer.max_steps=10", "trainer.log_every_n_steps=4", "trainer.val_check_interval=10")
    tags = ("train/loss", "train/error", "lr", "views/by_depth/8/train_error")

    def written(out):
        acc = EventAccumulator(str(out)).Reload()
        return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}

    CountingClassifier.calls = []
    train(tiny_cfg(*overrides, "module._target_=test_job.CountingClassifier", out=tmp_path / "reslab"))
    ours = written(tmp_path / "reslab")
    train(tiny_cfg(*overrides, "module._target_=test_job.LightningLogsEveryStep", out=tmp_path / "lightning"))
    assert ours == written(tmp_path / "lightning")
    assert [step for step, _ in ours["lr"]] == [3, 7]  # batches 4 and 8; TensorBoard counts from 0
    assert CountingClassifier.calls == [3, 7]  # no write whose values Lightning would drop
