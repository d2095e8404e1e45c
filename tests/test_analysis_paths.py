"""Gradient paths (reslab analyze paths): the gated backward passes decompose the input gradient exactly into the
2^B single-path gradients, each gate acts on its own block's own term, and the analysis refuses plain nets."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from scipy.special import comb

from reslab.analysis import paths
from reslab.analysis.trained import TrainedRun
from reslab.cli.analyze import main
from reslab.plots import paths as paths_plots
from reslab.plots.measured import Measured
from reslab.results.runs import load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trained(job_dir) -> TrainedRun:
    return TrainedRun(load_run(job_dir))


def net_and_images(job_dir, count=3):
    run = trained(job_dir)
    x, y = run.images("train", count)
    return run.net(), x, y


def gradient_by_hand(net, x, y) -> torch.Tensor:
    """The gradient of each image's loss at the stem's output, by CifarNet's forward written out here."""
    h = net.stem(x).detach().requires_grad_()
    logits = net.fc(net.stage3(net.stage2(net.stage1(h))).mean(dim=(2, 3)))
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y, reduction="sum"), h)
    return grad


def test_gating_leaves_the_forward_unchanged_and_gives_the_class_forward_back(analysis_sweep):
    net, x, _ = net_and_images(analysis_sweep / "residual-14_seed0")
    with torch.no_grad():
        intact = net(x)
        with paths.gated(net) as switches:
            assert len(switches) == 6
            assert all("forward" in vars(b) for b in paths.blocks(net))
            assert torch.equal(net(x), intact)
        assert not any("forward" in vars(b) for b in paths.blocks(net))
        assert torch.equal(net(x), intact)


def test_with_every_gate_open_the_gradient_is_the_ordinary_one(analysis_sweep):
    net, x, y = net_and_images(analysis_sweep / "residual-14_seed0")
    by_hand = gradient_by_hand(net, x, y)
    assert by_hand.abs().max() > 0
    assert torch.equal(paths.ordinary_gradient(net, x, y), by_hand)
    gated = paths.PathGradients(net, x, y)
    assert torch.equal(gated.gradient(None), by_hand.double())  # carried times 2^64: exact
    gated.gradient(torch.zeros(len(y), 6, dtype=torch.bool))  # switches set, then opened again
    assert torch.equal(gated.gradient(None), by_hand.double())


@pytest.mark.parametrize("job, count", [("residual-8_seed0", 3), ("residual-14_seed0", 6)])
def test_the_single_path_gradients_of_all_2_to_the_B_paths_sum_to_the_full_gradient(analysis_sweep, job, count):
    net, x, y = net_and_images(analysis_sweep / job)
    full = paths.ordinary_gradient(net, x, y)
    gated = paths.PathGradients(net, x, y)  # one forward for all 2^B backward passes
    total, norms = torch.zeros_like(full, dtype=torch.float64), []
    for subset in itertools.product([False, True], repeat=count):
        grad = gated.gradient(torch.tensor(subset).expand(len(y), count))
        total += grad
        norms.append(float(grad.norm()))
    torch.testing.assert_close(total, full.double(), rtol=1e-5, atol=1e-5 * float(full.abs().max()))
    assert min(norms) > 0 and max(norms) > 1.5 * min(norms)  # 2^B distinct, nonzero parts, not one part 2^B times


def test_each_image_takes_its_own_path_in_one_backward_pass(analysis_sweep):
    """64 copies of one image, each along another of the 64 paths of a 6-block net, in a single backward pass: the
    copies' gradients sum to the image's full gradient."""
    net, x, y = net_and_images(analysis_sweep / "residual-14_seed0", 2)
    subsets = torch.tensor(list(itertools.product([False, True], repeat=6)))
    for i in range(2):
        copies = x[i : i + 1].expand(64, -1, -1, -1)
        grads = paths.PathGradients(net, copies, y[i : i + 1].expand(64)).gradient(subsets)
        full = paths.ordinary_gradient(net, x[i : i + 1], y[i : i + 1])[0]
        torch.testing.assert_close(grads.sum(0), full.double(), rtol=1e-5, atol=1e-5 * float(full.abs().max()))


def test_with_every_branch_zeroed_the_shortcut_only_path_carries_all_the_gradient(analysis_sweep):
    net, x, y = net_and_images(analysis_sweep / "residual-14_seed0")
    for block in paths.blocks(net):
        torch.nn.init.zeros_(block.bn2.weight)  # the branch's output and its gradient are exactly zero
        torch.nn.init.zeros_(block.bn2.bias)
    full = paths.ordinary_gradient(net, x, y)
    gated = paths.PathGradients(net, x, y)
    assert full.abs().max() > 0
    shortcuts_only = gated.gradient(torch.zeros(len(y), 6, dtype=torch.bool))
    torch.testing.assert_close(shortcuts_only, full.double(), rtol=1e-6, atol=0)
    assert float(gated.gradient(torch.ones(len(y), 6, dtype=torch.bool)).abs().max()) == 0


def test_each_gate_acts_on_its_own_blocks_branch(analysis_sweep):
    """With only block j's branch zeroed, exactly the paths through that branch carry no gradient."""
    trained_net, x, y = net_and_images(analysis_sweep / "residual-14_seed0", 2)
    for j in range(6):
        net = copy.deepcopy(trained_net)
        torch.nn.init.zeros_(paths.blocks(net)[j].bn2.weight)
        gated = paths.PathGradients(net, x, y)
        for other in range(6):
            through = torch.zeros(len(y), 6, dtype=torch.bool)
            through[:, other] = True
            norm = float(gated.gradient(through).norm())
            assert (norm == 0) == (other == j), (j, other, norm)


def test_a_random_path_of_length_k_takes_k_branches_each_block_alike():
    rng = np.random.default_rng(0)
    for k in range(7):
        chosen = paths.random_paths(rng, 3000, 6, k)
        assert chosen.shape == (3000, 6) and (chosen.sum(1) == k).all()
        assert chosen.mean(0) == pytest.approx(np.full(6, k / 6), abs=0.03)
    assert len({row.tobytes() for row in paths.random_paths(rng, 200, 6, 3)}) == comb(6, 3, exact=True)


def test_the_mean_length_interval_is_a_bootstrap_over_images():
    """scipy's percentile bootstrap against a resampling written out by hand, on norms whose mean length is known;
    more images give a narrower interval around the same value."""
    rng = np.random.default_rng(1)
    number = np.array([comb(6, k, exact=True) for k in range(7)], dtype=float)
    scale = np.exp(-np.arange(7.0))[:, None, None]
    few, many = (rng.gamma(2.0, size=(7, 3, n)) * scale for n in (50, 800))
    low, high = paths.mean_length_interval(few, number, seed=0)
    per_image, by_hand = few.mean(axis=1), []
    for _ in range(4000):
        total = per_image[:, rng.integers(0, 50, 50)].mean(axis=1) * number
        by_hand.append((np.arange(7) * total).sum() / total.sum())
    assert (low, high) == pytest.approx(tuple(np.percentile(by_hand, [2.5, 97.5])), abs=0.02)
    narrow = paths.mean_length_interval(many, number, seed=0)
    truth = (np.arange(7) * number * np.exp(-np.arange(7.0))).sum() / (number * np.exp(-np.arange(7.0))).sum()
    assert narrow[0] < truth < narrow[1] and narrow[1] - narrow[0] < (high - low) / 2


def test_the_shortest_interval_holding_90_percent():
    assert paths_plots.shortest_interval(np.array([0.0, 0.5, 0.45, 0.05])) == (1, 2)
    assert paths_plots.shortest_interval(np.array([0.05, 0.45, 0.45, 0.05])) == (1, 2)  # exactly 90% is enough
    assert paths_plots.shortest_interval(np.array([0.05, 0.44, 0.44, 0.07])) == (
        1,
        3,
    )  # of two 3 long, the one with more
    assert paths_plots.shortest_interval(np.array([0.1, 0.1, 0.8])) == (1, 2)
    assert paths_plots.shortest_interval(np.full(10, 0.1)) in {(0, 8), (1, 9)}
    assert paths_plots.shortest_interval(np.array([0.0, 0.0, 1.0, 0.0])) == (2, 2)


def test_a_plain_run_is_refused_with_one_line(analysis_sweep, capsys):
    assert main(["paths", str(analysis_sweep / "plain-14_seed0"), "--images", "4", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a plain net has one path, through all 6 blocks" in err
    assert not (analysis_sweep / "plain-14_seed0" / "analysis").exists()


@pytest.mark.parametrize(
    "option, value", [("--images", "0"), ("--samples", "0"), ("--seed", "-1"), ("--samples", "-3")]
)
def test_bad_options_are_refused_with_one_line(analysis_sweep, capsys, option, value):
    assert main(["paths", str(analysis_sweep / "residual-8_seed0"), option, value, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and "Traceback" not in err


@pytest.mark.slow  # keeps the fast suite under 5 minutes; its parts are tested fast elsewhere
def test_a_sweep_measures_its_residual_runs_only_and_draws_the_figure(analysis_sweep, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["paths", str(analysis_sweep), "--images", "5", "--samples", "3", "--seed", "7", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    left_out = out.split("- Left out:\n")[1]
    for plain in ("plain-8_seed0", "plain-8_seed1", "plain-14_seed0", "plain-8_seed0_optim.lr=0.05"):
        assert f"{plain}: a plain net has one path" in left_out
        assert not (analysis_sweep / plain / "analysis").exists()
    assert "residual-20_seed0 did not finish" in left_out
    assert "**residual-8** (3 blocks, mean of 2 seeds): 90% of the gradient magnitude from paths of" in out
    assert "**residual-14** (6 blocks)" in out
    assert "mean length by seed (0, 1) with its 95% bootstrap interval over images: " in out
    folder = analysis_sweep / "analysis"
    assert (folder / "paths.png").stat().st_size > 20_000 and (folder / "paths.pdf").is_file()
    assert "samples=3" in (folder / "paths.md").read_text()

    job = analysis_sweep / "residual-14_seed0"
    with np.load(job / "analysis" / "paths.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["norms"].shape == (7, 3, 5) and int(arrays["blocks"]) == 6
    assert list(arrays["paths"]) == [comb(6, k, exact=True) for k in range(7)]
    assert arrays["total"] == pytest.approx(arrays["paths"] * arrays["per_path"])
    assert arrays["share"].sum() == pytest.approx(1.0)
    low, high = arrays["mean_length_interval"]
    assert low < float(arrays["mean_length"]) < high  # 5 images: a wide interval, around the estimate
    lo, hi = paths_plots.shortest_interval(arrays["share"])
    assert arrays["share"][lo : hi + 1].sum() >= 0.9 and 0 <= lo <= float(arrays["mean_length"]) <= hi <= 6

    # The stored norms are those of the single-path gradients of the paths drawn with the seed, in order.
    net, x, y = net_and_images(job, 5)
    gated = paths.PathGradients(net, x, y)
    rng = np.random.default_rng(7)
    for k in range(7):
        for s in range(3):
            grad = gated.gradient(torch.from_numpy(paths.random_paths(rng, 5, 6, k)))
            assert arrays["norms"][k, s] == pytest.approx(grad.flatten(1).norm(dim=1).numpy(), rel=1e-5), (k, s)
    assert float(arrays["full_gradient"]) == pytest.approx(float(gated.gradient(None).flatten(1).norm(dim=1).mean()))

    points = EventAccumulator(str(job)).Reload().Scalars("analysis/paths/gradient_share_by_path_length")
    assert [p.step for p in points] == list(range(7))
    assert [p.value for p in points] == pytest.approx(list(arrays["share"]))


def test_a_collapsed_net_has_no_gradient_to_share_and_is_left_out_and_said_so(analysis_sweep):
    run = trained(analysis_sweep / "residual-8_seed1")
    whole = run.net

    def collapsed(state="trained"):
        net = whole(state)
        torch.nn.init.zeros_(net.fc.weight)  # the logits no longer depend on the input
        return net

    run.net = collapsed
    settings = {"images": 4, "samples": 2, "seed": 0}
    dead = paths.measure(run, settings)
    assert not dead["per_path"].any() and np.isnan(dead["share"]).all() and np.isnan(dead["mean_length"])
    alive = paths.measure(trained(analysis_sweep / "residual-8_seed0"), settings)
    results = [Measured("residual", "A", 8, 1, "residual-8_seed1", dead), Measured("residual", "A", 8, 0, "r", alive)]
    (line,) = paths_plots.summary(results, settings)
    assert "(3 blocks):" in line and "left out: seed 1, where the gradient at the first block's input is" in line
    assert f"weighted mean {float(alive['mean_length']):.1f} blocks" in line
    (line,) = paths_plots.summary(results[:1], settings)
    assert "exactly zero on every image" in line and "weighted mean" not in line
    for drawn in (results, results[:1]):
        assert paths_plots.figure(drawn, settings).axes
