"""Shattered gradients (reslab analyze shattered): the correlations, the per-point gradients, the nets they are of."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from reslab.analysis import shattered
from reslab.analysis.trained import TrainedRun, estimate_bn_statistics
from reslab.cli.analyze import main
from reslab.models import cifar_net
from reslab.results.runs import load_run

TINY = {"pairs": 2, "points": 6, "seed": 0, "bn_images": 64}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trained(job_dir) -> TrainedRun:
    return TrainedRun(load_run(job_dir))


def test_pearson_correlation_of_gradients():
    g = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(1))
    h = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert shattered.pearson(g, g) == pytest.approx(1.0, abs=1e-12)
    assert shattered.pearson(g, -g) == pytest.approx(-1.0, abs=1e-12)
    assert shattered.pearson(g, 3 * g + 1) == pytest.approx(1.0, abs=1e-12)  # scale and offset do not matter
    assert abs(shattered.pearson(g, h)) < 0.05  # 3072 entries: about +-0.02 for independent vectors
    # Along a line: lag l averages the pairs l points apart; alternating signs alternate the correlation.
    lags = shattered.lag_correlations(torch.stack([g, -g, g, -g, g]))
    assert lags.tolist() == pytest.approx([1, -1, 1, -1, 1], abs=1e-12)
    lags = shattered.lag_correlations(torch.stack([g, g, h]))
    assert lags.tolist() == pytest.approx([1, (1 + shattered.pearson(g, h)) / 2, shattered.pearson(g, h)], abs=1e-9)
    # A constant gradient has no correlation: left out of the mean, not counted as 0.
    lags = shattered.lag_correlations(torch.stack([g, torch.ones_like(g), g]))
    assert lags.tolist() == pytest.approx([1, float("nan"), 1], abs=1e-12, nan_ok=True)


def test_points_of_a_line_are_evenly_spaced_from_image_a_to_image_b():
    x, y = torch.randn(4, 1, 5, 5), torch.tensor([7, 2, 5, 1])
    paths, classes = shattered.lines(x, y, 5)
    assert classes.tolist() == [7, 5]  # the logit of image a's class
    assert paths.shape == (2, 5, 1, 5, 5)
    assert torch.equal(paths[1, 0], x[2]) and torch.allclose(paths[1, -1], x[3], atol=1e-6)
    assert torch.allclose(paths[0, 1], 0.75 * x[0] + 0.25 * x[1], atol=1e-6)


@pytest.mark.parametrize("job", ["residual-14_seed0", "plain-8_seed0"])
def test_batched_gradients_are_each_points_own_gradient(analysis_sweep, job):
    run = trained(analysis_sweep / job)
    net = shattered.prepared_net(run, "init", 64)  # BN statistics estimated, evaluation mode
    x, y = run.images("test", 4)
    paths, classes = shattered.lines(x, y, 4)
    points, classes = paths.flatten(0, 1), classes.repeat_interleave(4)
    taps = [m for _, m in shattered.taps(net)]
    weights = shattered.projections(net, tuple(x.shape[1:]), seed=3)
    batched = shattered.input_gradients(net, points, taps, weights, classes)
    assert batched.shape == (len(taps) + 1, 8, *x.shape[1:])
    for i in range(len(points)):
        alone = shattered.input_gradients(net, points[i : i + 1], taps, weights, classes[i : i + 1])
        torch.testing.assert_close(batched[:, i : i + 1], alone, rtol=1e-4, atol=1e-6)
    # Independently of the hooks: the logit of image a's class, and the stem's projection, differentiated directly.
    p = points[6:7].clone().requires_grad_(True)
    (logit,) = torch.autograd.grad(net(p)[0, classes[6]], p)
    (stem,) = torch.autograd.grad((net.stem(p) * weights[0]).sum(), p)
    torch.testing.assert_close(batched[-1, 6:7], logit, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(batched[0, 6:7], stem, rtol=1e-4, atol=1e-6)
    assert not batched[-1].eq(batched[-1, :1]).all()  # a ReLU net: the gradient does change along the line


def test_training_mode_is_refused_because_bn_would_tie_the_points(analysis_sweep):
    net = trained(analysis_sweep / "plain-8_seed0").net().train()
    with pytest.raises(ValueError, match="evaluation mode"):
        shattered.input_gradients(net, torch.randn(2, 3, 32, 32), [], [], torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("job", ["residual-14_seed0", "plain-8_seed0"])
def test_a_linear_net_has_one_gradient_everywhere_so_correlation_one_at_every_lag(analysis_sweep, monkeypatch, job):
    run = trained(analysis_sweep / job)
    relu_net = shattered.measure(run, TINY)
    assert (relu_net["init_lag"][1:, 1:] < 0.999999).any()  # with its ReLUs the net's gradients do change
    # Without its ReLUs (BN in evaluation mode is affine, option A pads) the whole net is linear in its input.
    monkeypatch.setattr(cifar_net, "F", types.SimpleNamespace(relu=lambda x: x, pad=F.pad))
    arrays = shattered.measure(run, TINY)
    for state in shattered.STATES:
        assert arrays[f"{state}_lag"].shape == (len(arrays["layer_number"]), TINY["points"])
        np.testing.assert_allclose(arrays[f"{state}_lag"], 1.0, atol=1e-6)
        np.testing.assert_allclose(arrays[f"{state}_lag1_by_pair"], 1.0, atol=1e-6)


def test_the_projections_are_seeded_and_the_logits_do_not_use_them(analysis_sweep):
    run = trained(analysis_sweep / "residual-8_seed0")
    net = run.net()
    x, y = run.images("test", 4)
    paths, classes = shattered.lines(x, y, 6)
    first, constant = shattered.profile(net, paths, classes, seed=0)
    again, _ = shattered.profile(net, paths, classes, seed=0)
    other, _ = shattered.profile(net, paths, classes, seed=1)
    assert constant.tolist() == [0] * 5  # a trained net: no constant gradient, nothing left out
    assert np.array_equal(first, again)
    assert not np.allclose(first[:, :-1, 1:], other[:, :-1, 1:])  # other random projections at the blocks
    np.testing.assert_allclose(first[:, -1], other[:, -1], atol=1e-12)  # the class logit is no projection
    assert first.shape == (2, 1 + 3 + 1, 6) and np.allclose(first[:, :, 0], 1)


def test_the_initial_net_is_the_net_training_started_from(analysis_sweep):
    from reslab.build import build_job

    job = analysis_sweep / "residual-8_seed1"
    run = trained(job)
    _, system = build_job(OmegaConf.load(job / "config.yaml"))  # as the run built it, before its first step
    started = {k: v.float() for k, v in system.net.state_dict().items()}
    init = run.net("init").state_dict()
    assert started.keys() == init.keys()
    for k in started:
        assert torch.equal(init[k].cpu(), started[k].cpu()), k
    # The analysis' initial net: the same weights, BN running statistics estimated from training images.
    net = shattered.prepared_net(run, "init", 64)
    for k, v in net.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, started[k]), k
    expected = estimate_bn_statistics(run.net("init"), run.images("train", 64)[0], batch_size=32)
    assert not torch.equal(net.stem.bn.running_var, torch.ones_like(net.stem.bn.running_var))
    torch.testing.assert_close(net.stem.bn.running_var, expected.stem.bn.running_var)
    assert not net.training
    # The trained net differs: the run's final weights.
    assert not torch.equal(shattered.prepared_net(run, "trained", 64).stem.conv.weight, net.stem.conv.weight)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--pairs", "0"], "--pairs must be a positive"),
        (["--points", "1"], "--points must be at least 2"),
        (["--seed", "-1"], "--seed must be a non-negative"),
        (["--bn-images", "0"], "--bn-images must be a positive"),
        (["--pairs", "65"], "--pairs 65 needs 130 test images but plain-8_seed0's test split has 128"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(analysis_sweep, capsys, option, message):
    assert main(["shattered", str(analysis_sweep / "plain-8_seed0"), *option, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reslab: error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.slow  # keeps the fast suite under 5 minutes; its parts are tested fast elsewhere
def test_a_sweep_gets_one_figure_and_every_run_its_arrays_and_tensorboard_curves(analysis_sweep, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["shattered", str(analysis_sweep), "--pairs", "2", "--points", "5", "--bn-images", "64", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "residual-20_seed0 did not finish" in out  # the failed job, left out and said so
    assert "**plain (optim.lr=0.1)-14**: lag-1 gradient correlation at the logits" in out
    assert "**residual-8**, mean of 2 seeds" in out
    by_line = [p for p in out.split(" at init (lines ")[1:]]  # the spread over the lines of all seeds, each arm
    assert len(by_line) == 5 and all(" to " in p.split(")")[0] for p in by_line)
    folder = analysis_sweep / "analysis"
    assert (folder / "shattered.png").stat().st_size > 30_000 and (folder / "shattered.pdf").is_file()
    md = (folder / "shattered.md").read_text()
    assert "reslab analyze shattered" in md and "points=5" in md and "![shattered](analysis/shattered.png)" in md
    job = analysis_sweep / "residual-14_seed0"
    with np.load(job / "analysis" / "shattered.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert list(arrays["layers"]) == ["stem"] + [f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2)] + ["logits"]
    assert list(arrays["layer_number"]) == [1, 3, 5, 7, 9, 11, 13, 14]
    assert arrays["init_lag"].shape == arrays["trained_lag"].shape == (8, 5)
    assert arrays["init_lag1_by_pair"].shape == (2, 8)
    np.testing.assert_allclose(arrays["trained_lag"][:, 0], 1.0, atol=1e-9)  # every gradient with itself
    np.testing.assert_allclose(arrays["trained_lag"][:, 1], arrays["trained_lag1_by_pair"].mean(0), atol=1e-12)
    assert np.all(np.abs(arrays["init_lag"]) <= 1 + 1e-9)
    acc = EventAccumulator(str(job)).Reload()
    for state in shattered.STATES:
        points = acc.Scalars(f"analysis/shattered/lag1_correlation_{state}")
        assert [p.step for p in points] == [1, 3, 5, 7, 9, 11, 13, 14]
        assert [p.value for p in points] == pytest.approx(list(arrays[f"{state}_lag"][:, 1]), abs=1e-6)
    assert "analysis/shattered" in EventAccumulator(str(analysis_sweep)).Reload().Tags()["images"]


def test_nets_whose_gradients_are_zero_at_some_or_all_layers_are_drawn_and_said_so(analysis_sweep):
    from reslab.plots import shattered as shattered_plots
    from reslab.plots.measured import Measured

    run = TrainedRun(load_run(analysis_sweep / "residual-8_seed0"))
    arrays = shattered.measure(run, {"pairs": 1, "points": 8, "seed": 0, "bn_images": 64})
    collapsed = {k: (np.full_like(v, np.nan) if k.endswith("lag") else v) for k, v in arrays.items()}
    partly = {k: v.copy() for k, v in arrays.items()}
    partly["trained_lag"][::2] = np.nan  # some layers' gradients zero, others not
    results = [
        Measured("residual", "A", 8, 0, "a", arrays),
        Measured("plain", "none", 8, 0, "b", collapsed),
        Measured("residual (model.norm=none)", "A", 8, 0, "c", partly),
    ]
    shattered_plots.figure(results, {}).savefig(analysis_sweep / "figure.png")  # no line to draw for "plain": no crash
    lines = shattered_plots.summary(results, {})
    assert any("**plain-8**: every input gradient is zero" in line for line in lines)


def test_constant_gradients_are_counted_and_said_not_dropped_silently(analysis_sweep):
    """A net whose last block's output is zeroed (its ReLU after a zero BN and no shortcut) has a zero input gradient
    at that block for every point: those gradients are counted, and the summary says they were left out."""
    from reslab.plots import shattered as shattered_plots

    run = trained(analysis_sweep / "plain-8_seed0")
    net = run.net()
    last = [m for _, m in shattered.taps(net)][-1]
    torch.nn.init.zeros_(last.bn2.weight)
    torch.nn.init.constant_(last.bn2.bias, -1.0)  # ReLU(-1) = 0 everywhere: the block's output is constant
    x, y = run.images("test", 4)
    paths, classes = shattered.lines(x, y, 6)
    lags, constant = shattered.profile(net, paths, classes, seed=0)
    # Every point of both lines, at that block and at the logits (a plain net: nothing else reaches them).
    assert constant[-2] == constant[-1] == 2 * 6 and constant[:-2].sum() == 0
    assert np.isnan(lags[:, -2]).all()
    arrays = {"pairs": np.array(2), "points": np.array(6), "init_constant": np.zeros(5), "trained_constant": constant}
    member = types.SimpleNamespace(arrays=arrays)
    said = shattered_plots.left_out([member])
    assert said == "; left out as constant (zero): 24 gradients at trained (2 layer(s), of 12 points per layer)"
    assert "not counted" in shattered_plots.left_out([types.SimpleNamespace(arrays={"pairs": 1})])
