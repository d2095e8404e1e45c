"""Where the config lives, and composing it outside `run.py` (tests, the benchmark, notebooks)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, open_dict

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def parse_overrides(argv: list[str]) -> list:
    """Hydra's own parse of the ``key=value`` arguments; [] if malformed (Hydra then reports it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(args)
    except Exception:
        return []


def compose_config(overrides: list[str], output_dir: str | Path | None = None) -> DictConfig:
    """The job config that `python run.py <overrides>` would get, with ``output_dir`` set."""
    from hydra import compose, initialize_config_dir

    from reslab.cli import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    return cfg
