"""The CUDA-graph step (``runtime.cuda_graph``): on a CPU its unrecorded form (``eager``) must train exactly as
Lightning's automatic step, resume across the two, and every setting it cannot work with is refused in one line.
The recording itself needs a GPU (experiments/performance/gpu/ has the script that checks it there)."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from test_job_resume import Crash, assert_same_series, final

from reslab.errors import UserError
from reslab.job import train
from reslab.training.step_graph import GraphedStep, check_cuda_graph, cuda_graph_mode

# Augmentation, the warm-up's lr override and its error rule, validation and checkpoints all inside 12 steps.
OVERRIDES = (
    "model=residual",
    "trainer.max_steps=12",
    "dataset.crop_pad=2",
    "dataset.hflip=true",
    "schedule=step_warmup",
    "schedule.warmup.steps=5",
    "schedule.warmup.until_error=0.0",
    "callbacks.checkpoint.every_n_train_steps=3",
)


def weights(job) -> dict:
    return torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_the_unrecorded_graph_step_trains_exactly_as_lightnings_automatic_step(tiny_cfg, tmp_path):
    auto = train(tiny_cfg(*OVERRIDES, out=tmp_path / "auto"))
    eager = train(tiny_cfg(*OVERRIDES, "runtime.cuda_graph=eager", out=tmp_path / "eager"))
    assert final(eager) == final(auto) and auto["status"] == "finished"
    assert_same_series(tmp_path / "auto", tmp_path / "eager")
    a, b = weights(tmp_path / "auto"), weights(tmp_path / "eager")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BN statistics included


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [("false", "eager"), ("eager", "false")])
def test_a_run_resumes_exactly_in_the_other_step_mode(tiny_cfg, tmp_path, first, then):
    """Lightning counts automatic and manual steps apart; the count must carry over, or the run restarts at 0."""
    straight = train(tiny_cfg(*OVERRIDES, out=tmp_path / "straight"))
    out = tmp_path / "resumed"

    class CrashAtStep7(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 7:
                raise Crash

    with pytest.raises(Crash):
        train(tiny_cfg(*OVERRIDES, f"runtime.cuda_graph={first}", out=out), callbacks=[CrashAtStep7()])
    assert json.loads((out / "metrics.json").read_text())["status"] == "failed"  # its last checkpoint: step 6
    resumed = train(tiny_cfg(*OVERRIDES, f"runtime.cuda_graph={then}", out=out))
    assert final(resumed) == final(straight)
    assert_same_series(tmp_path / "straight", out)


def test_settings_the_graph_cannot_work_with_are_refused_in_one_line(tiny_cfg, tmp_path):
    with pytest.raises(UserError, match=r"runtime.cuda_graph=true needs a CUDA GPU"):
        train(tiny_cfg("runtime.cuda_graph=true", out=tmp_path / "job"))
    with pytest.raises(UserError, match=r"unknown runtime.cuda_graph='sometimes'; choose one of: false, true, eager"):
        cuda_graph_mode("sometimes")
    refusals = {
        ("gpu", 2, "bf16-mixed", None): "runs on one device",
        ("gpu", 1, "16-mixed", None): "fp16's loss scaling",
        ("gpu", 1, "bf16-mixed", "reduce-overhead"): "makes CUDA graphs of its own",
    }
    for (accelerator, devices, precision, compiled), message in refusals.items():
        with pytest.raises(UserError, match=message):
            check_cuda_graph("graph", accelerator, devices, precision, compiled)
    check_cuda_graph("graph", "gpu", 1, "bf16-mixed", "default")  # compiled kernels without graphs: fine
    check_cuda_graph("eager", "cpu", 2, "16-mixed", "reduce-overhead")  # nothing is recorded: nothing to refuse


def test_the_step_leaves_this_steps_gradients_not_a_sum():
    net = torch.nn.Linear(3, 2)
    step = GraphedStep(lambda x, y: (torch.nn.functional.cross_entropy(net(x), y), torch.zeros(())), net.parameters())
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    step(x, y)
    first = net.weight.grad.clone()
    loss, _ = step(x, y)
    assert np.allclose(net.weight.grad, first) and loss.grad_fn is None
