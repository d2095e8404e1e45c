"""Gradient-norm and layer-response instruments on a tiny real run."""

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reslab.instruments import response_layers
from reslab.job import train
from reslab.models import CifarNet, weight_layers


@pytest.mark.slow
def test_instruments_record_arrays_and_tensorboard_tags(tiny_cfg, tmp_path):
    job = tmp_path / "job"
    train(tiny_cfg("model=residual", "depth=14", out=job))
    names = [n for n, _ in weight_layers(CifarNet(14, "A"))]

    grads = np.load(job / "grad_norms.npz")
    assert list(grads["names"]) == names  # depth order, stable names
    assert list(grads["steps"]) == [0, 2, 4, 6]
    assert grads["values"].shape == (4, 14) and np.isfinite(grads["values"]).all()
    assert (grads["values"] > 0).all()

    responses = np.load(job / "responses.npz")
    assert list(responses["names"]) == [n for n in names if n != "fc"]  # the 13 3x3 layers
    assert list(responses["steps"]) == [4, 8]
    assert responses["values"].shape == (2, 13) and (responses["values"] > 0).all()

    acc = EventAccumulator(str(job), size_guidance={"scalars": 0, "images": 0, "histograms": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {f"grad_norm/{n}" for n in names} <= scalars
    assert {f"response_std/{n}" for n in names if n != "fc"} <= scalars
    assert {"grad_norm_summary/first_over_last", "grad_norm_summary/max", "grad_norm_summary/min"} <= scalars
    assert "grad_norm_summary/per_layer" in acc.Tags()["histograms"]
    assert {"figures/grad_norm_vs_layer", "figures/grad_norm_heatmap", "figures/response_std_vs_layer"} <= set(
        acc.Tags()["images"]
    )
    # Figures every 4 steps (0, 4) and of the last measurement (6), whatever the interval.
    assert [e.step for e in acc.Images("figures/grad_norm_vs_layer")] == [0, 4, 6]
    logged = [e.value for e in acc.Scalars(f"grad_norm/{names[0]}")]
    assert np.allclose(logged, grads["values"][:, 0], rtol=1e-6)


@pytest.mark.slow
def test_grad_norms_equal_a_direct_computation(tiny_cfg, tmp_path):
    """The step-0 norms are those of the first batch's loss gradient at the initial weights (fp32: debug=tiny
    pins the precision, so this means the same on a CPU where `auto` would pick bf16)."""
    from reslab.build import build_job

    cfg = tiny_cfg("model=plain", "trainer.max_steps=1", out=tmp_path / "job")
    train(cfg)
    recorded = np.load(tmp_path / "job" / "grad_norms.npz")["values"][0]

    dm, system = build_job(cfg)  # seeded and built as train() builds them
    net = system.net
    x, y = next(iter(dm.train_dataloader()))
    torch.nn.functional.cross_entropy(net(dm.normalize(x)), y).backward()
    direct = np.array([m.weight.grad.norm().item() for _, m in weight_layers(net)])
    assert np.allclose(recorded, direct, rtol=1e-4)


@pytest.mark.slow
def test_bf16_grad_norms_are_close_to_fp32_ones(tiny_cfg, tmp_path):
    """In bf16 autocast (native or emulated) the step-0 norms agree with an fp32 computation to a few percent:
    bf16 keeps 8 bits of mantissa. They also differ from it, so the run really was in bf16."""
    from reslab.build import build_job

    cfg = tiny_cfg("model=plain", "trainer.max_steps=1", "runtime.precision=bf16", out=tmp_path / "job")
    record = train(cfg)
    assert record["precision"] == "bf16-mixed"
    recorded = np.load(tmp_path / "job" / "grad_norms.npz")["values"][0]
    dm, system = build_job(cfg)
    x, y = next(iter(dm.train_dataloader()))
    torch.nn.functional.cross_entropy(system.net(dm.normalize(x)), y).backward()
    direct = np.array([m.weight.grad.norm().item() for _, m in weight_layers(system.net)])
    assert np.allclose(recorded, direct, rtol=0.1)
    assert not np.allclose(recorded, direct, rtol=1e-4)


def test_response_layers_pair_each_3x3_conv_with_its_bn():
    net = CifarNet(8, "B")
    pairs = response_layers(net)
    assert [c for c, _ in pairs] == [
        "stem.conv",
        "stage1.block1.conv1",
        "stage1.block1.conv2",
        "stage2.block1.conv1",
        "stage2.block1.conv2",
        "stage3.block1.conv1",
        "stage3.block1.conv2",
    ]
    assert all(isinstance(bn, torch.nn.BatchNorm2d) for _, bn in pairs)
    assert pairs[1][1] is net.stage1.block1.bn1


@pytest.mark.slow
def test_a_net_without_batch_norm_trains_and_is_measured_like_one_with_it(tiny_cfg, tmp_path):
    job = tmp_path / "job"
    record = train(tiny_cfg("model=residual", "model.norm=none", "model.zero_init_residual=true", out=job))
    assert record["status"] == "finished" and record["identity"]["model.norm"] == "none"
    responses, grads = np.load(job / "responses.npz"), np.load(job / "grad_norms.npz")
    assert responses["values"].shape == (2, 7) and np.isfinite(responses["values"]).all()
    assert grads["values"].shape == (4, 8) and np.isfinite(grads["values"]).all()


def test_figures_are_drawn_off_the_training_thread_in_order_and_their_errors_surface():
    import threading
    import time

    import pytest

    from reslab.instruments.figure_writer import FigureWriter

    drawn, writer = [], FigureWriter()

    def draw(i):
        time.sleep(0.2)
        drawn.append((i, threading.current_thread() is threading.main_thread()))

    began = time.perf_counter()
    for i in range(3):
        writer.submit(draw, i)
    assert time.perf_counter() - began < 0.1 and drawn == []  # the step did not wait for them
    writer.flush()
    assert drawn == [(0, False), (1, False), (2, False)]
    assert not any(t.name.startswith("reslab-figures") for t in threading.enumerate())  # no idle thread left

    def fail():
        raise ValueError("a figure that cannot be drawn")

    writer.submit(fail)
    with pytest.raises(ValueError, match="cannot be drawn"):
        writer.flush()


def test_signal_at_steps_measures_the_chosen_steps_and_leaves_the_run_as_it_was(tiny_cfg, tmp_path):
    """callbacks=[default,signal]: the gradient norms at steps 0, 1, 3 and after the last step, in
    signal_steps.npz; the run's metrics and instruments are those of the same run without it, bit for bit."""
    quiet = ["callbacks.grad_norms.figure_every_n_steps=0", "callbacks.responses.figure_every_n_steps=0"]
    plain = train(tiny_cfg(*quiet, out=tmp_path / "without"))
    probed = train(
        tiny_cfg(*quiet, "callbacks=[default,signal]", "callbacks.signal.at_steps=[0,1,3]", out=tmp_path / "with")
    )
    for key in ("train_loss", "train_error", "val_loss", "test_loss", "test_error"):
        assert probed[key] == plain[key], key
    assert np.array_equal(np.load(tmp_path / "with" / "grad_norms.npz")["values"],
                          np.load(tmp_path / "without" / "grad_norms.npz")["values"])  # fmt: skip
    from reslab.instruments.signal_probe import SignalAtSteps
    from reslab.training.checkpoint_io import load_checkpoint

    # Its state travels in checkpoints reslab's safe loader reads (plain lists, no numpy objects), and comes back.
    state = next(v for k, v in load_checkpoint(tmp_path / "with" / "checkpoints" / "last.ckpt")["callbacks"].items()
                 if "SignalAtSteps" in k)  # fmt: skip
    back = SignalAtSteps(tmp_path / "elsewhere")
    back.load_state_dict(state)
    assert sorted(back.rows) == [0, 1, 3, plain["steps"]] and list(back.stage) == [0, 1, 1, 2, 2, 3, 3, 4]
    with np.load(tmp_path / "with" / "signal_steps.npz") as data:
        assert list(data["steps"]) == [0, 1, 3, plain["steps"]]
        assert data["input_grad"].shape == (4, 8) and data["weight_grad"].shape == (4, 8)
        assert np.isfinite(data["input_grad"]).all() and list(data["stage"]) == [0, 1, 1, 2, 2, 3, 3, 4]
        # Step 0 is the initialisation: the weight gradients the first training step computes.
        first = np.load(tmp_path / "without" / "grad_norms.npz")
        assert first["steps"][0] == 0
        assert data["weight_grad"][0] == pytest.approx(first["values"][0], rel=1e-4)


def test_signal_at_steps_gives_each_parameter_its_own_gradient_tensor_back():
    """A CUDA-graph step keeps its gradients in static tensors: the probe must hand back those very tensors, with
    their values, and BN's running statistics as they were."""
    import types

    from reslab.instruments.signal_probe import SignalAtSteps

    torch.manual_seed(0)
    net = CifarNet(depth=8, in_channels=1, num_classes=10, shortcut="A", width=4)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    grads = [(p.grad, p.grad.clone()) for p in net.parameters()]
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    probe = SignalAtSteps("/nonexistent")
    probe._measure(types.SimpleNamespace(net=net), (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))), 0)
    for p, (tensor, values) in zip(net.parameters(), grads, strict=True):
        assert p.grad is tensor and torch.equal(p.grad, values)
    assert all(torch.equal(v, buffers[k]) for k, v in net.named_buffers())
    assert sorted(probe.rows) == [0]
