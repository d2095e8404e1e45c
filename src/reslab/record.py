"""`RunRecord`: what a run is, built once from the job's own composed config.

Everything that names or describes a run derives from it: the job directory's name, the static facts in
``metrics.json``, the identity a checkpoint must match, TensorBoard's HParams and the report's grouping. Nothing
is parsed back out of a directory name, and nothing comes from the process that parsed the command line
(``sys.argv``): under Hydra's joblib and submitit launchers the job runs in another process, or on another
machine, and has only its config.

Which keys a sweep varies is part of the config too: the ``reslab`` command writes the keys it sweeps into
``sweep_keys`` (and a sweeper's ``hydra.sweeper.params`` adds its own), so every job of a sweep over ``optim.lr``
gets a directory and a report row of its own: ``plain-56_seed0_optim.lr=0.05``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from omegaconf import Container, DictConfig, OmegaConf

# Spelled out in the run's name (plain-56_seed0), so never repeated as a variant.
NAME_KEYS = ("model", "depth", "seed")
# The record's own fields that are part of the experiment's identity.
IDENTITY_KEYS = ("model", "shortcut", "depth", "width", "dataset", "seed")
# The config keys that change what a run computes, beyond those fields: a finished record is reused, and a
# checkpoint resumed, only when every one matches (with the resolved precision). Everything else (log, validation,
# checkpoint and instrument intervals, memory layout, compilation, the device, data_dir) may differ.
EXPERIMENT_KEYS = (
    "model.norm",
    "model.zero_init_residual",
    "dataset.downsample",
    "dataset.val_fraction",
    "dataset.split_seed",
    "dataset.crop_pad",
    "dataset.hflip",
    "dataset.batch_size",
    "dataset.limit_train_batches",
    "dataset.synthetic_train",
    "dataset.synthetic_test",
    "optim._target_",
    "optim.lr",
    "optim.momentum",
    "optim.weight_decay",
    "optim.nesterov",
    "optim.milestones",
    "optim.gamma",
    "optim.warmup.lr",
    "optim.warmup.steps",
    "optim.warmup.until_error",
    "trainer.max_steps",
)


@dataclass(frozen=True)
class RunRecord:
    model: str  # the arm's name: plain, residual, residual_b
    shortcut: str  # none | A | B: the one flag the arms differ in
    depth: int
    width: int
    dataset: str
    seed: int
    variant: tuple[str, ...] = ()  # the job's other swept overrides, "key=value", in sweep order
    settings: dict = field(default_factory=dict, compare=False)  # the training settings shown beside the run
    experiment: dict = field(default_factory=dict, compare=False)  # EXPERIMENT_KEYS -> this run's values

    @classmethod
    def from_config(cls, cfg: DictConfig, choices: Mapping[str, str] | None = None) -> RunRecord:
        """The record of the job that ``cfg`` composes. ``choices`` (config group -> option) names a swept
        group's option; by default it is read from the config's ``hydra`` node or Hydra's own job state."""
        hydra = _hydra_node(cfg)
        if choices is None and hydra is not None:
            choices = OmegaConf.to_container(hydra.runtime.choices) if "runtime" in hydra else None
        swept = list(cfg.get("sweep_keys") or [])
        params = hydra.sweeper.get("params") if hydra is not None and "sweeper" in hydra else None
        swept += [k for k in (params or {}) if k not in swept]  # a sweeper's own search space
        variant = tuple(f"{k}={_value(cfg, k, choices or {})}" for k in swept if k.lstrip("+~") not in NAME_KEYS)
        t, o, d = cfg.trainer, cfg.optim, cfg.dataset
        settings = {
            "batch_size": d.batch_size,
            "lr": o.lr,
            "weight_decay": o.weight_decay,
            "max_steps": t.max_steps,
            "warmup_steps": o.warmup.steps,
            "channels_last": t.channels_last,
            "compile": str(t.compile) if t.compile not in (None, False) else "off",
            "cuda_graph": str(t.get("cuda_graph", False)).lower(),
        }
        return cls(
            model=cfg.model.name,
            shortcut=cfg.model.shortcut,
            depth=cfg.depth,
            width=cfg.model.width,
            dataset=d.name,
            seed=cfg.seed,
            variant=variant,
            settings=settings,
            experiment={
                **{k: _plain(OmegaConf.select(cfg, k, default=None)) for k in EXPERIMENT_KEYS},
                "bn_batch": bn_batch(cfg),
            },
        )

    @property
    def name(self) -> str:
        """``plain-56_seed0``: what TensorBoard, logs and the report call the run."""
        return f"{self.model}-{self.depth}_seed{self.seed}"

    @property
    def job_dir_name(self) -> str:
        """The name plus every other swept override, so the jobs of a sweep never share a directory."""
        return "_".join([self.name, *(v.replace("/", "-") for v in self.variant)])

    def identity(self, precision: str) -> dict:
        """What a finished record or a checkpoint must match to count as this run: every setting that changes
        what is computed, with the precision as resolved on this machine. Stored in metrics.json and checkpoints."""
        return {**{k: getattr(self, k) for k in IDENTITY_KEYS}, **self.experiment, "precision": precision}

    def facts(self, **measured) -> dict:
        """The static part of ``metrics.json``: the record, then what the job measured of itself (parameters,
        image size, precision, ...) and the machine it ran on."""
        fields = asdict(self)
        fields.pop("settings")
        fields.pop("experiment")
        return {
            "run_name": self.name,
            "job": self.job_dir_name,
            **fields,
            "variant": "_".join(self.variant),
            **measured,
            "environment": machine(),
        }

    def hparams(self, **measured) -> dict:
        """TensorBoard's HParams view: one flat dict of scalars and strings."""
        return {
            "model": self.model,
            "shortcut": self.shortcut,
            "depth": self.depth,
            "width": self.width,
            "dataset": self.dataset,
            "seed": self.seed,
            "variant": "_".join(self.variant) or "-",
            **self.settings,
            **measured,
        }


def bn_batch(cfg: DictConfig) -> int:
    """The images a BN layer's training statistics are over: the batch, or each device's part of it when a run on
    several devices does not synchronise BN (``trainer.sync_batchnorm=false``), which changes the experiment."""
    devices = OmegaConf.select(cfg, "trainer.devices", default=1) or 1
    sync = OmegaConf.select(cfg, "trainer.sync_batchnorm", default=True)
    return cfg.dataset.batch_size // devices if devices > 1 and not sync else cfg.dataset.batch_size


def machine() -> dict:
    """Where a run or a benchmark happened, for honest numbers."""
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def cpu_model() -> str:
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def identity_differences(saved: Mapping, current: Mapping) -> list[str]:
    """``key=saved (this run: current)`` for every identity key whose values differ; keys that an older record
    lacks are compared only where it has them."""
    return [f"{k}={saved[k]!r} (this run: {current[k]!r})" for k in current if k in saved and saved[k] != current[k]]


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def _hydra_node(cfg: DictConfig) -> DictConfig | None:
    if "hydra" in cfg:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _value(cfg: DictConfig, key: str, choices: Mapping[str, str]) -> str:
    """A swept key's value in this job: a config group's option name, or the value itself."""
    key = key.lstrip("+~")
    if key in choices:
        return str(choices[key])
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, Container):
        value = OmegaConf.to_container(value, resolve=True)
    return str(value).replace(" ", "")
