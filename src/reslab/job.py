"""`train(cfg)`: the one function a job runs, in whatever process the launcher gives it.

It builds the run's record from the config, decides whether to reuse a finished run, resume a checkpoint or
refuse one of another experiment, builds data, net, LightningModule and trainer from the config, trains,
validates during training, tests once at the end and returns the final metrics (also in ``metrics.json``).
No argument parsing here: the ``reslab`` command wires Hydra to this function, and tests call it directly.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import DictConfig, OmegaConf

from reslab.data import ImageDataModule, dataset_info
from reslab.errors import UserError
from reslab.files import write_text_atomic
from reslab.jobdir import (
    JobLock,
    check_output_dir,
    check_same_experiment,
    checkpoint_to_resume,
    clear_job_dir,
    finished_record,
    read_record,
)
from reslab.models import build_net, count_parameters
from reslab.record import RunRecord
from reslab.results.tensorboard_views import session_summaries
from reslab.schema import check_ranges
from reslab.training import Classifier, DivergenceGuard, ProgressLog, RunSummary
from reslab.training.checkpoint_io import AtomicCheckpointIO
from reslab.training.device import (
    check_memory,
    compile_mode,
    concurrent_jobs,
    gpu_for_job,
    job_number,
    prepare_net,
    resolve_accelerator,
    resolve_devices,
    resolve_precision,
    set_threads,
    threads_per_process,
)
from reslab.training.global_batchnorm import GlobalBatchNorm
from reslab.training.ranks import check_not_launched_externally, in_a_rank, is_rank_zero, run_ranks
from reslab.training.signals import Interrupted, StopOnSignal
from reslab.training.step_graph import check_cuda_graph, cuda_graph_mode

log = logging.getLogger(__name__)


def instantiate(node: DictConfig, **kwargs):
    """Hydra's ``instantiate``, letting a `UserError` from the constructor reach the user as one line."""
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


def build_job(cfg: DictConfig, identity: dict | None = None) -> tuple[ImageDataModule, Classifier]:
    """Seeded data and system of a job; the data is read now, so missing or corrupt files fail early.
    ``identity`` is stored in the module's checkpoints."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(
        cfg.dataset, data_dir=cfg.data_dir, shuffle_seed=cfg.seed, channels_last=cfg.trainer.channels_last
    )
    info = datamodule.info
    m = cfg.model
    net = build_net(cfg.depth, m.shortcut, info.in_channels, info.num_classes, m.width, m.norm, m.zero_init_residual)
    prepare_net(net, cfg.trainer.channels_last, cfg.trainer.compile)
    datamodule.setup("fit")
    system = instantiate(
        cfg.optim,
        net=net,
        max_steps=cfg.trainer.max_steps,
        identity=identity or {},
        cuda_graph=cfg.trainer.cuda_graph,
        _convert_="all",
    )  # plain containers: checkpoints hold no OmegaConf objects
    return datamodule, system


def configured_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The instruments and guards of ``callbacks`` that name a ``_target_`` (``callbacks.<name>=null`` is off).
    In a run on several devices, callbacks marked ``rank_zero_only`` (the instruments) run on rank 0 only."""
    made = [instantiate(node) for node in cfg.callbacks.values() if node is not None and "_target_" in node]
    return [c for c in made if is_rank_zero() or not getattr(c, "rank_zero_only", False)]


class StepLogger(TensorBoardLogger):
    """TensorBoard with the training step as the only clock: Lightning's ``epoch`` scalar is dropped (an epoch is
    not a unit of these runs, and TensorBoard's Scalars tab would open on it)."""

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        if metrics:
            super().log_metrics(metrics, step)


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
    logger = StepLogger(save_dir=str(out), name="", version="", default_hp_metric=False)
    bar = ProgressLog.wants_bar(t.progress) and is_rank_zero()
    progress = [] if bar or t.progress == "none" or not is_rank_zero() else [ProgressLog(t.progress_every, name)]
    if t.profiler not in (None, "simple"):
        raise UserError(f"unknown trainer.profiler={t.profiler!r}; choose null or simple")
    profiler = SimpleProfiler(dirpath=out, filename="profile") if t.profiler == "simple" else None
    plugins = [AtomicCheckpointIO()]
    if in_a_rank():  # one of the processes reslab started for this run (reslab.training.ranks)
        plugins.append(LightningEnvironment())
    elif SLURMEnvironment.detect():  # preemption is reslab's and submitit's (reslab.training.signals), not Lightning's
        plugins.append(SLURMEnvironment(auto_requeue=False))
    several = t.devices > 1
    if several and t.sync_batchnorm and accelerator == "cpu":  # torch's SyncBatchNorm is GPU-only
        plugins.append(GlobalBatchNorm())
    return L.Trainer(
        max_steps=t.max_steps,
        profiler=profiler,
        plugins=plugins,
        accelerator=accelerator,
        devices=[gpu_for_job(job_number(), concurrent_jobs(), torch.cuda.device_count())]
        if accelerator == "gpu" and not several
        else t.devices,
        strategy="ddp" if several else "auto",
        sync_batchnorm=several and t.sync_batchnorm and accelerator != "cpu",
        use_distributed_sampler=False,  # training batches are split by reslab; every rank evaluates whole splits
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
    record written to ``metrics.json``. Raises `Interrupted` if SIGTERM or SIGINT stopped it (checkpointed)."""
    check_ranges(cfg)
    # Said on any SLURM host when a process was not started by srun: reslab starts a run's processes itself (one per
    # device, reslab.training.ranks), and srun in front of the command would start the whole sweep once per task.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
    record = RunRecord.from_config(cfg)
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.trainer.precision, accelerator)
    devices = resolve_devices(cfg.trainer.devices, cfg.trainer.strategy, accelerator)
    graph = cuda_graph_mode(cfg.trainer.cuda_graph)
    check_cuda_graph(graph, accelerator, devices, precision, compile_mode(cfg.trainer.compile))
    check_not_launched_externally(devices)
    threads = threads_per_process(cfg.trainer.threads, processes=devices if accelerator == "cpu" else 1)
    identity = record.identity(precision)
    info = dataset_info(cfg.dataset.name)
    check_memory(cfg, accelerator, info.in_channels, info.image_size // cfg.dataset.downsample)
    out = Path(cfg.output_dir)
    check_output_dir(out)
    with JobLock(out):
        if cfg.retrain:
            clear_job_dir(out)
        check_same_experiment(out, identity)
        if (done := finished_record(out)) is not None:
            log.info(
                "%s already %s in %s; not retraining (retrain=true trains again)", record.name, done["status"], out
            )
            return done
        if devices > 1:  # one process per device, each running the job below; rank 0 writes metrics.json
            resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # no Hydra in the ranks
            resolved.trainer.threads = threads or "auto"  # each rank's share, decided here where the launcher is known
            job = functools.partial(_fit_and_test, resolved, record, identity, out, accelerator, precision, callbacks)
            run_ranks(job, devices, out, log_file=str(out / "reslab.log"))
            return read_record(out)
        set_threads(threads)
        return _fit_and_test(cfg, record, identity, out, accelerator, precision, callbacks)


def _fit_and_test(cfg, record, identity, out, accelerator, precision, callbacks) -> dict:
    t = cfg.trainer
    resume_from = checkpoint_to_resume(cfg, out, identity)
    log.info("%s: job directory %s", record.name, out)
    if in_a_rank() and t.threads != "auto":
        set_threads(t.threads)
    datamodule, system = build_job(cfg, identity)
    params = count_parameters(system.net)
    if is_rank_zero():
        write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    facts = record.facts(
        identity=identity,
        image_size=datamodule.image_size,
        params=params,
        max_steps=t.max_steps,
        precision=precision,
        accelerator=accelerator,
        channels_last=t.channels_last,
        compile=compile_mode(t.compile),
        devices=t.devices,
        threads=torch.get_num_threads(),
        hparams=record.hparams(params=params, precision=precision),  # the report's TensorBoard experiment
    )
    # At most a tenth of the run, so that a short run's "final" training error is not the mean of the whole run.
    window = max(1, min(cfg.callbacks.summary.train_window, t.max_steps // 10))
    summary = RunSummary(out / "metrics.json", {**facts, "train_window": window}, train_window=window)
    extra = configured_callbacks(cfg)
    guard = next((c for c in extra if isinstance(c, DivergenceGuard)), None)
    stop = StopOnSignal(out / "checkpoints" / "last.ckpt")
    trainer = build_trainer(cfg, out, accelerator, precision, [summary, stop, *extra, *callbacks], record.name)

    if resume_from is not None:
        log.info("%s: resuming from %s", record.name, resume_from)
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    if stop.signum is not None and trainer.global_step < t.max_steps:
        interrupted = Interrupted(stop.signum, out, requeue=stop.requeue)
        summary.write(
            "interrupted", trainer, error=f"stopped by {interrupted.signal_name} at step {trainer.global_step}"
        )
        log.warning(
            "%s: stopped by %s at step %d; checkpointed, rerun to resume",
            record.name,
            interrupted.signal_name,
            trainer.global_step,
        )
        raise interrupted
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
    if trainer.global_step % cfg.callbacks.checkpoint.every_n_steps:
        # The final weights, whatever the checkpoint interval: the analyses (reslab analyze) read them from here.
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")
    if summary.last_val_step != trainer.global_step and t.limit_val_batches != 0:
        trainer.validate(system, datamodule=datamodule, verbose=False)  # the final validation
    trainer.test(system, datamodule=datamodule, verbose=False)
    result = summary.write("finished", trainer)
    final = {
        f"final/{k}": result[k] if result[k] is not None else float("nan")
        for k in ("train_error", "val_error", "test_error")
    }
    # The session's values and end, and the final errors at the last step (the report writes the sweep's experiment).
    trainer.logger.log_metrics(final, step=trainer.global_step)
    if is_rank_zero():
        for summary_pb in session_summaries(record.hparams(params=params, precision=precision)):
            trainer.logger.experiment._get_file_writer().add_summary(summary_pb)
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
