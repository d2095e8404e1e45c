"""The lesion study (reslab analyze lesion): deleting a block means what the module says, and nothing else changes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reslab.analysis import lesion
from reslab.analysis.trained import TrainedRun
from reslab.cli.analyze import main
from reslab.results.runs import load_run


def trained(job_dir) -> TrainedRun:
    return TrainedRun(load_run(job_dir))


@pytest.mark.slow
def test_deleting_a_residual_block_whose_branch_is_zero_changes_nothing(analysis_sweep):
    run = trained(analysis_sweep / "residual-14_seed0")
    net = run.net()
    x, y = run.images("test")
    for name, block in lesion.blocks(net):
        torch.nn.init.zeros_(block.bn2.weight)  # the branch adds exactly zero
        torch.nn.init.zeros_(block.bn2.bias)
        intact = net(x)
        with lesion.deleted(block):
            assert torch.equal(net(x), intact), name
        assert torch.equal(net(x), intact)  # and the block is back afterwards


def test_deleting_a_trained_residual_block_keeps_its_shortcut(analysis_sweep):
    run = trained(analysis_sweep / "residual-14_seed0")
    net = run.net()
    (_, first), *_ = lesion.blocks(net)
    x = torch.relu(torch.randn(4, 4, 8, 8))  # a block's input is the output of a ReLU
    with lesion.deleted(first):
        assert torch.equal(first(x), x)  # identity shortcut: the input passes unchanged
    down = dict(lesion.blocks(net))["stage2.block1"]
    with lesion.deleted(down):
        out = down(x)
    assert out.shape == (4, 8, 4, 4)  # option A: subsampled, channels zero-padded
    assert torch.equal(out[:, :4], x[:, :, ::2, ::2]) and not out[:, 4:].any()


def test_plain_downsampling_blocks_cannot_be_deleted_and_the_others_pass_their_input(analysis_sweep):
    run = trained(analysis_sweep / "plain-14_seed0")
    net = run.net()
    found = dict(lesion.blocks(net))
    assert [lesion.deletable(b) for b in found.values()] == [True, True, False, True, False, True]
    x = torch.randn(2, 4, 8, 8)
    with lesion.deleted(found["stage1.block2"]):
        assert torch.equal(found["stage1.block2"](x), x)


def test_several_blocks_deleted_and_reordered_as_in_veit_fig5(analysis_sweep):
    """k blocks deleted together and k swaps: k = 1 is the one-block lesion again; swapping two identical blocks
    changes nothing; swapping changes the net only inside a stage among blocks that keep the shape."""
    run = trained(analysis_sweep / "residual-14_seed0")
    net = run.net()
    x, y = run.images("test")
    found = lesion.blocks(net)
    assert lesion.swappable_pairs(found) == [(0, 1)]  # stages 2 and 3 have one block each that keeps the shape
    rng = np.random.default_rng(0)
    several = lesion.several_deleted(net, x, y, found, most=3, samples=4, rng=rng)
    assert list(several["deleted_k"]) == [1, 2, 3] and several["deleted_error"].shape == (3, 4)
    one_at_a_time = []
    for _, block in found:
        with lesion.deleted(block):
            one_at_a_time.append(lesion.evaluate(net, x, y)[1])
    assert set(several["deleted_error"][0]) <= set(one_at_a_time)  # k = 1 draws one of the single lesions
    intact = net(x)
    swapped = lesion.reordered(net, x, y, found, most=2, samples=3, rng=rng)
    assert torch.equal(net(x), intact)  # every block back in its place
    assert swapped["swapped_error"].shape == (2, 3) and np.isfinite(swapped["swapped_error"]).all()
    first, second = found[0][1], found[1][1]
    second.load_state_dict(first.state_dict())  # two identical blocks: swapping them computes the same net
    before = lesion.evaluate(net, x, y)[1]
    only = lesion.reordered(net, x, y, found[:2], most=1, samples=1, rng=rng)
    assert only["swapped_error"][0, 0] == before


@pytest.mark.slow
def test_the_intact_net_scores_the_runs_own_test_error_and_lesions_are_measured(analysis_sweep, capsys):
    job = analysis_sweep / "plain-14_seed0"
    assert main(["lesion", str(job), "--images", "0", "--device", "cpu"]) == 0
    with np.load(job / "analysis" / "lesion.npz") as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads((job / "metrics.json").read_text())
    assert float(arrays["base_error"]) == pytest.approx(record["test_error"], abs=1e-9)  # fp32 run, all test images
    assert int(arrays["images"]) == 128
    assert list(np.isnan(arrays["error"])) == [False, False, True, False, True, False]
    assert list(arrays["downsampling"]) == [False, False, True, False, True, False]
    assert arrays["deleted_error"].shape == (4, 10)  # the four deletable blocks of a plain 14, 10 draws each
    assert list(arrays["swapped_k"]) == list(range(1, 9)) and arrays["swapped_error"].shape == (8, 10)
    assert (job / "analysis" / "lesion.png").stat().st_size > 10_000  # a single run's own figure
    out = capsys.readouterr().out
    assert "plain-14" in out and "k blocks deleted together: k=1 " in out and ", k=4 " in out
    assert "k random swaps: k=1 " in out and ", k=8 " in out and "over 10 draws" in out


@pytest.mark.slow  # like the other analyses' sweep tests; the single-run tests stay fast
def test_a_sweep_gets_one_comparison_figure_and_every_run_its_arrays_and_tensorboard_curve(analysis_sweep, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["lesion", str(analysis_sweep), "--images", "64", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "residual-20_seed0 did not finish" in out.out  # the failed job, left out and said so
    md = (analysis_sweep / "analysis" / "lesion.md").read_text()
    assert "reslab analyze lesion" in md and "images=64" in md and "![lesion](analysis/lesion.png)" in md
    assert {p.suffix for p in (analysis_sweep / "analysis").iterdir()} >= {".png", ".pdf", ".md"}
    acc = EventAccumulator(str(analysis_sweep / "residual-8_seed1")).Reload()
    points = acc.Scalars("analysis/lesion/test_error_by_deleted_block")
    with np.load(analysis_sweep / "residual-8_seed1" / "analysis" / "lesion.npz") as data:
        assert [p.value for p in points] == pytest.approx(list(data["error"]))
    assert [p.step for p in points] == [1, 2, 3]
    root = EventAccumulator(str(analysis_sweep)).Reload()
    assert "analysis/lesion" in root.Tags()["images"]


@pytest.mark.slow
def test_saved_arrays_are_reused_only_for_the_same_settings(analysis_sweep, monkeypatch):
    job = analysis_sweep / "residual-8_seed0"
    assert main(["lesion", str(job), "--images", "32", "--device", "cpu"]) == 0
    calls = []
    monkeypatch.setattr(lesion, "evaluate", lambda *a, **k: calls.append(1) or (0.5, 1.0))
    assert main(["lesion", str(job), "--images", "32", "--device", "cpu"]) == 0
    assert calls == []  # same settings, same checkpoint: read back
    assert main(["lesion", str(job), "--images", "64", "--device", "cpu"]) == 0
    assert calls  # other settings: measured again


@pytest.mark.slow
def test_the_report_shows_the_analyses_run_on_its_sweep(analysis_sweep):
    from reslab.results.report import report

    report(analysis_sweep, figures=False, quiet=True)
    assert "Analyses" not in (analysis_sweep / "summary.md").read_text()
    assert main(["lesion", str(analysis_sweep), "--images", "32", "--device", "cpu"]) == 0
    report(analysis_sweep, figures=False, quiet=True)
    md = (analysis_sweep / "summary.md").read_text()
    assert "## Analyses (reslab analyze)" in md and "![lesion](analysis/lesion.png)" in md
    assert "**residual-14**" in md
