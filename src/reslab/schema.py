"""The config's typed schema: every key and its type, checked by Hydra when it composes the config.

`conf/config.yaml` lists ``reslab_schema`` first in its defaults, so the YAML files and every ``key=value``
merge into these dataclasses: a value of the wrong type (``trainer.max_steps=abc``) fails at composition,
before any job starts, and `check_values` adds what a type cannot say (``max_steps`` must be positive). The
``reslab`` command composes each job's config before handing the command line to Hydra, so both reach the
user as one line. Keys whose values are of several kinds (``compile: false | default | ...``) are ``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from reslab.errors import UserError


# Types only: every value comes from the YAML in conf/ (the one place defaults live), so a key missing there fails
# at composition instead of taking a second, silent default from here.
@dataclass
class ModelConfig:
    _target_: str = MISSING
    name: str = MISSING
    shortcut: str = MISSING
    width: int = MISSING
    norm: str = MISSING
    zero_init_residual: bool = MISSING


@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    val_fraction: float = MISSING
    split_seed: int = MISSING
    crop_pad: int = MISSING
    hflip: bool = MISSING
    download: bool = MISSING
    downsample: int = MISSING
    limit_train_batches: int | None = MISSING
    verify_checksums: bool = MISSING
    synthetic_train: int = MISSING
    synthetic_test: int = MISSING


@dataclass
class OptimConfig:  # torch's SGD, partially applied (the net's parameters come later)
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    nesterov: bool = MISSING


@dataclass
class WarmupConfig:
    _target_: str = MISSING
    lr: float = MISSING
    steps: int = MISSING
    until_error: float | None = MISSING


@dataclass
class ScheduleConfig:
    _target_: str = MISSING
    milestones: list[float] = MISSING
    gamma: float = MISSING
    warmup: WarmupConfig = MISSING


@dataclass
class TrainerConfig:  # Lightning's Trainer arguments
    max_steps: int = MISSING
    val_check_interval: int = MISSING
    limit_val_batches: Any = MISSING  # int: batches; float: a share of the set
    log_every_n_steps: int = MISSING
    accelerator: str = MISSING
    devices: int = MISSING
    strategy: str = MISSING
    sync_batchnorm: bool = MISSING
    benchmark: bool = MISSING


@dataclass
class RuntimeConfig:  # reslab's own settings of how a job runs
    precision: Any = MISSING  # auto | 32 | bf16 | 16
    threads: Any = MISSING  # auto | a number of torch threads
    channels_last: bool = MISSING
    compile: Any = MISSING  # false | a torch.compile mode
    cuda_graph: Any = MISSING  # false | true | eager
    progress: str = MISSING
    progress_every: float = MISSING
    profiler: str | None = MISSING


@dataclass
class CheckpointConfig:  # Lightning's ModelCheckpoint arguments
    _target_: str = MISSING
    every_n_train_steps: int = MISSING
    save_top_k: int = MISSING
    save_last: bool = MISSING
    filename: str = MISSING
    auto_insert_metric_name: bool = MISSING
    monitor: str = MISSING
    mode: str = MISSING


@dataclass
class SummaryConfig:
    train_window: int = MISSING


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = MISSING
    summary: SummaryConfig = MISSING
    # Instruments and guards: `_target_` plus their arguments; null turns one off.
    grad_norms: Any = None
    responses: Any = None
    divergence: Any = None
    signal: Any = None  # off unless chosen (callbacks=[default,signal])


@dataclass
class ModuleConfig:
    _target_: str = MISSING


@dataclass
class LaunchConfig:
    job_number: int = MISSING
    concurrent_jobs: int = MISSING
    cwd: str = MISSING
    choices: dict[str, Any] = MISSING


@dataclass
class ReslabConfig:
    model: ModelConfig = MISSING
    module: ModuleConfig = MISSING
    dataset: DatasetConfig = MISSING
    optim: OptimConfig = MISSING
    schedule: ScheduleConfig = MISSING
    trainer: TrainerConfig = MISSING
    runtime: RuntimeConfig = MISSING
    callbacks: CallbacksConfig = MISSING
    logger: Any = None  # name -> a Lightning logger's node (conf/logger/); None or {}: none besides curves.csv
    depth: int = MISSING
    seed: int = MISSING
    data_dir: str = MISSING
    retrain: bool = MISSING
    resume: str | None = MISSING
    sweep_keys: list[str] = MISSING
    output_dir: str = MISSING
    launch: LaunchConfig = MISSING


def register() -> None:
    ConfigStore.instance().store(name="reslab_schema", node=ReslabConfig)


register()  # on import, before Hydra composes: conf/config.yaml names it in its defaults

# (key, test, what it must be): what a type cannot say, checked on every composed job.
RANGES = [
    ("seed", lambda v: v >= 0, "a non-negative integer"),
    ("model.width", lambda v: v >= 1, "a positive number of filters"),
    ("trainer.max_steps", lambda v: v >= 1, "a positive number of steps"),
    ("trainer.val_check_interval", lambda v: v >= 1, "a positive number of steps"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("runtime.progress_every", lambda v: 0 < v <= 100, "a percentage in (0, 100]"),
    ("trainer.devices", lambda v: v >= 1, "a positive number of devices"),
    ("dataset.batch_size", lambda v: v >= 1, "a positive number of images"),
    ("dataset.eval_batch_size", lambda v: v >= 1, "a positive number of images"),
    ("dataset.val_fraction", lambda v: 0 <= v < 1, "a share in [0, 1)"),
    ("dataset.crop_pad", lambda v: v >= 0, "a non-negative number of pixels"),
    ("dataset.limit_train_batches", lambda v: v >= 1, "a positive number of batches, or null for all"),
    ("dataset.downsample", lambda v: v >= 1, "a whole factor of the images' size, 1 for the native size"),
    ("optim.lr", lambda v: v > 0, "a positive learning rate"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, "non-negative"),
    ("schedule.gamma", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    ("schedule.warmup.steps", lambda v: v >= 0, "a non-negative number of steps"),
    ("callbacks.checkpoint.every_n_train_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.checkpoint.save_top_k", lambda v: v >= -1, "-1 (all), 0 or a positive number"),
    ("callbacks.summary.train_window", lambda v: v >= 1, "a positive number of batches"),
    ("callbacks.grad_norms.every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.grad_norms.figure_every_n_steps", lambda v: v >= 0, "a number of steps (0 = no figures)"),
    ("callbacks.responses.every_n_steps", lambda v: v >= 1, "a positive number of steps"),
    ("callbacks.responses.figure_every_n_steps", lambda v: v >= 0, "a number of steps (0 = only at the end)"),
    ("callbacks.responses.batch_size", lambda v: v >= 1, "a positive number of images"),
    ("callbacks.divergence.check_every_n_steps", lambda v: v >= 1, "a positive number of steps"),
]


# key -> the values it may take, as the user writes them (a YAML false/true/32 is compared as "false"/"true"/"32").
CHOICES = {
    "model.shortcut": ("none", "A", "B"),
    "model.norm": ("batch", "none"),
    "trainer.accelerator": ("auto", "cpu", "gpu"),
    "runtime.precision": ("auto", "32", "bf16", "16"),
    "trainer.strategy": ("auto", "ddp"),
    "runtime.compile": ("false", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "runtime.cuda_graph": ("false", "true", "eager"),
    "runtime.progress": ("auto", "bar", "log", "none"),
    "runtime.profiler": ("null", "simple"),
}
# Why a choice is refused, where the list alone does not say it.
CHOICE_NOTES = {
    "trainer.strategy": "reslab starts the processes itself, so Lightning's ddp_spawn and its re-run of the command "
    "line are not used",
}


def spelled(value: object) -> str:
    """A config value as the user writes it: False -> "false", None -> "null", 32 -> "32"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def check_choice(key: str, value: object) -> str:
    """``value`` as spelled, or a `UserError` naming ``key``'s choices."""
    word = spelled(value)
    if word in ("off", "none") and "false" in CHOICES[key]:  # the older spellings of false
        word = "false"
    if word not in CHOICES[key]:
        note = f" ({CHOICE_NOTES[key]})" if key in CHOICE_NOTES else ""
        raise UserError(f"unknown {key}={value!r}; choose one of: {', '.join(CHOICES[key])}{note}")
    return word


def check_depth(depth: object) -> int:
    """``n`` for a depth of ``6n + 2`` (blocks per stage); a `UserError` naming the nearest valid depths otherwise."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise UserError(f"depth must be an integer of the form 6n+2 (8, 14, 20, ..., 110), got {depth!r}")
    if depth >= 8 and (depth - 2) % 6 == 0:
        return (depth - 2) // 6
    lower = max(8, (depth - 2) // 6 * 6 + 2)
    upper = max(8, lower + 6 if lower < depth else lower)
    near = f"depths are {lower} or {upper}" if lower != upper else f"depth is {lower}"
    raise UserError(f"depth={depth} is not 6n+2 with n >= 1; the nearest valid {near}")


def check_threads(setting: object) -> None:
    if setting != "auto" and not (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1):
        raise UserError(f"runtime.threads={setting!r}: choose auto or a positive number of threads")


def check_values(cfg: DictConfig) -> None:
    """A `UserError` naming the first key whose value is not allowed: the one place a config's values are checked
    (what the types above cannot say), before any job starts and again in each job."""
    for key, ok, what in RANGES:
        value = OmegaConf.select(cfg, key)
        if value is not None and not ok(value):
            raise UserError(f"{key}={value} is out of range: it must be {what}")
    for key in CHOICES:
        check_choice(key, OmegaConf.select(cfg, key))
    check_depth(cfg.depth)
    check_threads(cfg.runtime.threads)
    if cfg.model.zero_init_residual and cfg.model.shortcut == "none":
        raise UserError(
            "model.zero_init_residual=true needs a residual arm: a plain block has no shortcut, so zeroing its "
            "last layer would cut the net; use model=residual or zero_init_residual=false"
        )
    if cfg.dataset.batch_size % cfg.trainer.devices:
        raise UserError(
            f"dataset.batch_size={cfg.dataset.batch_size} does not split evenly across "
            f"trainer.devices={cfg.trainer.devices}; choose a batch size that is a multiple of {cfg.trainer.devices}"
        )
    if any(not 0 < m < 1 for m in cfg.schedule.milestones):
        raise UserError(
            f"schedule.milestones={list(cfg.schedule.milestones)}: each must be a fraction of "
            f"trainer.max_steps in (0, 1), e.g. [0.5,0.75]"
        )
