"""The training step never makes the host wait for the device: values are read from it only on the steps that
measure or log, and a copy that arrives late loses nothing and mislabels nothing.

A CPU has no stream to stall, so these tests check the two things that make a GPU step sync-free: which steps
read a tensor's value on the host at all (a spy on every tensor-to-Python conversion), and that the guard and
the instruments give the same results when their copies arrive steps late (`Readback` made slow on purpose).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
from faults import NanWeightsAt
from torch.overrides import TorchFunctionMode

import reslab.instruments.monitors as monitors
import reslab.training.callbacks as callbacks
from reslab.job import train
from reslab.training.readback import Readback

# Every way a tensor's value reaches Python, each of which waits for the device's queued work on a GPU.
HOST_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"}


class HostReadSpy(TorchFunctionMode):
    """Records the training step (``trainer.global_step``) at each read of a tensor's value on the host."""

    def __init__(self):
        super().__init__()
        self.trainer: L.Trainer | None = None
        self.steps: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS and self.trainer is not None:
            self.steps.append(self.trainer.global_step)
        return func(*args, **(kwargs or {}))


class Watch(L.Callback):
    def __init__(self, spy: HostReadSpy):
        self.spy = spy

    def on_train_start(self, trainer, pl_module):
        self.spy.trainer = trainer

    def on_train_end(self, trainer, pl_module):
        self.spy.trainer = None


@pytest.mark.slow
def test_the_training_step_reads_the_device_only_on_measuring_and_logging_steps(tiny_cfg, tmp_path):
    every = 10  # every periodic read on the same steps, so that any other step's read stands out
    cfg = tiny_cfg(
        "model=residual",
        "trainer.max_steps=30",
        f"trainer.log_every_n_steps={every}",
        f"trainer.val_check_interval={every}",
        "runtime.progress=none",
        f"callbacks.checkpoint.every_n_train_steps={every}",
        f"callbacks.divergence.check_every_n_steps={every}",
        f"callbacks.grad_norms.every_n_steps={every}",
        f"callbacks.responses.every_n_steps={every}",
        out=tmp_path / "job",
    )
    spy = HostReadSpy()
    with spy:
        assert train(cfg, callbacks=[Watch(spy)])["status"] == "finished"
    read_on = set(spy.steps)
    # A hook sees the step before or after the optimiser's update, so a read due at step 10 shows as 9 or 10.
    assert {s % every for s in read_on} <= {0, every - 1}, f"reads on steps {sorted(read_on)}"
    assert {0, 10, 20} <= read_on  # the periodic reads are seen: the spy works


class LateReadback(Readback):
    """A copy that arrives only on the third look, as a GPU's does when the host runs steps ahead of it."""

    def __init__(self, tensor):
        super().__init__(tensor)
        self.looks = 0

    def ready(self) -> bool:
        self.looks += 1
        return self.looks >= 3


@pytest.fixture
def late_copies(monkeypatch):
    monkeypatch.setattr(callbacks, "Readback", LateReadback)
    monkeypatch.setattr(monitors, "Readback", LateReadback)


@pytest.mark.slow
def test_a_late_copy_still_stops_the_run_and_records_the_first_nonfinite_step(tiny_cfg, tmp_path, late_copies):
    cfg = tiny_cfg("trainer.max_steps=40", "callbacks.divergence.check_every_n_steps=2", out=tmp_path / "job")
    record = train(cfg, callbacks=[NanWeightsAt(5)])
    assert record["status"] == "diverged" and record["diverged_at_step"] == 5
    assert record["steps"] < 40  # stopped, a few steps late


@pytest.mark.slow
def test_late_copies_give_the_same_series_in_the_same_order(tiny_cfg, tmp_path, monkeypatch):
    overrides = ("model=residual", "trainer.max_steps=12", "callbacks.grad_norms.every_n_steps=1")
    train(tiny_cfg(*overrides, out=tmp_path / "now"))
    monkeypatch.setattr(monitors, "Readback", LateReadback)
    train(tiny_cfg(*overrides, out=tmp_path / "late"))
    for name in ("grad_norms.npz", "responses.npz"):
        now, late = np.load(tmp_path / "now" / name), np.load(tmp_path / "late" / name)
        assert list(late["steps"]) == list(now["steps"]) and np.array_equal(late["values"], now["values"])
    assert list(np.load(tmp_path / "late" / "grad_norms.npz")["steps"]) == list(range(12))
