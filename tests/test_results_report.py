"""The sweep report on a tiny real sweep: two seeds (mean ± std), two depths, a failed job."""

import csv
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT

from reslab.cli.report import main
from reslab.plots import training as plots
from reslab.results.report import FIGURES, report, summarize
from reslab.results.runs import load_sweep

# The tiny sweep holds plain runs at two learning rates, so every plain run is labelled with its lr.
PLAIN = "plain (optim.lr=0.1)"


def test_table_has_mean_and_std_over_seeds_and_lists_the_failed_job(tiny_sweep):
    rows = report(tiny_sweep, figures=False, quiet=True)
    by_key = {(r["arm"], r["depth"]): r for r in rows}
    assert set(by_key) == {
        (PLAIN, 8),
        ("residual", 8),
        (PLAIN, 14),
        ("residual", 14),
        ("residual", 20),
        ("plain (optim.lr=0.05)", 8),
    }
    runs = {(r.arm, r.depth, r.seed): r.record for r in load_sweep(tiny_sweep)}
    two = [runs[(PLAIN, 8, s)]["test_error"] for s in (0, 1)]
    assert by_key[(PLAIN, 8)]["test_error"] == pytest.approx(np.mean(two))
    assert by_key[(PLAIN, 8)]["test_error_std"] == pytest.approx(np.std(two, ddof=1))
    assert by_key[(PLAIN, 8)]["runs"] == 2 and by_key[(PLAIN, 8)]["status"] == "2 finished"
    assert by_key[(PLAIN, 14)]["test_error_std"] is None
    assert by_key[("residual", 20)]["status"] == "1 failed" and by_key[("residual", 20)]["test_error"] is None

    with open(tiny_sweep / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and float(table[0]["test_error"]) == pytest.approx(rows[0]["test_error"])
    md = (tiny_sweep / "summary.md").read_text()
    assert f"| {PLAIN} | 8 |" in md and " ± " in md
    assert "Jobs that did not finish" in md and "DataError: cifar10: archive is truncated" in md
    assert str(tiny_sweep / "residual-20_seed0" / "error.log") in md


@pytest.mark.slow
def test_a_folder_kept_without_curves_or_arrays_keeps_its_figures_of_them(analysis_sweep, capsys):
    """A study kept with its records only (no event files, no .npz): the report redraws what it can and leaves the
    figures it cannot draw as they were, instead of replacing them with empty axes."""
    report(analysis_sweep, figures=True, quiet=True)
    kept = {name: (analysis_sweep / "figures" / f"{name}.png").read_bytes() for name in FIGURES}
    for pattern in ("*/curves.csv", "*/events.out.tfevents.*", "*/grad_norms.npz", "*/responses.npz"):
        for path in analysis_sweep.glob(pattern):
            path.unlink()
    report(analysis_sweep, figures=True)
    out = capsys.readouterr().out
    assert "not drawn, any earlier file kept: error_curves (no run has its training curves" in out
    for name in ("error_curves", "grad_norm_profiles", "grad_norm_heatmaps", "response_std"):
        assert (analysis_sweep / "figures" / f"{name}.png").read_bytes() == kept[name], name
    assert (analysis_sweep / "figures" / "error_vs_depth.png").exists()  # drawn from the records alone


def test_cli_prints_the_table_and_rejects_a_non_sweep(tiny_sweep, tmp_path, capsys):
    assert main([str(tiny_sweep), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "| residual | 14 |" in out and f"tensorboard --logdir {tiny_sweep}" in out
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    capsys.readouterr()
    assert main([str(tiny_sweep), "--no-figures", "--margin", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reslab: error: --margin 0: choose a number of points between 0 and 100"]


def test_the_margin_reaches_the_no_worse_claim(tiny_sweep, tmp_path):
    sweep = shutil.copytree(tiny_sweep, tmp_path / "sweep")
    assert main([str(sweep), "--no-figures", "--margin", "2.5"]) == 0
    md = (sweep / "summary.md").read_text()
    assert "a rise below 2.5 percentage points" in md and "(a rise below 2.5 percentage points):" in md


def test_curves_come_from_tensorboard_events(tiny_sweep):
    run = next(r for r in load_sweep(tiny_sweep) if r.arm == PLAIN and r.depth == 8 and r.seed == 0)
    steps, errors = run.curves["train/error"]
    assert list(steps) == [1, 3, 5, 7] and ((0 <= errors) & (errors <= 1)).all()
    assert run.curves["test/error"][1][-1] == pytest.approx(run.record["test_error"], abs=1e-6)


def test_colours_are_fixed_per_depth():
    assert plots.depth_color(20) == "#2ca02c" and plots.depth_color(56) == "#8c564b"
    assert len({plots.depth_color(d) for d in (8, 14, 20, 32, 44, 56, 110)}) == 7


def test_a_swept_setting_other_than_seed_gets_its_own_row(tiny_sweep):
    rows = {(r["arm"], r["depth"]): r for r in report(tiny_sweep, figures=False, quiet=True)}
    variant = rows[("plain (optim.lr=0.05)", 8)]
    assert variant["runs"] == 1 and variant["variant"] == "optim.lr=0.05"
    assert rows[(PLAIN, 8)]["runs"] == 2  # the two seeds only, not the lr=0.05 job


@pytest.mark.slow
def test_runs_of_different_experiments_are_never_averaged_as_seeds(tiny_sweep, tmp_path):
    """A folder holding plain-8 runs of two widths (two launches, or the wrong folder) gives two labelled rows."""
    from conftest import TINY, compose_config

    from reslab.job import train

    folder = tmp_path / "mixed"
    shutil.copytree(tiny_sweep / "plain-8_seed0", folder / "a")
    train(compose_config([*TINY, "model=plain", "model.width=8", "seed=1"], output_dir=folder / "b"))
    rows = {r["arm"]: r for r in summarize(load_sweep(folder)) if r["depth"] == 8}
    assert set(rows) == {"plain (width=4)", "plain (width=8)"}
    assert all(r["runs"] == 1 for r in rows.values())


def test_error_vs_depth_shows_each_seed_and_no_interval_past_0_or_100_percent():
    from reslab.results.statistics import mean_interval

    def row(arm, shortcut, depth, seeds):
        r = {"arm": arm, "shortcut": shortcut, "depth": depth}
        for key in ("train_error", "test_error"):
            ci = mean_interval(seeds)
            r.update({key: ci.value, key + "_ci_low": ci.low, key + "_ci_high": ci.high, key + "_values": seeds})
        return r

    # Two seeds far apart: the raw t interval is 50 ± 572 %; three more rows of ordinary spread.
    rows = [
        row("plain", "none", 20, [0.05, 0.95]),
        row("plain", "none", 56, [0.40, 0.45]),
        row("residual", "A", 20, [0.10, 0.12, 0.11]),
        row("residual", "A", 56, [0.09, 0.10, 0.12]),
    ]
    fig = plots.error_vs_depth(rows)
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        low, high = ax.get_ylim()
        assert -10 < low and high < 110, (low, high)  # autoscaled to the bars: none reaches far past 0-100 %
        hollow = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() == "none" and len(ln.get_ydata()) > 1]
        assert sorted(len(ln.get_ydata()) for ln in hollow) == [2, 2, 3, 3]  # every seed of every row, drawn


def test_summary_states_the_setup_and_embeds_every_figure_written_as_png_and_pdf(tiny_sweep, tmp_path):
    sweep = shutil.copytree(tiny_sweep, tmp_path / "sweep")
    task = "    - model=plain,residual\n    - debug=tiny\n    - sweep_keys=[model]\n"  # as reslab -m writes it
    (sweep / "multirun.yaml").write_text(f"hydra:\n  overrides:\n    task:\n{task}")
    report(sweep, quiet=True)
    md = (sweep / "summary.md").read_text()
    title, setup = md.splitlines()[0], md.split("## Setup")[1].split("## Final errors")[0]
    assert title.endswith(": plain and residual nets (3 arms) at depths 8, 14, 20 on synthetic")
    assert "| dataset | synthetic, images 32×32 |" in setup and "| steps and schedule | 8 steps;" in setup
    assert "| precision and device | 32-true on cpu (" in setup and "seed 0 / 1" in setup
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout records its commit (+changes while it has uncommitted ones)
        assert f"reslab 0.1.0 at commit {head.stdout.strip()}" in setup
    else:
        assert "reslab's version and commit not recorded" in setup
    # from Hydra's multirun.yaml, less the sweep_keys the command line adds by itself
    assert "| command | `reslab -m model=plain,residual debug=tiny` |" in setup
    figures = md.split("## Figures")[1].split("## Differences")[0]
    for name in FIGURES:
        assert f"![{name}](figures/{name}.png)" in figures, name
        for ext in ("png", "pdf"):
            path = sweep / "figures" / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 5000, path


def test_one_seed_panels_show_a_finished_seed_and_say_which_and_heatmaps_mark_zeros():
    from dataclasses import dataclass, field

    from matplotlib.colors import to_rgba

    from reslab.plots.training import ZERO_COLOUR

    @dataclass
    class FakeRun:  # what the figures read of a run (reslab.plots.style.Run)
        arm: str
        shortcut: str
        depth: int
        seed: int
        status: str
        grad_norms: dict | None
        responses: dict | None = None
        curves: dict = field(default_factory=dict)

    def series(values):
        values = np.asarray(values, dtype=float)
        return {"steps": np.arange(len(values)), "names": ["a", "b"], "values": values}

    runs = [  # seed 0 diverged (a NaN, and a zero gradient), seed 1 finished; depth 56 spans other decades
        FakeRun("plain", "none", 20, 0, "diverged", series([[1e-3, 0.0], [np.nan, 1e-2]])),
        FakeRun("plain", "none", 20, 1, "finished", series([[1e-3, 0.0], [2e-3, 1e-2]])),
        FakeRun("residual", "A", 20, 0, "finished", series([[1e-2, 2e-2], [3e-2, np.inf]])),
        FakeRun("plain", "none", 56, 0, "finished", series([[1e3, 1e4], [1e5, 1e6]])),
    ]
    fig = plots.grad_norm_heatmaps(runs)
    fig.canvas.draw()
    titles = {ax.get_title().replace("\n", " "): ax for ax in fig.axes if ax.get_visible() and ax.images}
    assert set(titles) == {"plain-20, seed 1 of 2", "residual-20, seed 0", "plain-56, seed 0"}
    # One colour scale per depth: depth 20's panels share theirs, depth 56 has its own.
    norms = {title: ax.images[0].norm for title, ax in titles.items()}
    assert norms["plain-20, seed 1 of 2"] is norms["residual-20, seed 0"] is not norms["plain-56, seed 0"]
    assert norms["plain-56, seed 0"].vmin > 1e2 and norms["plain-20, seed 1 of 2"].vmax < 1
    image = titles["plain-20, seed 1 of 2"].images[0]
    rgba = image.to_rgba(image.get_array())
    assert tuple(rgba[1, 0]) == to_rgba(ZERO_COLOUR)  # layer b at step 0: a zero gradient, marked as one
    image = titles["residual-20, seed 0"].images[0]
    assert tuple(image.to_rgba(image.get_array())[1, 1]) == to_rgba("white")  # an infinite one: blank, not the top

    only_diverged = [runs[0], runs[2]]
    fig = plots.grad_norm_heatmaps(only_diverged)
    assert "plain-20, seed 0, diverged" in [ax.get_title().replace("\n", " ") for ax in fig.axes]
