"""The configuration: where it lives, composing it outside the command (tests, the bench, notebooks), and the
resolvers that name a run's directories from its own config.

``conf/`` at the top of the repository is installed as the package ``reslab.conf`` (a setuptools package-dir
mapping), so an installed ``reslab`` command finds its configuration from any directory, editable or not.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from reslab import schema  # noqa: F401  (registers the typed schema that conf/config.yaml names)
from reslab.errors import UserError
from reslab.record import RunRecord

CONF_PACKAGE = "reslab.conf"


def conf_dir(package: str = CONF_PACKAGE) -> Path:
    """The folder the config groups are read from: the installed package's (the repository's conf/ in an
    editable install), or conf/ beside src/ when a checkout runs uninstalled (PYTHONPATH=src)."""
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "conf"
        if (checkout / "config.yaml").is_file():
            return checkout
        raise UserError("reslab's configuration is not installed; install the package: pip install .") from None


def group_options(group: str) -> list[str]:
    """The options of a config group (``model`` -> ``plain``, ``residual``, ``residual_b``)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def parse_overrides(argv: list[str]) -> list:
    """Hydra's own parse of the ``key=value`` arguments; [] if malformed (Hydra then reports it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(args)
    except Exception:
        return []


def swept_keys(argv: list[str]) -> list[str]:
    """Keys of the experiment that the command line sweeps (``depth=20,56``, ``seed=range(3)``, ...), in their
    order; Hydra's own settings (``hydra.launcher.n_jobs=1,2``) do not change the experiment."""
    return [
        o.key_or_group
        for o in parse_overrides(argv)
        if o.is_sweep_override() and not o.key_or_group.startswith("hydra")
    ]


def _job_dir_name(*, _root_: DictConfig) -> str:
    return RunRecord.from_config(_root_).job_dir_name


def _run_name(*, _root_: DictConfig) -> str:
    return RunRecord.from_config(_root_).name


def register_resolvers() -> None:
    """``${reslab.job_dir:}`` and ``${reslab.run_name:}``, resolved in the job's own process from its config."""
    OmegaConf.register_new_resolver("reslab.job_dir", _job_dir_name, replace=True)
    OmegaConf.register_new_resolver("reslab.run_name", _run_name, replace=True)


# Registered on import: a launcher's worker process resolves the job's directory after unpickling the task
# function, whose module imports this one.
register_resolvers()


def compose_config(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The job config that ``reslab <overrides>`` would get, with ``output_dir`` set."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    # Inside a job Hydra is already initialised (the app's own, or a launcher's restored state): put it aside for
    # this composition and back after it. Found by tools/chaos.py: a worker's identity check of a rerun failed.
    state = Singleton.get_state() if GlobalHydra.instance().is_initialized() else None
    if state is not None:
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    finally:
        if state is not None:
            Singleton.set_state(state)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    return cfg


# The config groups whose option a job's defaults depend on (Hydra's runtime choices also list hydra's own).
GROUPS = ("model", "dataset", "optim", "schedule", "trainer", "runtime", "callbacks", "experiment", "debug")


def default_values(cfg: DictConfig):
    """``key -> value`` as the YAML sets it for this job's config group options, before any ``key=value`` override:
    what a key counted as in a run recorded before the key existed (`reslab.record.identity_differences`).
    Composed on first use; a key the YAML does not have is unknown."""
    from reslab.record import UNKNOWN, identity_values

    choices = OmegaConf.select(cfg, "launch.choices", default=None) or {}
    overrides = [f"{g}={o}" for g, o in choices.items() if g in GROUPS and o is not None]
    values: dict = {}

    def default(key: str):
        if not values:
            composed = compose_config(overrides, output_dir=".")
            values.update(identity_values(composed))
        return values.get(key, UNKNOWN)

    return default
