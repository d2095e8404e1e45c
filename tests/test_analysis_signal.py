"""Signal propagation (reslab analyze signal): the theory's formula against the paper's own numbers and its general
form, the measurement against gradients computed by hand, its growth invariant to the loss's scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab.analysis import signal, signal_theory
from reslab.cli.analyze import main
from reslab.config import compose_config
from reslab.models import CifarNet, depth_layers
from reslab.plots import signal as signal_plots


def test_yang_et_al_rate_reaches_the_papers_limit_and_its_linear_case():
    # The paper: λ decreases to π/(π−1) ≈ 1.467 as B grows; a linear batch-normalised net gives (B−2)/(B−3).
    rates = [signal_theory.bn_gradient_rate(b) for b in (4, 8, 32, 128, 1024, 10**7)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(np.pi / (np.pi - 1), abs=1e-6) and round(np.pi / (np.pi - 1), 3) == 1.467
    assert signal_theory.bn_gradient_rate(float("inf")) == pytest.approx(1.4669, abs=1e-4)
    for b in (5, 10, 64):
        assert signal_theory.bn_gradient_rate(b, lambda c: c, lambda c: 1.0) == pytest.approx((b - 2) / (b - 3))
    assert signal_theory.decades_per_layer(np.pi / (np.pi - 1)) == pytest.approx(0.0832, abs=1e-4)
    with pytest.raises(ValueError, match="more than 3"):
        signal_theory.bn_gradient_rate(3)


@pytest.mark.parametrize("batch", [6, 16])
def test_the_closed_form_is_the_papers_general_integral(batch):
    """Eq. 25 (ReLU) against Theorem 7's integral over φ', computed numerically by scipy."""
    assert signal_theory.relu_gradient_rate_integral(batch) == pytest.approx(
        signal_theory.bn_gradient_rate(batch), rel=1e-8
    )


def tiny_net(norm: str = "none") -> CifarNet:
    torch.manual_seed(0)
    return CifarNet(depth=8, in_channels=1, num_classes=10, shortcut="none", width=4, norm=norm)


def test_the_measured_gradients_are_the_ones_computed_by_hand():
    """The first layer's input gradient is ∂loss/∂x; the classifier's is (softmax − one-hot) W / B; a weight's
    gradient is autograd's own."""
    net = tiny_net()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    measured = signal.one_batch(net, x, y)
    layers = depth_layers(net)
    assert len(measured["input_grad"]) == len(layers) == 8
    xin = x.clone().requires_grad_(True)
    features = {}
    handle = net.fc.register_forward_pre_hook(lambda m, a: features.__setitem__("h", a[0]))
    logits = net(xin)
    handle.remove()
    loss = F.cross_entropy(logits, y)
    (gx,) = torch.autograd.grad(loss, xin, retain_graph=True)
    assert measured["input_grad"][0] == pytest.approx(float(gx.norm()), rel=1e-5)
    by_hand = ((torch.softmax(logits, 1) - F.one_hot(y, 10).float()) @ net.fc.weight / len(y)).detach()
    assert measured["input_grad"][-1] == pytest.approx(float(by_hand.norm()), rel=1e-5)
    (gw,) = torch.autograd.grad(loss, layers[3][1].weight)
    assert measured["weight_grad"][3] == pytest.approx(float(gw.norm()), rel=1e-5)


def test_the_growth_is_the_same_whatever_the_losss_scale():
    net = tiny_net("batch")
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    one, scaled = signal.one_batch(net, x, y), signal.one_batch(net, x, y, loss_scale=1000.0)
    assert scaled["input_grad"] == pytest.approx(1000 * one["input_grad"], rel=1e-4)
    stage = signal.stages(net)
    assert list(stage) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert signal.growth_per_layer(np.log10(scaled["input_grad"]), stage) == pytest.approx(
        signal.growth_per_layer(np.log10(one["input_grad"]), stage), abs=1e-6
    )
    assert one["bn_var"][:, 1] == pytest.approx(1.0, abs=1e-3)  # BN's output in training mode: unit variance


def test_the_growth_is_the_slope_with_an_intercept_per_stage():
    stage = np.array([0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4])
    index = np.arange(len(stage))
    logs = -0.1 * index + np.array([0, 0, 0, 0, 5, 5, 5, -3, -3, -3, 0])  # a jump at each stage, a slope of −0.1
    logs[[0, -1]] = [40.0, -40.0]  # the stem and classifier are left out of the fit
    assert signal.growth_per_layer(logs, stage) == pytest.approx(0.1)


def test_bn_positions_are_those_of_the_nets_last_stage():
    net = CifarNet(depth=8, in_channels=1, num_classes=10, shortcut="none", width=4)
    for size in (14, 28, 32):
        x = torch.zeros(2, 1, size, size)
        last = net.stage3(net.stage2(net.stage1(net.stem(x))))
        assert last.shape[-1] == signal.last_stage_size(size), size  # 4, 7, 8


def test_verdicts_use_an_equivalence_margin():
    assert signal_plots.verdict(0.07, 0.075, 0.083) == "supported"
    assert signal_plots.verdict(0.01, 0.02, 0.083) == "contradicted"
    assert signal_plots.verdict(0.05, 0.09, 0.083) == "not shown"


def test_the_prediction_for_each_arm():
    assert signal_theory.predicted_growth("batch", "none", 128 * 9) == pytest.approx(
        signal_theory.decades_per_layer(signal_theory.bn_gradient_rate(128 * 9))
    )
    assert signal_theory.predicted_growth("none", "none", 128) == 0.0
    assert signal_theory.predicted_growth("batch", "A", 128) is None  # a power law: compared across depths
    cfg = compose_config(["model=plain", "depth=20"], output_dir="/tmp/unused")
    assert cfg.model.norm == "batch"


@pytest.mark.parametrize("side", [4, 7, 14, 28])
def test_padding_loses_the_tap_operators_top_eigenvalue_per_layer(side):
    """Many 3×3 convs (padding 1) on an n×n map: the profile's steady fall per layer is the top eigenvalue of the
    1-D tap matrix (ones on three diagonals), 1 + 2 cos(π/(n+1)), over 3: a closed form the code does not use."""
    profile = signal_theory.padded_gradient_profile([(3, 1, 1, side, side)] * 2000)
    assert profile[0] - profile[1] == pytest.approx(np.log10((1 + 2 * np.cos(np.pi / (side + 1))) / 3), abs=1e-8)
    assert np.all(np.diff(profile) > 0)  # the energy leaks at every layer toward the input


def test_without_padding_the_profile_is_flat_as_hanin_says():
    assert np.ptp(signal_theory.padded_gradient_profile([(1, 1, 0, 5, 5)] * 10)) < 1e-12  # 1×1: no border
    wide = signal_theory.padded_gradient_profile([(3, 1, 1, 400, 400)] * 10)
    assert abs(wide[0] - wide[1]) < 1e-3  # a huge map: the border is a vanishing share


def test_the_padding_prediction_matches_real_nets_without_bn():
    """plain-20 without BN on 8×8 images (maps 8, 4, 2), 60 He initialisations: the expected squared input-gradient
    norm per layer (the mean over initialisations) falls toward the input as the geometry predicts. Hanin's 0, the
    prediction without padding, is 0.077 decades per layer away and fails this (the estimate varies by ~0.001)."""
    rng_images = torch.Generator().manual_seed(1)
    squares = []
    for seed in range(60):
        torch.manual_seed(seed)
        net = CifarNet(depth=20, in_channels=1, num_classes=10, shortcut="none", norm="none")
        x, y = torch.randn(16, 1, 8, 8, generator=rng_images), torch.randint(0, 10, (16,), generator=rng_images)
        squares.append(signal.one_batch(net, x, y)["input_grad"] ** 2)
    stage = signal.stages(net)
    measured = signal.growth_per_layer(0.5 * np.log10(np.mean(squares, 0)), stage)
    geometry = signal.conv_geometry(net, 1, 8)
    assert [g[3:] for g in geometry] == [(8, 8)] * 7 + [(8, 4)] + [(4, 4)] * 5 + [(4, 2)] + [(2, 2)] * 5
    predicted = signal.growth_per_layer(np.append(signal_theory.padded_gradient_profile(geometry), np.nan), stage)
    assert predicted == pytest.approx(-0.0787, abs=1e-3)
    assert measured == pytest.approx(predicted, abs=0.005)


@pytest.mark.slow  # like the other analyses' sweep tests; the measurement and the theory are tested fast above
def test_a_sweep_gets_its_figure_summary_and_arrays(analysis_sweep, capsys):
    import shutil

    for checkpoints in analysis_sweep.glob("*/checkpoints"):  # fresh nets from the configs: no weights needed
        shutil.rmtree(checkpoints)
    argv = ["signal", str(analysis_sweep), "--seeds", "3", "--batches", "1", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "**plain (optim.lr=0.1)-8**" in out and "decades per layer (95% interval" in out and "Yang et al.'s λ" in out
    assert "**residual-8**" in out and "a power law" in out and "rise per layer by depth: 8:" in out
    folder = analysis_sweep / "analysis"
    assert (folder / "signal.png").stat().st_size > 20_000 and "reslab analyze signal" in (
        folder / "signal.md"
    ).read_text()
    with np.load(analysis_sweep / "plain-14_seed0" / "analysis" / "signal.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["input_grad"].shape == (3, 14) and arrays["growth"].shape == (3,)
    mean, low, high = arrays["growth_interval"]
    assert low < mean < high and mean == pytest.approx(arrays["growth"].mean())
    assert json.loads((analysis_sweep / "plain-14_seed0" / "analysis" / "signal.json").read_text())["settings"] == {
        "seeds": 3,
        "batches": 1,
    }
