"""A run's objects from its composed config: data, net, LightningModule, callbacks and trainer.

The one place the config becomes objects; training (`reslab.job`), the analyses and the bench all build through it.
Each node that names a ``_target_`` is built by Hydra's `instantiate` (the data module, the net, the optimiser as
a partial, the schedule, the instruments, the checkpoint callback); what reslab adds is what the config cannot know:
the job directory, the data's channels and classes, and the accelerator and precision as resolved on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import DictConfig, OmegaConf
from torch import nn

from reslab.data import ImageDataModule
from reslab.errors import UserError
from reslab.schema import check_choice
from reslab.training import Classifier, ProgressLog
from reslab.training.checkpoint_io import AtomicCheckpointIO
from reslab.training.global_batchnorm import GlobalBatchNorm
from reslab.training.loggers import CurveLog
from reslab.training.net_layout import prepare_net
from reslab.training.placement import gpu_for_job
from reslab.training.ranks import in_a_rank, is_rank_zero

# The net of a config.yaml written before the model node named its class (runs kept in experiments/, users' sweeps).
EARLIER_NET = "reslab.models.CifarNet"


def instantiate(node: DictConfig, **kwargs):
    """Hydra's ``instantiate``, letting a `UserError` from the constructor reach the user as one line."""
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


def build_net(cfg: DictConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The run's net as its ``model`` node names it, initialised from the torch generator's current state."""
    node = cfg.model if "_target_" in cfg.model else OmegaConf.merge({"_target_": EARLIER_NET}, cfg.model)
    return instantiate(node, depth=cfg.depth, in_channels=in_channels, num_classes=num_classes)


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    return instantiate(
        cfg.dataset, data_dir=cfg.data_dir, shuffle_seed=cfg.seed, channels_last=cfg.runtime.channels_last
    )


def build_job(cfg: DictConfig, identity: dict | None = None) -> tuple[ImageDataModule, Classifier]:
    """Seeded data and system of a job; the data is read now, so missing or corrupt files fail early.
    ``identity`` is stored in the module's checkpoints."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    info = datamodule.info
    net = build_net(cfg, info.in_channels, info.num_classes)
    prepare_net(net, cfg.runtime.channels_last, cfg.runtime.compile)
    datamodule.setup("fit")
    module = instantiate(cfg.module, _partial_=True)  # called here: Hydra would turn the objects into containers
    system = module(
        net=net,
        optimizer=instantiate(cfg.optim),
        max_steps=cfg.trainer.max_steps,
        schedule=instantiate(cfg.schedule, _convert_="all"),  # plain containers: checkpoints hold no OmegaConf
        identity=identity or {},
        cuda_graph=cfg.runtime.cuda_graph,
    )
    return datamodule, system


def configured_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The instruments and guards of ``callbacks`` that name a ``_target_`` (``callbacks.<name>=null`` is off), the
    checkpoint callback apart (`build_trainer` gives it the job directory). In a run on several devices, callbacks
    marked ``rank_zero_only`` (the instruments) run on rank 0 only."""
    nodes = [node for name, node in cfg.callbacks.items() if name != "checkpoint" and node is not None]
    made = [instantiate(node) for node in nodes if "_target_" in node]
    return [c for c in made if is_rank_zero() or not getattr(c, "rank_zero_only", False)]


def build_loggers(cfg: DictConfig, out: Path, name: str, hparams: dict | None) -> list[Logger]:
    """``curves.csv`` (every job's, `CurveLog`), then the loggers the ``logger`` group names, each given the job
    directory, the run's name and its HParams."""
    nodes = cfg.get("logger") or {}
    made = [instantiate(node, job_dir=str(out), run_name=name, hparams=hparams or {}) for node in nodes.values()]
    return [CurveLog(out), *made]


def build_trainer(
    cfg: DictConfig,
    out: Path,
    accelerator: str,
    precision: str,
    callbacks: Sequence[L.Callback],
    name: str = "",
    hparams: dict | None = None,
) -> L.Trainer:
    """The Lightning Trainer of a job: the ``trainer`` node's arguments, the loggers (`build_loggers`) and
    checkpoints in the job directory, step-based validation, and the device and precision as resolved on this
    machine. ``name`` and ``hparams`` name and describe the run to the loggers."""
    t, r = cfg.trainer, cfg.runtime
    checkpoint = instantiate(cfg.callbacks.checkpoint, dirpath=out / "checkpoints")
    bar = ProgressLog.wants_bar(r.progress) and is_rank_zero()
    progress = [] if bar or r.progress == "none" or not is_rank_zero() else [ProgressLog(r.progress_every, name)]
    check_choice("runtime.profiler", r.profiler)
    plugins = [AtomicCheckpointIO()]
    if in_a_rank():  # one of the processes reslab started for this run (reslab.training.ranks)
        plugins.append(LightningEnvironment())
    elif SLURMEnvironment.detect():  # preemption is reslab's and submitit's (reslab.signals), not Lightning's
        plugins.append(SLURMEnvironment(auto_requeue=False))
    several = t.devices > 1
    if several and t.sync_batchnorm and accelerator == "cpu":  # torch's SyncBatchNorm is GPU-only
        plugins.append(GlobalBatchNorm())
    one_gpu = gpu_for_job(cfg.launch.job_number, cfg.launch.concurrent_jobs, torch.cuda.device_count())
    args = OmegaConf.to_container(t)  # Lightning's own arguments; those resolved here replace theirs
    args.update(
        accelerator=accelerator,
        devices=[one_gpu] if accelerator == "gpu" and not several else t.devices,
        strategy="ddp" if several else "auto",
        sync_batchnorm=several and t.sync_batchnorm and accelerator != "cpu",
        val_check_interval=min(t.val_check_interval, t.max_steps),
    )
    return L.Trainer(
        **args,
        precision=precision,
        profiler=SimpleProfiler(dirpath=out, filename="profile") if r.profiler == "simple" else None,
        plugins=plugins,
        logger=build_loggers(cfg, out, name, hparams),
        callbacks=[*callbacks, *progress, checkpoint],
        check_val_every_n_epoch=None,  # validation is counted in steps
        use_distributed_sampler=False,  # training batches are split by reslab; every rank evaluates whole splits
        num_sanity_val_steps=0,
        enable_progress_bar=bar,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
