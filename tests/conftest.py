"""Shared fixtures: the real config, composed with Hydra and shrunk to a run of a few seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reslab.config import CONF_DIR as CONF  # noqa: F401  (re-exported for the tests)
from reslab.config import compose_config

ROOT = Path(__file__).resolve().parents[1]

# A tiny CPU run: synthetic data, depth 8, narrow, a few steps.
TINY = ["dataset=synthetic", "dataset.synthetic_train=384", "dataset.synthetic_test=128", "dataset.batch_size=32",
        "dataset.eval_batch_size=128", "depth=8", "model.width=4", "trainer.max_steps=8",
        "trainer.val_every_n_steps=4", "trainer.log_every_n_steps=2",
        "callbacks.checkpoint.every_n_steps=4", "callbacks.grad_norms.every_n_steps=2",
        "callbacks.grad_norms.figure_every_n_steps=4", "callbacks.responses.every_n_steps=4",
        "callbacks.responses.figure_every_n_steps=4", "callbacks.responses.batch_size=32"]


@pytest.fixture
def tiny_cfg(tmp_path):
    """A composed tiny config; call with extra overrides."""
    def make(*overrides: str, out: Path | None = None):
        return compose_config(TINY + list(overrides), output_dir=out or tmp_path / "job")
    return make


@pytest.fixture
def run_env():
    """Environment for subprocess runs: the package importable, quiet, CPU-only, no network needed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """A real sweep folder made in-process: two seeds at depth 8, one at 14, and one failed job."""
    from reslab.cli import record_failure
    from reslab.train import train

    root = tmp_path_factory.mktemp("sweep")
    for model, depth, seed in [("plain", 8, 0), ("plain", 8, 1), ("residual", 8, 0), ("residual", 8, 1),
                               ("plain", 14, 0), ("residual", 14, 0)]:
        cfg = compose_config(TINY + [f"model={model}", f"depth={depth}", f"seed={seed}"])
        cfg.output_dir = str(root / cfg.run_name)
        train(cfg)
    variant = compose_config(TINY + ["model=plain", "optim.lr=0.05"])  # as a sweep over optim.lr names it
    variant.output_dir = str(root / f"{variant.run_name}_optim.lr=0.05")
    train(variant)
    failed = compose_config(TINY + ["model=residual", "depth=20"])
    failed.output_dir = str(root / failed.run_name)
    (root / failed.run_name).mkdir()
    record_failure(failed, "DataError: cifar10: archive is truncated", "Traceback ...\n")
    return root
