"""`train(cfg)`: the one function a job runs. Builds net, data, system and trainer from the config, trains,
validates during training, tests once at the end and returns the final metrics (also in ``metrics.json``).

No argument parsing here: `run.py` wires Hydra to this function, and tests call it directly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from reslab.data import ImageDataModule
from reslab.errors import UserError
from reslab.guard import DivergenceGuard
from reslab.instruments import GradNormMonitor, ResponseMonitor
from reslab.nets import build_net, count_parameters
from reslab.paths import ensure_writable_dir
from reslab.precision import resolve_accelerator, resolve_precision
from reslab.resume import checkpoint_to_resume, run_facts, run_identity
from reslab.speed import compile_mode, prepare_net
from reslab.summary import RunSummary
from reslab.system import Classifier

log = logging.getLogger(__name__)


def check_output_dir(out: Path) -> None:
    try:
        ensure_writable_dir(out)
    except OSError as e:
        raise UserError(f"output directory {out} is not writable ({e.strerror}); "
                        f"point hydra.run.dir / hydra.sweep.dir at a writable path") from None


def finished_record(out: Path) -> dict | None:
    """The metrics of a job that already ended in ``out`` (finished or diverged), if any."""
    path = out / "metrics.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # half-written by a killed run: not finished
        return None
    return record if record.get("status") in ("finished", "diverged") else None


def clear_job_dir(out: Path) -> None:
    """Remove an earlier run's outputs (retrain=true), so nothing of it can be resumed or reported."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    for pattern in ("events.out.tfevents.*", "metrics.json", "grad_norms.npz", "responses.npz", "error.log"):
        for path in out.glob(pattern):
            path.unlink()


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    d = cfg.dataset
    return ImageDataModule(name=d.name, data_dir=cfg.data_dir, batch_size=d.batch_size,
                           eval_batch_size=d.eval_batch_size, val_fraction=d.val_fraction,
                           split_seed=d.split_seed, shuffle_seed=cfg.seed, crop_pad=d.crop_pad, hflip=d.hflip,
                           download=d.download, synthetic_train=d.synthetic_train,
                           synthetic_test=d.synthetic_test, downsample=d.downsample,
                           channels_last=cfg.trainer.channels_last)


def build_system(cfg: DictConfig, net) -> Classifier:
    o = cfg.optim
    return Classifier(net, max_steps=cfg.trainer.max_steps, lr=o.lr, momentum=o.momentum,
                      weight_decay=o.weight_decay, nesterov=o.nesterov, milestones=list(o.milestones),
                      gamma=o.gamma, warmup_lr=o.warmup.lr, warmup_steps=o.warmup.steps,
                      warmup_until_error=o.warmup.until_error, identity=run_identity(cfg))


def hparams(cfg: DictConfig, params: int, precision: str) -> dict:
    """The flat set of hyperparameters shown in TensorBoard's HParams view."""
    return {"model": cfg.model.name, "shortcut": cfg.model.shortcut, "depth": cfg.depth, "width": cfg.model.width,
            "params": params, "dataset": cfg.dataset.name, "seed": cfg.seed,
            "batch_size": cfg.dataset.batch_size, "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay,
            "max_steps": cfg.trainer.max_steps, "warmup_steps": cfg.optim.warmup.steps, "precision": precision,
            "channels_last": cfg.trainer.channels_last, "compile": str(compile_mode(cfg.trainer.compile))}


def describe_environment() -> dict:
    """Facts about where a run happened, for honest numbers."""
    import platform

    import torch
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def instruments(cb: DictConfig, out: Path) -> list[L.Callback]:
    """The measuring callbacks that the config turns on."""
    found = []
    if cb.grad_norms.enabled:
        found.append(GradNormMonitor(cb.grad_norms.every_n_steps, cb.grad_norms.figure_every_n_steps, out))
    if cb.responses.enabled:
        found.append(ResponseMonitor(cb.responses.every_n_steps, cb.responses.figure_every_n_steps, out,
                                     cb.responses.batch_size))
    return found


def build_trainer(cfg: DictConfig, out: Path, accelerator: str, precision: str,
                  callbacks: list[L.Callback]) -> L.Trainer:
    """The Lightning Trainer of a job: TensorBoard in the job directory, checkpoints, step-based validation."""
    t, ck = cfg.trainer, cfg.callbacks.checkpoint
    # monitor="step": keep the newest `keep` periodic checkpoints (Lightning needs a monitor for keep > 1).
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="step{step}", auto_insert_metric_name=False,
                                 every_n_train_steps=ck.every_n_steps, save_last=True, save_top_k=ck.keep,
                                 monitor="step", mode="max")
    logger = TensorBoardLogger(save_dir=str(out), name="", version="", default_hp_metric=False)
    return L.Trainer(
        max_steps=t.max_steps, accelerator=accelerator, devices=1, precision=precision, logger=logger,
        callbacks=[*callbacks, checkpoint], val_check_interval=min(t.val_every_n_steps, t.max_steps),
        check_val_every_n_epoch=None, log_every_n_steps=t.log_every_n_steps, num_sanity_val_steps=0,
        enable_progress_bar=t.progress_bar, enable_model_summary=False, limit_val_batches=t.limit_val_batches,
        benchmark=t.cudnn_benchmark, default_root_dir=str(out))


def build_job(cfg: DictConfig) -> tuple[ImageDataModule, Classifier]:
    """Seeded data and system of a job; the data is read now, so missing or corrupt files fail early."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    info = datamodule.info
    net = build_net(cfg.depth, cfg.model.shortcut, info.in_channels, info.num_classes, cfg.model.width)
    prepare_net(net, cfg.trainer.channels_last, cfg.trainer.compile)
    datamodule.setup("fit")
    return datamodule, build_system(cfg, net)


def train(cfg: DictConfig) -> dict:
    """Train one job as configured; return the final metrics record written to ``metrics.json``."""
    t = cfg.trainer
    if t.max_steps <= 0:
        raise UserError(f"trainer.max_steps must be positive, got {t.max_steps}")
    accelerator = resolve_accelerator(t.accelerator)
    precision = resolve_precision(t.precision, accelerator)
    out = Path(cfg.output_dir)
    check_output_dir(out)
    if (done := finished_record(out)) is not None and not cfg.retrain:
        log.info("%s already %s in %s; not retraining (retrain=true trains again)", cfg.run_name, done["status"], out)
        return done
    if cfg.retrain:
        clear_job_dir(out)
    resume_from = checkpoint_to_resume(cfg, out)

    datamodule, system = build_job(cfg)
    params = count_parameters(system.net)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    facts = {**run_facts(cfg), "image_size": datamodule.image_size, "params": params, "max_steps": t.max_steps, "precision": precision, "accelerator": accelerator,
             "channels_last": t.channels_last, "compile": compile_mode(t.compile), "environment": describe_environment()}
    summary = RunSummary(out / "metrics.json", facts, train_window=cfg.callbacks.summary.train_window)
    guard = DivergenceGuard(cfg.callbacks.divergence.check_every_n_steps)
    trainer = build_trainer(cfg, out, accelerator, precision, [summary, guard, *instruments(cfg.callbacks, out)])

    if resume_from is not None:
        log.info("%s: resuming from %s", cfg.run_name, resume_from)
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    if guard.diverged_at_step is not None:
        log.warning("%s diverged at step %d (last finite loss %s)", cfg.run_name, guard.diverged_at_step,
                    guard.last_finite_loss)
        return summary.write("diverged", trainer, diverged_at_step=guard.diverged_at_step,
                             last_finite_loss=guard.last_finite_loss,
                             error=f"loss became non-finite at step {guard.diverged_at_step}")
    if summary.last_val_step != trainer.global_step and t.limit_val_batches != 0:
        trainer.validate(system, datamodule=datamodule, verbose=False)  # the final validation
    trainer.test(system, datamodule=datamodule, verbose=False)
    record = summary.write("finished", trainer)
    final = {f"final/{k}": record[k] if record[k] is not None else float("nan")
             for k in ("train_error", "val_error", "test_error")}
    trainer.logger.log_hyperparams(hparams(cfg, params, precision), final)  # TensorBoard's HParams view
    trainer.logger.finalize("success")
    log.info("%s: train error %.4f, test error %.4f, %d steps, %.0f s", cfg.run_name, record["train_error"],
             record["test_error"], record["steps"], record["wall_time_s"])
    return record
