"""The loss landscape (reslab analyze landscape): the scan measures the net's own loss at θ and at θ + α d1 + β d2 for
filter-normalised directions that are the same for both arms, and leaves the weights as it found them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab.analysis import landscape
from reslab.analysis.trained import TrainedRun
from reslab.cli.analyze import main
from reslab.models import CifarNet
from reslab.plots import landscape as landscape_plots
from reslab.results.runs import load_run

SMALL = ["--images", "32", "--points", "5", "--grid", "3", "--device", "cpu"]


def trained(job_dir) -> TrainedRun:
    return TrainedRun(load_run(job_dir))


def arrays_of(job) -> dict[str, np.ndarray]:
    with np.load(job / "analysis" / "landscape.npz") as data:
        return {k: data[k] for k in data.files}


@torch.no_grad()
def loss_and_error(net, x, y) -> tuple[float, float]:
    logits = net(x)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) != y).float().mean())


@torch.no_grad()
def moved(net, dirs, steps):
    """A copy of ``net`` with its weights set to θ + Σ steps[k] · dirs[k], written out by hand."""
    import copy

    other = copy.deepcopy(net)
    for name, p in other.named_parameters():
        p.add_(sum(s * d[name] for s, d in zip(steps, dirs)))
    return other


@pytest.mark.slow
def test_the_scan_measures_the_nets_own_loss_at_theta_and_at_the_points_of_the_grid(analysis_sweep):
    job = analysis_sweep / "residual-8_seed0"
    assert main(["landscape", str(job), *SMALL, "--seed", "3"]) == 0
    arrays = arrays_of(job)
    assert list(arrays["alphas"]) == [-1.0, -0.5, 0.0, 0.5, 1.0] and list(arrays["grid"]) == [-1.0, 0.0, 1.0]
    run = trained(job)
    net = run.net()
    x, y = run.images("train", 32)
    assert torch.equal(x, run.datamodule.normalize(run.datamodule.train[0][:32]))  # the first training images
    loss, error = loss_and_error(net, x, y)  # one plain forward pass of the whole batch
    assert float(arrays["origin_loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(arrays["origin_error"]) == pytest.approx(error)
    assert arrays["loss_1d"].shape == (5, 5)  # the default 5 directions × --points 5
    assert arrays["loss_1d"][:, 2] == pytest.approx([loss] * 5, rel=1e-5)  # every direction passes through θ
    assert arrays["loss_2d"][1, 1] == pytest.approx(loss, rel=1e-5)
    # Off θ: the same losses as nets whose weights are set by hand, with loss_2d[i, j] at α = grid[i], β = grid[j].
    dirs = landscape.directions(net, 3, 5)
    assert arrays["loss_1d"][0, 4] == pytest.approx(loss_and_error(moved(net, dirs, [1.0]), x, y)[0], rel=1e-4)
    assert arrays["loss_1d"][0, 1] == pytest.approx(loss_and_error(moved(net, dirs, [-0.5]), x, y)[0], rel=1e-4)
    along_d5 = loss_and_error(moved(net, [dirs[4]], [0.5]), x, y)[0]
    assert arrays["loss_1d"][4, 3] == pytest.approx(along_d5, rel=1e-4)
    assert arrays["loss_2d"][0, 2] == pytest.approx(loss_and_error(moved(net, dirs, [-1.0, 1.0]), x, y)[0], rel=1e-4)
    assert arrays["error_2d"][0, 2] == pytest.approx(loss_and_error(moved(net, dirs, [-1.0, 1.0]), x, y)[1])
    assert arrays["loss_2d"][2, 0] != pytest.approx(arrays["loss_2d"][0, 2], rel=1e-3)  # the two axes differ
    assert np.allclose(arrays["loss_2d"][:, 1], arrays["loss_1d"][0, ::2], rtol=1e-5)  # β = 0: the curve along d1
    assert np.allclose(arrays["loss_2d"][1, :], arrays["loss_1d"][1, ::2], rtol=1e-5)  # α = 0: the curve along d2
    assert (arrays["loss_1d"][:, [0, 4]] > loss).all()  # a trained net: a full step along any d costs loss
    assert len({round(float(v), 6) for v in arrays["loss_1d"][:, 4]}) == 5  # five different directions


def test_directions_are_filter_normalised_and_leave_biases_and_bn_alone():
    torch.manual_seed(0)
    for norm in ("batch", "none"):  # without BN the convs have biases
        net = CifarNet(8, "A", 3, 10, 4, norm)
        with torch.no_grad():
            net.stage1.block1.conv1.weight[2].zero_()  # a dead filter gets no direction
        d1, d2 = landscape.directions(net, 0, 2)
        for name, p in net.named_parameters():
            if p.dim() == 1:
                assert not d1[name].any() and not d2[name].any(), name  # biases, BN scales and shifts stay
                continue
            assert d1[name].shape == p.shape
            for d in (d1, d2):
                norms = torch.linalg.vector_norm(d[name].flatten(1), dim=1)  # one per filter / classifier row
                assert torch.allclose(norms, torch.linalg.vector_norm(p.detach().flatten(1), dim=1), rtol=1e-5)
            assert not torch.allclose(d1[name], p) and not torch.allclose(d1[name], d2[name]), name  # random
        assert not d1["stage1.block1.conv1.weight"][2].any()
        assert sum(1 for _, p in net.named_parameters() if p.dim() == 1) > 0
    assert not torch.equal(landscape.directions(net, 1, 1)[0]["fc.weight"], d1["fc.weight"])  # seed matters


def test_plain_and_residual_nets_of_one_depth_get_the_same_directions(analysis_sweep):
    plain = trained(analysis_sweep / "plain-8_seed0").net()
    residual = trained(analysis_sweep / "residual-8_seed0").net()
    for k in (0, 1):
        raw_p, raw_r = landscape.raw_direction(plain, 5, k), landscape.raw_direction(residual, 5, k)
        assert raw_p.keys() == raw_r.keys()
        assert all(torch.equal(raw_p[n], raw_r[n]) for n in raw_p)
    # Normalised, they differ only by each net's own filter norms: the unit filters are the same.
    (dp,), (dr,) = landscape.directions(plain, 5, 1), landscape.directions(residual, 5, 1)
    params_p, params_r = dict(plain.named_parameters()), dict(residual.named_parameters())
    for name in ("stem.conv.weight", "stage3.block1.conv2.weight", "fc.weight"):
        unit_p = dp[name].flatten(1) / torch.linalg.vector_norm(params_p[name].flatten(1), dim=1, keepdim=True)
        unit_r = dr[name].flatten(1) / torch.linalg.vector_norm(params_r[name].flatten(1), dim=1, keepdim=True)
        assert torch.allclose(unit_p, unit_r, rtol=1e-5)
    residual.load_state_dict(plain.state_dict())  # same weights: exactly the same directions
    (dr,) = landscape.directions(residual, 5, 1)
    assert all(torch.equal(dp[n], dr[n]) for n in dp)


def test_the_scan_puts_the_weights_back_exactly_even_when_it_fails(analysis_sweep, monkeypatch):
    run = trained(analysis_sweep / "plain-14_seed0")
    net = run.net()
    x, y = run.images("train", 8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dirs = landscape.directions(net, 0, 2)
    coords = np.array([[0.3, -0.7], [1.0, 1.0], [-0.1, 0.2]])  # steps whose sums do not round back to θ
    losses, _ = landscape.scan(net, x, y, dirs, coords)
    assert len(set(losses.tolist())) == 3
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted mid-scan")
        return 1.0, 0.5

    monkeypatch.setattr(landscape, "evaluate", failing)
    with pytest.raises(RuntimeError, match="mid-scan"):
        landscape.scan(net, x, y, dirs, coords)
    assert all(torch.equal(before[k], net.state_dict()[k]) for k in before)


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--grid", "4", "--grid must be odd"),
        ("--points", "1", "--points must be odd and at least 3"),
        ("--images", "-5", "--images must be 0 (all) or a positive"),
        ("--span", "0", "--span must be a positive number"),
        ("--dims", "3", "--dims must be one of 1, 2, both"),
        ("--directions", "0", "--directions must be a positive number"),
    ],
)
def test_bad_options_are_one_line_errors(analysis_sweep, capsys, option, value, says):
    assert main(["landscape", str(analysis_sweep), option, value, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (analysis_sweep / "analysis").exists()


@pytest.mark.slow  # keeps the fast suite under 5 minutes; its parts are tested fast elsewhere
def test_a_sweep_gets_one_figure_and_every_run_its_arrays_and_tensorboard_curve(analysis_sweep, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["landscape", str(analysis_sweep), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "residual-20_seed0 did not finish" in out  # the failed job, left out and said so
    assert "**residual-8**, mean of 2 seeds: at θ training loss" in out and "**residual-14**: at θ" in out
    assert "**plain (optim.lr=0.05)-8**: at θ" in out  # the variant is an arm of its own
    assert "1-D, loss / loss at θ over 5 directions × 2 signs × 2 seeds: median" in out
    assert "2-D (one slice):" in out and "within 2× the loss at θ, locally convex at" in out
    folder = analysis_sweep / "analysis"
    assert (folder / "landscape.png").stat().st_size > 20_000 and (folder / "landscape.pdf").is_file()
    md = (folder / "landscape.md").read_text()
    assert "reslab analyze landscape" in md and "images=32" in md and "grid=3" in md
    for job in ("plain-8_seed0", "plain-8_seed1", "residual-8_seed1", "plain-14_seed0", "residual-14_seed0"):
        arrays = arrays_of(analysis_sweep / job)
        assert arrays["loss_1d"].shape == (5, 5) and arrays["loss_2d"].shape == (3, 3), job
        assert np.isfinite(arrays["loss_2d"]).all() and int(arrays["images"]) == 32
        meta = json.loads((analysis_sweep / job / "analysis" / "landscape.json").read_text())
        settings = {"images": 32, "points": 5, "grid": 3, "span": 1.0, "dims": "both", "seed": 0, "directions": 5}
        assert meta["settings"] == settings
    acc = EventAccumulator(str(analysis_sweep / "residual-8_seed1")).Reload()
    points = acc.Scalars("analysis/landscape/train_loss_1d_by_grid_index")
    assert [p.step for p in points] == [0, 1, 2, 3, 4]
    along_d1 = arrays_of(analysis_sweep / "residual-8_seed1")["loss_1d"][0]
    assert [p.value for p in points] == pytest.approx(list(along_d1))
    assert "analysis/landscape" in EventAccumulator(str(analysis_sweep)).Reload().Tags()["images"]


@pytest.mark.slow
def test_one_scan_alone_measures_and_draws_only_that_scan(analysis_sweep):
    job = analysis_sweep / "plain-8_seed1"
    assert main(["landscape", str(job), "--images", "16", "--grid", "3", "--dims", "2", "--device", "cpu"]) == 0
    arrays = arrays_of(job)
    assert "loss_1d" not in arrays and arrays["loss_2d"].shape == (3, 3)
    assert landscape.scalars(arrays) == {}
    assert float(arrays["origin_loss"]) == arrays["loss_2d"][1, 1]
    assert (job / "analysis" / "landscape.png").stat().st_size > 10_000


def test_the_summary_measures_tell_a_bowl_from_a_saddle():
    grid = landscape.axis(11, 1.0)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    bowl, saddle = 1 + a**2 + 3 * b**2, 2 + a**2 - b**2
    step = grid[1] - grid[0]
    assert landscape_plots.convex_fraction(bowl, step) == 1.0
    assert landscape_plots.convex_fraction(saddle, step) == 0.0
    assert landscape_plots.convex_fraction(np.full((5, 5), 2.3), 0.5) == 1.0  # flat: no negative curvature
    assert landscape_plots.basin_fraction({"loss_2d": bowl, "origin_loss": np.array(1.0)}) == np.mean(
        a**2 + 3 * b**2 <= 1
    )
    curve = {"alphas": landscape.axis(5, 1.0), "loss_1d": np.array([5.0, 2.0, 1.0, 3.0, 9.0]), "origin_loss": 1.0}
    assert landscape_plots.sharpness_1d(curve, 1.0) == {-1.0: 5.0, -0.5: 2.0, 0.5: 3.0, 1.0: 9.0}
    # Several directions (and an older result's single curve): pooled over directions and both signs of α.
    two = {**curve, "loss_1d": np.array([[5.0, 2.0, 1.0, 3.0, 9.0], [1.0, 1.5, 1.0, 4.0, 40.0]])}
    spread = landscape_plots.sharpness_spread([two, curve], 1.0)
    assert sorted(spread[0.5]) == [1.5, 2.0, 2.0, 3.0, 3.0, 4.0] and sorted(spread[1.0]) == [
        1.0,
        5.0,
        5.0,
        9.0,
        9.0,
        40.0,
    ]
    assert landscape_plots._spread(spread[1.0]) == "median 7× (1–40×)"
    assert landscape_plots._spread([2.0, float("inf")]) == "2× , 1 not finite".replace("× ,", "×,")
