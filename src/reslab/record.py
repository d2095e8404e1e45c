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

import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from omegaconf import Container, DictConfig, OmegaConf

from reslab import __version__

# Spelled out in the run's name (plain-56_seed0), so never repeated as a variant.
NAME_KEYS = ("model", "depth", "seed")
# The record's own fields, and the config keys they hold (in the identity under the field's name).
FIELDS = {
    "model": "model.name",
    "shortcut": "model.shortcut",
    "depth": "depth",
    "width": "model.width",
    "dataset": "dataset.name",
    "seed": "seed",
}
# The config keys, with everything under them, that do not change what a run computes: where it runs and what it
# reads and writes, how often it logs, validates, checkpoints and measures, and how fast it runs. Every other key is
# part of the run's identity, new keys included: a finished record is reused, and a checkpoint resumed, only when all
# of them match (with the precision as resolved on this machine, and the images BN's statistics are over).
NOT_IDENTITY = (
    "hydra",
    "data_dir",
    "retrain",
    "resume",
    "sweep_keys",
    "output_dir",
    "launch",
    "logger",  # where the scalars are written
    "dataset.download",
    "dataset.verify_checksums",
    "dataset.eval_batch_size",  # evaluation runs BN in eval mode: the batch size changes nothing but speed
    "trainer.val_check_interval",
    "trainer.log_every_n_steps",
    "trainer.accelerator",
    "trainer.devices",  # one run on several devices computes the single-device run (bn_batch says where it does not)
    "trainer.strategy",
    "trainer.sync_batchnorm",
    "trainer.benchmark",
    "runtime",  # layout, compilation, CUDA graph, threads, progress; the precision counts as resolved
    "callbacks.checkpoint",
    "callbacks.grad_norms",
    "callbacks.responses",
    "callbacks.divergence",
    "callbacks.signal",
)


def identity_values(cfg: DictConfig) -> dict:
    """``dotted key -> value`` for every key of ``cfg`` that is part of a run's identity (not in `NOT_IDENTITY`),
    resolved; lists are values. Denied subtrees are skipped before they are resolved (they hold ``${hydra:...}``)."""
    found: dict = {}

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node.keys():
            path = f"{prefix}{key}"
            if any(path == d or path.startswith(d + ".") for d in NOT_IDENTITY):
                continue
            value = node[key]
            if isinstance(value, DictConfig):
                walk(value, path + ".")
            else:
                found[path] = _plain(value)

    walk(cfg, "")
    return found


@dataclass(frozen=True)
class RunRecord:
    model: str  # the arm's name: plain, residual, residual_b
    shortcut: str  # none | A | B: the one flag the arms differ in
    depth: int
    width: int
    dataset: str
    seed: int
    variant: tuple[str, ...] = ()  # the job's other swept overrides, "key=value", in sweep order
    experiment: dict = field(default_factory=dict, compare=False)  # the identity's other keys -> this run's values

    @classmethod
    def from_config(cls, cfg: DictConfig, choices: Mapping[str, str] | None = None) -> RunRecord:
        """The record of the job that ``cfg`` composes. ``choices`` (config group -> option) names a swept
        group's option; by default it is read from the config's ``hydra`` node, or its ``launch`` node in a job."""
        hydra = cfg.get("hydra")  # present where Hydra resolves the job's directory name
        if choices is None and hydra is not None and "runtime" in hydra:
            choices = OmegaConf.to_container(hydra.runtime.choices)
        if choices is None:  # in the job: what the command line recorded from the launcher (`launch`)
            choices = _plain(OmegaConf.select(cfg, "launch.choices", default=None))
        swept = list(cfg.get("sweep_keys") or [])
        params = hydra.sweeper.get("params") if hydra is not None and "sweeper" in hydra else None
        swept += [k for k in (params or {}) if k not in swept]  # a sweeper's own search space
        variant = tuple(f"{k}={_value(cfg, k, choices or {})}" for k in swept if k.lstrip("+~") not in NAME_KEYS)
        d = cfg.dataset
        values = identity_values(cfg)
        return cls(
            model=cfg.model.name,
            shortcut=cfg.model.shortcut,
            depth=cfg.depth,
            width=cfg.model.width,
            dataset=d.name,
            seed=cfg.seed,
            variant=variant,
            experiment={
                **{k: v for k, v in values.items() if k not in FIELDS.values()},
                "bn_batch": bn_batch(cfg),
            },
        )

    @classmethod
    def from_metrics(cls, metrics: Mapping) -> RunRecord:
        """The record a ``metrics.json`` was written from (`facts`): the way back from a job directory to the run."""
        # Older records have only the joined string: split where a key of the run's identity follows a "_".
        swept = metrics.get("swept")
        identity = metrics.get("identity") if isinstance(metrics.get("identity"), dict) else {}
        joined = metrics.get("variant") or ""
        variant = tuple(swept) if isinstance(swept, list) else split_variant(joined, identity)
        return cls(
            model=metrics.get("model", "?"),
            shortcut=metrics.get("shortcut", "?"),
            depth=int(metrics.get("depth", 0)),
            width=int(metrics.get("width", 0)),
            dataset=metrics.get("dataset", "?"),
            seed=int(metrics.get("seed", 0)),
            variant=variant,
            experiment={k: v for k, v in (metrics.get("identity") or {}).items() if k not in FIELDS},
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
        return {**{k: getattr(self, k) for k in FIELDS}, **self.experiment, "precision": precision}

    def facts(self, **measured) -> dict:
        """The static part of ``metrics.json``: the record, then what the job measured of itself (parameters,
        image size, precision, ...) and the machine it ran on."""
        fields = asdict(self)
        fields.pop("experiment")
        return {
            "run_name": self.name,
            "job": self.job_dir_name,
            **fields,
            "variant": "_".join(self.variant),
            "swept": list(self.variant),  # the same, item by item: a value may hold "_" (schedule=step_warmup)
            **measured,
            "environment": machine(),
        }

    def hparams(self, **measured) -> dict:
        """TensorBoard's HParams: what the run is (its arm, depth and seed, then every other key of its identity,
        dotted as in the config, lists as text), then what the job measured of itself (parameters, precision). No
        speed settings (layout, compilation, CUDA graph): they change how fast a run goes, not what it computes."""
        values = {
            "model": self.model,
            "depth": self.depth,
            "seed": self.seed,
            "shortcut": self.shortcut,
            "width": self.width,
            "dataset": self.dataset,
        }
        for key, value in self.experiment.items():
            if key.endswith(("._target_", "._partial_")):  # how the config builds the run: the keys above name it
                continue
            plain = value is None or isinstance(value, bool | int | float | str)
            values[key] = value if plain else json.dumps(value)
        return {**values, **measured}


def split_variant(joined: str, identity: Mapping) -> tuple[str, ...]:
    """``a=1_b.c=x_y`` back into its ``key=value`` items: "_" inside a value or a key is ambiguous, so a cut is made
    only where what follows up to the next "=" is a key of the run's ``identity`` or a config group of it (a prefix
    of its keys: ``schedule`` for ``schedule.milestones``). Without an identity the string stays whole."""
    if not joined:
        return ()

    def known(key: str) -> bool:
        return key in identity or any(k.startswith(key + ".") for k in identity)

    starts = [0] + [
        i + 1
        for i, c in enumerate(joined)
        if c == "_" and "=" in joined[i + 1 :] and known(joined[i + 1 :].split("=", 1)[0])
    ]
    ends = [start - 1 for start in starts[1:]] + [len(joined)]  # each item ends before the "_" of the next
    return tuple(joined[a:b] for a, b in zip(starts, ends, strict=True))


METRICS_FILE = "metrics.json"


def read_metrics(job_dir: str | Path) -> dict | None:
    """A job directory's ``metrics.json``, the one reader of it (jobs, the report, the analyses, the bench); None
    where there is none yet or it cannot be read (nothing to reuse)."""
    try:
        return json.loads((Path(job_dir) / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
        "reslab": __version__,
        "commit": source_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


def source_commit() -> str | None:
    """The git commit of the reslab source this process runs, ``+changes`` if the checkout's package or config
    differs from it; None for an installed wheel (even one inside a checkout, such as .venv/) or without git."""
    import subprocess

    def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=30)

    here = Path(__file__).resolve()
    try:
        found = git("rev-parse", "--show-toplevel", "--short", "HEAD", cwd=here.parent)
        if found.returncode != 0:
            return None
        top, head = found.stdout.split()
        if git("ls-files", "--error-unmatch", str(here.relative_to(top)), cwd=Path(top)).returncode != 0:
            return None  # this file is not the checkout's own (an install into an ignored folder of it)
        dirty = git("diff", "--quiet", "HEAD", "--", "src", "conf", cwd=Path(top)).returncode != 0
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def cpu_model() -> str:
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def identity_differences(saved: Mapping, current: Mapping, default: Callable[[str], object] | None = None) -> list[str]:
    """``key=saved (this run: current)`` for every identity key whose values differ. A key the saved identity lacks
    was written before the key existed: it counts as its default then (``default(key)``, the key's value in the
    config's YAML), and as differing where no default is known, so a new key never lets another experiment through."""
    differ = [f"{k}={saved[k]!r} (this run: {current[k]!r})" for k in current if k in saved and saved[k] != current[k]]
    for k in current:
        if k not in saved and k not in DERIVED:
            then = default(k) if default is not None else UNKNOWN
            if then is UNKNOWN:
                differ.append(f"{k} not recorded (this run: {current[k]!r})")
            elif then != current[k]:
                differ.append(f"{k}={then!r} by default when it was written (this run: {current[k]!r})")
    return differ


UNKNOWN = object()
DERIVED = ("precision", "bn_batch")  # not config keys: older records without them are compared where they have them


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value


def _value(cfg: DictConfig, key: str, choices: Mapping[str, str]) -> str:
    """A swept key's value in this job: a config group's option name, or the value itself."""
    key = key.lstrip("+~")
    if key in choices:
        return str(choices[key])
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, Container):
        value = OmegaConf.to_container(value, resolve=True)
    return str(value).replace(" ", "")
