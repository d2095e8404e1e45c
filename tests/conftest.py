"""Shared fixtures: the real config, composed with Hydra and shrunk by the `debug=tiny` preset to a run of a few
seconds (synthetic data, depth 8, fp32 on the CPU)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from reslab.config import compose_config, conf_dir
from reslab.record import RunRecord

CONF = conf_dir()

ROOT = Path(__file__).resolve().parents[1]

# A tiny CPU run: conf/debug/tiny.yaml.
TINY = ["debug=tiny"]
# The instruments still record their arrays; only the run's own figures of them are not drawn (matplotlib's time).
NO_RUN_FIGURES = ["callbacks.grad_norms.figure_every_n_steps=0", "callbacks.responses.figure_every_n_steps=0"]


def wait_for(predicate, timeout: float) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def one_torch_thread():
    """One torch thread for a test of tiny nets: their ops take microseconds, and on a busy 2-core machine a second
    thread mostly waits for its turn (the analyses' tests: several times faster). Not for every test: the
    channels-last test's tolerance holds at two threads and not at one (NHWC and NCHW gradients differ more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    """A real sweep folder made in-process: two seeds at depth 8, one at 14, and one failed job. Made once per
    session: under pytest-xdist the first worker to need it makes it in the workers' shared temporary folder while
    the others wait on a file lock, then all read it (13 s once instead of once per worker). xdist's `loadgroup`
    would keep its tests on one worker instead, but drops its groups silently under pytest 9.2 (pytest-xdist
    issue 1386)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # not under xdist
        return _make_tiny_sweep(tmp_path_factory.mktemp("sweep"))
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "tiny_sweep"
    made = root.with_name("tiny_sweep.made")
    with FileLock(str(root) + ".lock"):
        if not made.exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker that died while making it
            root.mkdir()
            _make_tiny_sweep(root)
            made.touch()
    return root


def _make_tiny_sweep(root: Path) -> Path:
    from reslab.job import train
    from reslab.jobdir import record_failure

    for model, depth, seed in [
        ("plain", 8, 0),
        ("plain", 8, 1),
        ("residual", 8, 0),
        ("residual", 8, 1),
        ("plain", 14, 0),
        ("residual", 14, 0),
    ]:
        figures = [] if (model, depth, seed) == ("plain", 8, 0) else NO_RUN_FIGURES  # one run draws (tensorboard test)
        cfg = compose_config(TINY + figures + [f"model={model}", f"depth={depth}", f"seed={seed}"])
        cfg.output_dir = str(root / RunRecord.from_config(cfg).job_dir_name)
        train(cfg)
    variant = compose_config(
        TINY + NO_RUN_FIGURES + ["model=plain", "optim.lr=0.05", "sweep_keys=[optim.lr]"]
    )  # as -m names it
    variant.output_dir = str(root / RunRecord.from_config(variant).job_dir_name)
    train(variant)
    failed = compose_config(TINY + ["model=residual", "depth=20"])
    failed.output_dir = str(root / RunRecord.from_config(failed).job_dir_name)
    Path(failed.output_dir).mkdir()
    record_failure(failed, "DataError: cifar10: archive is truncated", "Traceback ...\n")
    return root


@pytest.fixture
def analysis_sweep(tiny_sweep, tmp_path):
    """A copy of the tiny sweep (finished plain and residual runs at depths 8 and 14, a variant, a failed job) that
    an analysis may write into without touching the shared one."""
    return Path(shutil.copytree(tiny_sweep, tmp_path / "sweep"))
