"""Channels-last layout, torch.compile and device-resident data change speed, never the computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reslab.build import build_job
from reslab.data import ImageDataModule, StepShuffledBatches
from reslab.data.datamodule import memory_format
from reslab.errors import UserError
from reslab.job import train
from reslab.models import CifarNet
from reslab.training.net_layout import compile_mode, is_compiled, prepare_net


@pytest.mark.parametrize(
    "value,mode",
    [
        (False, None),
        (None, None),
        ("false", None),
        (True, "default"),
        ("reduce-overhead", "reduce-overhead"),
        ("max-autotune", "max-autotune"),
    ],
)
def test_compile_mode_reads_the_config(value, mode):
    assert compile_mode(value) == mode


def test_unknown_compile_mode_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"unknown runtime.compile='fast'; choose one of: false, default, "):
        compile_mode("fast")


def _twin_nets(depth: int = 14, shortcut: str = "A"):
    torch.manual_seed(0)
    nchw = CifarNet(depth, shortcut, 3, 10, 8)
    nhwc = CifarNet(depth, shortcut, 3, 10, 8)
    nhwc.load_state_dict(nchw.state_dict())
    return nchw, prepare_net(nhwc, channels_last=True)


@pytest.mark.parametrize("shortcut", ["none", "A", "B"])
def test_channels_last_computes_the_same_loss_and_gradients(shortcut):
    # In fp64: in fp32 the rounding of a depth-14 net with batch norm over 16 images moves gradients by up to 6e-3
    # (relative norm) between the layouts, more or less with the thread count, which would hide a real difference.
    nchw, nhwc = (net.double() for net in _twin_nets(shortcut=shortcut))
    assert nhwc.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x, y = torch.randn(16, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (16,))
    loss_a = F.cross_entropy(nchw(x), y)
    loss_b = F.cross_entropy(nhwc(memory_format(x, True)), y)
    loss_a.backward()
    loss_b.backward()
    assert torch.allclose(loss_a, loss_b, rtol=1e-12)
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12), name


def test_channels_last_leaves_parameter_names_and_counts_alone():
    nchw, nhwc = _twin_nets()
    assert list(nchw.state_dict()) == list(nhwc.state_dict())


def test_the_data_module_hands_over_channels_last_batches(tiny_cfg):
    for flag in (True, False):
        datamodule, _ = build_job(tiny_cfg(f"runtime.channels_last={flag}"))
        x = datamodule.normalize(datamodule.train[0][:4])
        assert x.is_contiguous(memory_format=torch.channels_last) == flag
        assert x.dtype == torch.float32


def test_resident_splits_are_copied_once_and_batches_keep_their_order():
    dm = ImageDataModule("synthetic", "unused", batch_size=32, synthetic_train=256, synthetic_test=64)
    dm.setup("fit")
    assert dm.resident("train", "cpu") is dm.resident("train", "cpu")
    plain = [y for _, y in StepShuffledBatches(*dm.train, 32, seed=0, next_step=3)]
    resident = [y for _, y in dm.train_batches("cpu", next_step=3)]
    assert all(torch.equal(a, b) for a, b in zip(plain, resident)) and len(plain) == len(resident) == 4


@pytest.mark.slow  # test_channels_last_computes_the_same_loss_and_gradients checks the same in the fast suite
def test_a_run_with_channels_last_learns_like_one_without(tiny_cfg, tmp_path):
    runs = [
        train(
            tiny_cfg(
                "trainer.max_steps=40",
                "trainer.val_check_interval=40",
                f"runtime.channels_last={flag}",
                "runtime.threads=2",  # the tolerance below holds at two threads, not at one (conftest.one_torch_thread)
                out=tmp_path / str(flag),
            )
        )
        for flag in (True, False)
    ]
    assert runs[0]["channels_last"] is True and runs[1]["channels_last"] is False
    assert abs(runs[0]["train_loss"] - runs[1]["train_loss"]) < 0.05  # same maths, different rounding order


@pytest.mark.slow
def test_a_compiled_run_trains_and_its_checkpoint_resumes_uncompiled(tiny_cfg, tmp_path):
    # torch.compile on the CPU (inductor + a C++ compiler): slow to compile, so in the slow suite. The compiled
    # run is stopped after its step-4 checkpoint and continued uncompiled (compilation is not part of the identity).
    import lightning as L

    class StopAtStep5(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 5:
                raise KeyboardInterrupt

    with pytest.raises(SystemExit):  # Lightning turns the interrupt into exit 1
        train(tiny_cfg("runtime.compile=default", out=tmp_path / "job"), callbacks=[StopAtStep5()])
    path = tmp_path / "job" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["global_step"] == 4
    assert all(key.startswith("net.") and "_orig_mod" not in key for key in ckpt["state_dict"])
    more = train(tiny_cfg(out=tmp_path / "job"))
    assert more["status"] == "finished" and more["steps"] == 8 and more["compile"] is None


@pytest.mark.slow
def test_compiling_is_in_place_and_visible():
    net = CifarNet(8, "A", 1, 10, 4)
    assert not is_compiled(net)
    prepare_net(net, channels_last=False, compile="default")  # compiles lazily: nothing runs here
    assert is_compiled(net)


def test_the_fused_sgd_makes_the_papers_update(tiny_cfg):
    """reslab's optimiser (fused kernel) against torch's default SGD kernel with the paper's settings."""
    _, system = build_job(tiny_cfg())
    reference = CifarNet(8, "A", 3, 10, 4)
    reference.load_state_dict(system.net.state_dict())
    ours = system.configure_optimizers()["optimizer"]
    theirs = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert ours.param_groups[0]["fused"] is True
    torch.manual_seed(1)
    for _ in range(5):
        for a, b in zip(system.net.parameters(), reference.parameters()):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        ours.step()
        theirs.step()
    for (name, a), b in zip(system.net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_a_checkpoint_does_not_bring_back_the_optimiser_kernel_it_was_saved_with(tiny_cfg):
    _, system = build_job(tiny_cfg())
    saved = system.configure_optimizers()["optimizer"].state_dict()
    saved["param_groups"][0].update(fused=None, foreach=True)  # as an older reslab saved it
    checkpoint = {"optimizer_states": [saved]}
    system.on_load_checkpoint(checkpoint)
    restored = system.configure_optimizers()["optimizer"]
    restored.load_state_dict(checkpoint["optimizer_states"][0])
    assert restored.param_groups[0]["fused"] is True and restored.param_groups[0]["foreach"] is None


@pytest.mark.parametrize("flag", [True, False])
def test_cudnn_benchmark_follows_the_config(tiny_cfg, tmp_path, flag):
    from reslab.build import build_trainer

    build_trainer(tiny_cfg(f"trainer.benchmark={flag}"), tmp_path, "cpu", "32-true", [])
    assert torch.backends.cudnn.benchmark is flag


def test_jobs_run_at_once_spread_over_the_visible_gpus_round_robin():
    from reslab.training.placement import gpu_for_job

    assert [gpu_for_job(k, concurrent=4, visible=2) for k in range(5)] == [0, 1, 0, 1, 0]
    assert [gpu_for_job(k, concurrent=1, visible=2) for k in range(3)] == [0, 0, 0]  # one at a time: the first
    assert [gpu_for_job(k, concurrent=4, visible=1) for k in range(3)] == [0, 0, 0]  # one GPU (or a cluster's own)
