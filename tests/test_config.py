"""Every config group composes, and the presets mean what they say."""

import pytest
from conftest import CONF, compose_config
from omegaconf import OmegaConf

from reslab.record import RunRecord

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and group.name != "__pycache__"
}
CHOICES = [
    (group, option)
    for group, options in GROUPS.items()
    for option in options
    if group != "callbacks" or option == "default"
]


@pytest.mark.parametrize("group,option", CHOICES)
def test_every_config_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], output_dir=tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_default_is_the_cpu_sweep_on_fashion_mnist(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert cfg.dataset.name == "fashion_mnist" and cfg.model.shortcut == "A"
    assert RunRecord.from_config(cfg).name == "residual-20_seed0"


def test_plain_differs_from_residual_only_in_name_and_shortcut(tmp_path):
    plain = OmegaConf.to_container(compose_config(["model=plain"], tmp_path).model)
    residual = OmegaConf.to_container(compose_config(["model=residual"], tmp_path).model)
    assert {k for k in plain if plain[k] != residual[k]} == {"name", "shortcut"}


def test_paper_experiment_is_the_cifar10_recipe(tmp_path):
    cfg = compose_config(["experiment=paper", "depth=110", "model=plain"], tmp_path)
    assert cfg.dataset.name == "cifar10" and cfg.dataset.crop_pad == 4 and cfg.dataset.hflip
    assert cfg.dataset.val_fraction == 0.1 and cfg.dataset.batch_size == 128
    assert cfg.trainer.max_steps == 64000 and list(cfg.schedule.milestones) == [0.5, 0.75]
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
    assert cfg.schedule.warmup.steps == 0  # warm-up is chosen in config, never by architecture
    assert RunRecord.from_config(cfg).name == "plain-110_seed0"


def test_warmup_preset_is_the_paper_rule(tmp_path):
    cfg = compose_config(["experiment=paper", "schedule=step_warmup"], tmp_path)
    assert cfg.schedule.warmup.lr == 0.01 and cfg.schedule.warmup.until_error == 0.8
    assert cfg.dataset.name == "cifar10"


def test_unknown_keys_fail_loudly(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_config(["trainer.max_stpes=10"], tmp_path)


def test_a_config_composes_inside_an_initialised_hydra_and_leaves_it_as_it_was():
    """A job's identity check composes the YAML's defaults while Hydra is initialised (the app's own, or a launcher
    worker's restored state); it failed with "GlobalHydra is already initialized" (found by tools/chaos.py)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert compose_config(["depth=14"]).depth == 14
        assert GlobalHydra.instance().is_initialized()  # the app's Hydra is back
