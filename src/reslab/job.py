"""`train(cfg)`: the one function a job runs, in whatever process the launcher gives it.

It builds the run's record from the config, decides whether to reuse a finished run, resume a checkpoint or
refuse one of another experiment, builds data, net, LightningModule and trainer from the config, trains,
validates during training, tests once at the end and returns the final metrics (also in ``metrics.json``).
No argument parsing here: the ``reslab`` command wires Hydra to this function, and tests call it directly.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import DictConfig, OmegaConf

from reslab.data import ImageDataModule
from reslab.errors import UserError
from reslab.files import ensure_writable_dir, write_json_atomic
from reslab.models import build_net, count_parameters
from reslab.record import RunRecord
from reslab.schema import check_ranges
from reslab.training import Classifier, DivergenceGuard, ProgressLog, RunSummary
from reslab.training.device import compile_mode, prepare_net, resolve_accelerator, resolve_precision

log = logging.getLogger(__name__)

# Files a job writes; retrain=true removes them before training again.
JOB_FILES = ("events.out.tfevents.*", "metrics.json", "grad_norms.npz", "responses.npz", "error.log")


def instantiate(node: DictConfig, **kwargs):
    """Hydra's ``instantiate``, letting a `UserError` from the constructor reach the user as one line."""
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


def build_job(cfg: DictConfig, record: RunRecord | None = None) -> tuple[ImageDataModule, Classifier]:
    """Seeded data and system of a job; the data is read now, so missing or corrupt files fail early."""
    record = record or RunRecord.from_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(
        cfg.dataset, data_dir=cfg.data_dir, shuffle_seed=cfg.seed, channels_last=cfg.trainer.channels_last
    )
    info = datamodule.info
    net = build_net(cfg.depth, cfg.model.shortcut, info.in_channels, info.num_classes, cfg.model.width)
    prepare_net(net, cfg.trainer.channels_last, cfg.trainer.compile)
    datamodule.setup("fit")
    system = instantiate(
        cfg.optim, net=net, max_steps=cfg.trainer.max_steps, identity=record.identity, _convert_="all"
    )  # plain containers: checkpoints hold no OmegaConf objects
    return datamodule, system


def configured_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The instruments and guards of ``callbacks`` that name a ``_target_`` (``callbacks.<name>=null`` is off)."""
    return [instantiate(node) for node in cfg.callbacks.values() if node is not None and "_target_" in node]


def build_trainer(
    cfg: DictConfig, out: Path, accelerator: str, precision: str, callbacks: Sequence[L.Callback], name: str = ""
) -> L.Trainer:
    """The Lightning Trainer of a job: TensorBoard in the job directory, checkpoints, step-based validation."""
    t, ck = cfg.trainer, cfg.callbacks.checkpoint
    # monitor="step": keep the newest `keep` periodic checkpoints (Lightning needs a monitor for keep > 1).
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="step{step}",
        auto_insert_metric_name=False,
        every_n_train_steps=ck.every_n_steps,
        save_last=True,
        save_top_k=ck.keep,
        monitor="step",
        mode="max",
    )
    logger = TensorBoardLogger(save_dir=str(out), name="", version="", default_hp_metric=False)
    bar = ProgressLog.wants_bar(t.progress)
    progress = [] if bar or t.progress == "none" else [ProgressLog(t.progress_every, name)]
    if t.profiler not in (None, "simple"):
        raise UserError(f"unknown trainer.profiler={t.profiler!r}; choose null or simple")
    profiler = SimpleProfiler(dirpath=out, filename="profile") if t.profiler == "simple" else None
    return L.Trainer(
        max_steps=t.max_steps,
        profiler=profiler,
        accelerator=accelerator,
        devices=1,
        precision=precision,
        logger=logger,
        callbacks=[*callbacks, *progress, checkpoint],
        val_check_interval=min(t.val_every_n_steps, t.max_steps),
        check_val_every_n_epoch=None,
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        enable_progress_bar=bar,
        enable_model_summary=False,
        limit_val_batches=t.limit_val_batches,
        benchmark=t.cudnn_benchmark,
        default_root_dir=str(out),
    )


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict:
    """Train one job as configured, with ``callbacks`` added to the configured ones; return the final metrics
    record written to ``metrics.json``."""
    check_ranges(cfg)
    record = RunRecord.from_config(cfg)
    t = cfg.trainer
    accelerator = resolve_accelerator(t.accelerator)
    precision = resolve_precision(t.precision, accelerator)
    out = Path(cfg.output_dir)
    check_output_dir(out)
    if (done := finished_record(out)) is not None and not cfg.retrain:
        log.info("%s already %s in %s; not retraining (retrain=true trains again)", record.name, done["status"], out)
        return done
    if cfg.retrain:
        clear_job_dir(out)
    resume_from = checkpoint_to_resume(cfg, out, record.identity)

    datamodule, system = build_job(cfg, record)
    params = count_parameters(system.net)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    facts = record.facts(
        image_size=datamodule.image_size,
        params=params,
        max_steps=t.max_steps,
        precision=precision,
        accelerator=accelerator,
        channels_last=t.channels_last,
        compile=compile_mode(t.compile),
    )
    summary = RunSummary(out / "metrics.json", facts, train_window=cfg.callbacks.summary.train_window)
    extra = configured_callbacks(cfg)
    guard = next((c for c in extra if isinstance(c, DivergenceGuard)), None)
    trainer = build_trainer(cfg, out, accelerator, precision, [summary, *extra, *callbacks], record.name)

    if resume_from is not None:
        log.info("%s: resuming from %s", record.name, resume_from)
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    if guard is not None and guard.diverged_at_step is not None:
        log.warning(
            "%s diverged at step %d (last finite loss %s)", record.name, guard.diverged_at_step, guard.last_finite_loss
        )
        return summary.write(
            "diverged",
            trainer,
            diverged_at_step=guard.diverged_at_step,
            last_finite_loss=guard.last_finite_loss,
            error=f"loss became non-finite at step {guard.diverged_at_step}",
        )
    if summary.last_val_step != trainer.global_step and t.limit_val_batches != 0:
        trainer.validate(system, datamodule=datamodule, verbose=False)  # the final validation
    trainer.test(system, datamodule=datamodule, verbose=False)
    result = summary.write("finished", trainer)
    final = {
        f"final/{k}": result[k] if result[k] is not None else float("nan")
        for k in ("train_error", "val_error", "test_error")
    }
    trainer.logger.log_hyperparams(record.hparams(params=params, precision=precision), final)
    trainer.logger.finalize("success")
    log.info(
        "%s: train error %.4f, test error %.4f, %d steps, %.0f s",
        record.name,
        result["train_error"],
        result["test_error"],
        result["steps"],
        result["wall_time_s"],
    )
    return result


def record_failure(cfg: DictConfig, error_line: str, tb: str) -> Path | None:
    """Write ``metrics.json`` (status failed) and ``error.log`` into the job directory, if it is writable."""
    try:
        out = Path(cfg.output_dir)
        (out / "error.log").write_text(tb)
        record = {
            **RunRecord.from_config(cfg).facts(),
            "status": "failed",
            "error": error_line,
            "traceback": str(out / "error.log"),
        }
        metrics = out / "metrics.json"
        if metrics.exists():  # keep what the run had measured before it failed
            record = {**json.loads(metrics.read_text()), **record}
        write_json_atomic(metrics, record)
        return out / "error.log"
    except Exception:  # the failure may be the unwritable directory itself
        return None


def check_output_dir(out: Path) -> None:
    try:
        ensure_writable_dir(out)
    except OSError as e:
        raise UserError(
            f"output directory {out} is not writable ({e.strerror}); "
            f"point hydra.run.dir / hydra.sweep.dir at a writable path"
        ) from None


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
    for pattern in JOB_FILES:
        for path in out.glob(pattern):
            path.unlink()


def checkpoint_to_resume(cfg: DictConfig, out: Path, identity: dict) -> Path | None:
    """``resume=<path>``, else the job directory's ``checkpoints/last.ckpt`` if there is one; refused in one
    line if it is unreadable or from a different experiment."""
    if cfg.resume:
        path = Path(cfg.resume)
        if not path.is_file():
            raise UserError(
                f"resume={cfg.resume}: no such checkpoint file; pass a .ckpt path, e.g. <job dir>/checkpoints/last.ckpt"
            )
    else:
        path = out / "checkpoints" / "last.ckpt"
        if not path.exists():
            return None
    check_compatible(path, identity)
    return path


def check_compatible(path: Path, identity: dict) -> None:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        saved = checkpoint["reslab_identity"]
    except Exception as e:
        raise UserError(
            f"checkpoint {path} cannot be read ({type(e).__name__}); it is corrupt or not a reslab "
            f"checkpoint: delete it to start over, or pass another with resume=<path>"
        ) from None
    differ = [f"{k}={saved.get(k)!r} (this run: {identity[k]!r})" for k in identity if saved.get(k) != identity[k]]
    if differ:
        raise UserError(
            f"checkpoint {path} is from a different experiment: {', '.join(differ)}; "
            f"use another output directory or resume= path"
        )
