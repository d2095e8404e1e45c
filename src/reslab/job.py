"""`train(cfg)`: the one function a job runs, in whatever process the launcher gives it.

It builds the run's record from the config, decides whether to reuse a finished run, resume a checkpoint or
refuse one of another experiment, builds the run from the config (`reslab.build`), trains, validates during
training, tests once at the end and returns the final metrics (also in ``metrics.json``). No argument parsing
here: the ``reslab`` command wires Hydra to this function, and tests call it directly.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from reslab.build import build_job, build_trainer, configured_callbacks
from reslab.data import dataset_info
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
from reslab.models import count_parameters
from reslab.record import RunRecord
from reslab.schema import check_values
from reslab.signals import Interrupted
from reslab.training import DivergenceGuard, RunSummary
from reslab.training.accelerator import resolve_accelerator, resolve_devices, resolve_precision
from reslab.training.loggers import end_loggers
from reslab.training.memory import check_memory
from reslab.training.net_layout import compile_mode
from reslab.training.placement import set_threads, threads_per_process
from reslab.training.ranks import check_not_launched_externally, in_a_rank, is_rank_zero, run_ranks
from reslab.training.step_graph import check_cuda_graph, cuda_graph_mode
from reslab.training.stop_on_signal import StopOnSignal

log = logging.getLogger(__name__)


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict:
    """Train one job as configured, with ``callbacks`` added to the configured ones; return the final metrics
    record written to ``metrics.json``. Raises `Interrupted` if SIGTERM or SIGINT stopped it (checkpointed)."""
    check_values(cfg)
    # Said on any SLURM host when a process was not started by srun: reslab starts a run's processes itself (one per
    # device, reslab.training.ranks), and srun in front of the command would start the whole sweep once per task.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
    record = RunRecord.from_config(cfg)
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.runtime.precision, accelerator)
    devices = resolve_devices(cfg.trainer.devices, cfg.trainer.strategy, accelerator)
    graph = cuda_graph_mode(cfg.runtime.cuda_graph)
    check_cuda_graph(graph, accelerator, devices, precision, compile_mode(cfg.runtime.compile))
    check_not_launched_externally(devices)
    processes = devices if accelerator == "cpu" else 1
    threads = threads_per_process(cfg.runtime.threads, processes, cfg.launch.concurrent_jobs)
    identity = record.identity(precision)
    info = dataset_info(cfg.dataset.name)
    check_memory(cfg, accelerator, info.in_channels, info.image_size // cfg.dataset.downsample)
    out = Path(cfg.output_dir)
    check_output_dir(out)
    with JobLock(out):
        if cfg.retrain:
            clear_job_dir(out)
        check_same_experiment(cfg, out, identity)
        if (done := finished_record(out)) is not None:
            log.info(
                "%s already %s in %s; not retraining (retrain=true trains again)", record.name, done["status"], out
            )
            return done
        if devices > 1:  # one process per device, each running the job below; rank 0 writes metrics.json
            resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # no Hydra in the ranks
            resolved.runtime.threads = threads or "auto"  # each rank's share, decided here where the launcher is known
            job = functools.partial(_fit_and_test, resolved, record, identity, out, accelerator, precision, callbacks)
            run_ranks(job, devices, out, log_file=str(out / "reslab.log"))
            return read_record(out)
        set_threads(threads)
        return _fit_and_test(cfg, record, identity, out, accelerator, precision, callbacks)


def _fit_and_test(cfg, record, identity, out, accelerator, precision, callbacks) -> dict:
    t, r = cfg.trainer, cfg.runtime
    resume_from = checkpoint_to_resume(cfg, out, identity)
    log.info("%s: job directory %s", record.name, out)
    if in_a_rank() and r.threads != "auto":
        set_threads(r.threads)
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
        channels_last=r.channels_last,
        compile=compile_mode(r.compile),
        devices=t.devices,
        threads=torch.get_num_threads(),
    )
    # At most a tenth of the run, so that a short run's "final" training error is not the mean of the whole run.
    window = max(1, min(cfg.callbacks.summary.train_window, t.max_steps // 10))
    summary = RunSummary(out / "metrics.json", {**facts, "train_window": window}, train_window=window)
    extra = configured_callbacks(cfg)
    guard = next((c for c in extra if isinstance(c, DivergenceGuard)), None)
    stop = StopOnSignal(out / "checkpoints" / "last.ckpt")
    everything = [summary, stop, *extra, *callbacks]
    hparams = record.hparams(params=params)
    trainer = build_trainer(cfg, out, accelerator, precision, everything, record.name, hparams)

    if resume_from is not None:
        log.info("%s: resuming from %s", record.name, resume_from)
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    if stop.signum is not None and trainer.global_step < t.max_steps:
        interrupted = Interrupted(stop.signum, out, requeue=stop.requeue)
        summary.write(
            "interrupted", trainer, error=f"stopped by {interrupted.signal_name} at step {trainer.global_step}"
        )
        end_loggers(trainer.loggers, "interrupted")
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
        result = summary.write(
            "diverged",
            trainer,
            diverged_at_step=guard.diverged_at_step,
            last_finite_loss=guard.last_finite_loss,
            error=f"loss became non-finite at step {guard.diverged_at_step}",
        )
        end_loggers(trainer.loggers, "diverged")
        return result
    if trainer.global_step % cfg.callbacks.checkpoint.every_n_train_steps:
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
    # The final errors at the last step: HParams' metrics (the report writes each run's session and the experiment).
    for logger in trainer.loggers:
        logger.log_metrics(final, step=trainer.global_step)
    end_loggers(trainer.loggers, "finished")
    log.info(
        "%s: train error %.4f, test error %.4f, %d steps, %.0f s",
        record.name,
        result["train_error"],
        result["test_error"],
        result["steps"],
        result["wall_time_s"],
    )
    return result
