"""The config's typed schema: every key and its type, checked by Hydra when it composes the config.

`conf/config.yaml` lists ``reslab_schema`` first in its defaults, so the YAML files and every ``key=value``
merge into these dataclasses: a value of the wrong type (``trainer.max_steps=abc``) fails at composition,
before any job starts, and `check_ranges` adds what a type cannot say (``max_steps`` must be positive). The
``reslab`` command composes each job's config before handing the command line to Hydra, so both reach the
user as one line. Keys whose values are of several kinds (``compile: false | default | ...``) are ``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from reslab.errors import UserError


@dataclass
class ModelConfig:
    name: str = MISSING
    shortcut: str = MISSING
    width: int = 16
    norm: str = "batch"
    zero_init_residual: bool = False


@dataclass
class DatasetConfig:
    _target_: str = "reslab.data.ImageDataModule"
    name: str = MISSING
    batch_size: int = 128
    eval_batch_size: int = 500
    val_fraction: float = 0.1
    split_seed: int = 0
    crop_pad: int = 0
    hflip: bool = False
    download: bool = True
    downsample: int = 1
    limit_train_batches: int | None = None
    verify_checksums: bool = True
    synthetic_train: int = 2048
    synthetic_test: int = 512


@dataclass
class WarmupConfig:
    _target_: str = "reslab.training.Warmup"
    lr: float = 0.01
    steps: int = 0
    until_error: float | None = None


@dataclass
class OptimConfig:
    _target_: str = "reslab.training.Classifier"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1
    warmup: WarmupConfig = field(default_factory=WarmupConfig)


@dataclass
class TrainerConfig:
    max_steps: int = 600
    val_every_n_steps: int = 150
    limit_val_batches: Any = 4  # int: batches; float: a share of the set
    log_every_n_steps: int = 5
    accelerator: str = "auto"
    precision: Any = "auto"  # auto | 32 | bf16 | 16
    channels_last: bool = True
    cudnn_benchmark: bool = True
    compile: Any = False  # false | a torch.compile mode
    cuda_graph: Any = False  # false | true | eager
    progress: str = "auto"
    progress_every: float = 5.0
    profiler: str | None = None
    devices: int = 1
    strategy: str = "auto"
    sync_batchnorm: bool = True
    threads: Any = "auto"  # auto | a number of torch threads


@dataclass
class CheckpointConfig:
    every_n_steps: int = 100
    keep: int = 1


@dataclass
class SummaryConfig:
    train_window: int = 50


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    # Instruments and guards: `_target_` plus their arguments; null turns one off.
    grad_norms: Any = None
    responses: Any = None
    divergence: Any = None


@dataclass
class ReslabConfig:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    callbacks: CallbacksConfig = MISSING
    depth: int = 20
    seed: int = 0
    data_dir: str = "data"
    retrain: bool = False
    resume: str | None = None
    sweep_keys: list[str] = field(default_factory=list)
    output_dir: str = MISSING


def register() -> None:
    ConfigStore.instance().store(name="reslab_schema", node=ReslabConfig)


register()  # on import, before Hydra composes: conf/config.yaml names it in its defaults

# (key, test, what it must be): what a type cannot say, checked on every composed job.
RANGES = [
    ("seed", lambda v: v >= 0, "a non-negative integer"),
    ("model.width", lambda v: v >= 1, "a positive number of filters"),
    ("trainer.max_steps", lambda v: v >= 1, "a positive number of steps"),
    ("trainer.val_every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("trainer.progress_every", lambda v: 0 < v <= 100, "a percentage in (0, 100]"),
    ("trainer.devices", lambda v: v >= 1, "a positive number of devices"),
    ("dataset.batch_size", lambda v: v >= 1, "a positive number of images"),
    ("dataset.eval_batch_size", lambda v: v >= 1, "a positive number of images"),
    ("dataset.val_fraction", lambda v: 0 <= v < 1, "a share in [0, 1)"),
    ("dataset.crop_pad", lambda v: v >= 0, "a non-negative number of pixels"),
    ("optim.lr", lambda v: v > 0, "a positive learning rate"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, "non-negative"),
    ("optim.gamma", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    ("optim.warmup.steps", lambda v: v >= 0, "a non-negative number of steps"),
    ("callbacks.checkpoint.every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.checkpoint.keep", lambda v: v >= -1, "-1 (all), 0 or a positive number"),
    ("callbacks.summary.train_window", lambda v: v >= 1, "a positive number of batches"),
    ("callbacks.grad_norms.every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.grad_norms.figure_every_n_steps", lambda v: v >= 0, "a number of steps (0 = no figures)"),
    ("callbacks.responses.every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.responses.figure_every_n_steps", lambda v: v >= 0, "a number of steps (0 = only at the end)"),
    ("callbacks.responses.batch_size", lambda v: v >= 1, "a positive number of images"),
    ("callbacks.divergence.check_every_n_steps", lambda v: v >= 1, "a positive number of steps"),
]


def check_ranges(cfg: DictConfig) -> None:
    """A `UserError` naming the first key whose value is out of its range."""
    from omegaconf import OmegaConf

    for key, ok, what in RANGES:
        value = OmegaConf.select(cfg, key)
        if value is not None and not ok(value):
            raise UserError(f"{key}={value} is out of range: it must be {what}")
    from reslab.models import blocks_per_stage

    blocks_per_stage(cfg.depth)  # 6n+2, or a UserError naming the nearest valid depths
    from reslab.training.device import check_strategy, check_threads

    check_strategy(cfg.trainer.strategy)
    check_threads(cfg.trainer.threads)
    if cfg.dataset.batch_size % cfg.trainer.devices:
        raise UserError(
            f"dataset.batch_size={cfg.dataset.batch_size} does not split evenly across "
            f"trainer.devices={cfg.trainer.devices}; choose a batch size that is a multiple of {cfg.trainer.devices}"
        )
    if any(not 0 < m < 1 for m in cfg.optim.milestones):
        raise UserError(
            f"optim.milestones={list(cfg.optim.milestones)}: each must be a fraction of "
            f"trainer.max_steps in (0, 1), e.g. [0.5,0.75]"
        )
