"""The report's figures survive any sweep: drawn for 8 arm variants × 5 depths × 5 seeds, with diverged and failed
runs, no text matplotlib draws overlaps another or leaves the figure, and no legend is cut off. The boxes are the
renderer's own (every text that is drawn, with its extent in pixels)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from reslab.plots.style import short_arm_labels
from reslab.results.report import FIGURES, summarize
from reslab.results.runs import Run

DEPTHS = (8, 20, 32, 56, 110)


def ablation(seeds: int = 5) -> list[Run]:
    """plain and residual × norm batch/none × zero-init off/on: 8 arms, each at 5 depths and ``seeds`` seeds; the
    first seed of one arm diverged, the last seed of every plain-110 failed."""
    rng = np.random.default_rng(0)
    runs = []
    for model, norm, zero in itertools.product(("plain", "residual"), ("batch", "none"), (False, True)):
        for depth, seed in itertools.product(DEPTHS, range(seeds)):
            status = "finished"
            if (model, norm, zero, seed) == ("residual", "none", False, 0):
                status = "diverged"
            if (model, depth, seed) == ("plain", 110, seeds - 1):
                status = "failed"
            done = status == "finished"
            swept = [f"model.norm={norm}", f"model.zero_init_residual={zero}"]
            record = {
                "model": model,
                "shortcut": "none" if model == "plain" else "A",
                "depth": depth,
                "seed": seed,
                "variant": "_".join(swept),
                "swept": swept,
                "status": status,
                "steps": 600,
                **{
                    k: float(rng.uniform(0.05, 0.5)) if done else None
                    for k in ("train_error", "val_error", "test_error")
                },
                "identity": {"model.norm": norm, "model.zero_init_residual": zero},
            }
            steps = np.arange(0, 600, 20)
            curves = {"train/error": (steps, rng.uniform(0.05, 0.9, len(steps)))} if status != "failed" else {}
            arrays = None
            if status != "failed":
                arrays = {"steps": np.arange(0, 600, 100), "names": [f"l{i}" for i in range(depth)]}
            grads = {**arrays, "values": 10 ** rng.uniform(-6, 2, (6, depth))} if arrays else None
            responses = {**arrays, "values": rng.uniform(0.5, 3, (6, depth))} if arrays else None
            runs.append(
                Run(Path(f"/sweep/{model}-{depth}_seed{seed}_{'_'.join(swept)}"), record, curves, grads, responses)
            )
    return runs


def text_problems(fig) -> list[str]:
    """Texts that overlap one another (by more than a pixel) or leave the figure, and legends cut off."""
    drawn: list[Text] = []
    original = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    canvas = FigureCanvasAgg(fig)
    Text.draw = record  # every text the renderer draws; tick labels of ticks outside the view are not drawn
    try:
        canvas.draw()
    finally:
        Text.draw = original
    renderer, page = canvas.get_renderer(), fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn]

    def inner(b: Bbox) -> Bbox:
        return Bbox.from_extents(b.x0 + 1, b.y0 + 1, b.x1 - 1, b.y1 - 1)

    def off_page(b: Bbox) -> bool:
        return b.x0 < page.x0 - 1 or b.x1 > page.x1 + 1 or b.y0 < page.y0 - 1 or b.y1 > page.y1 + 1

    problems = [
        f"{a!r} overlaps {b!r}" for (a, x), (b, y) in itertools.combinations(boxes, 2) if inner(x).overlaps(inner(y))
    ]
    problems += [f"{a!r} leaves the figure" for a, x in boxes if off_page(x)]
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    problems += ["a legend is cut off" for legend in legends if off_page(legend.get_window_extent(renderer))]
    for legend in fig.legends:  # a figure's legend, its line samples included, is clear of every other text
        own = {id(t) for t in legend.get_texts()} | {id(legend.get_title())}
        box = inner(legend.get_window_extent(renderer))
        problems += [
            f"{t.get_text()!r} overlaps a legend"
            for t in drawn
            if id(t) not in own and t.get_window_extent(renderer).overlaps(box)
        ]
    return problems


@pytest.mark.slow  # about 20 s: five figures of 200 runs
def test_every_report_figure_of_an_eight_arm_ablation_has_no_overlapping_or_cut_text():
    runs = ablation()
    rows = summarize(runs)
    assert len({r.arm for r in runs}) == 8 and {r.status for r in runs} == {"finished", "diverged", "failed"}
    for name, make in FIGURES.items():
        assert text_problems(make(runs, rows)) == [], name


def test_long_arm_labels_become_short_ones_with_a_key_and_the_check_sees_overlaps():
    arms = sorted({r.arm for r in ablation(seeds=1)})
    short = short_arm_labels(arms)
    assert sorted(short.values()) == [f"{m} {i}" for m in ("plain", "residual") for i in range(1, 5)]
    assert short_arm_labels(["plain", "residual"]) == {"plain": "plain", "residual": "residual"}
    # The check fails where it should: eight long titles side by side on a page.
    from reslab.plots.style import PAGE, new_figure

    fig = new_figure(PAGE, 2)
    for ax, arm in zip(fig.subplots(1, 8), arms, strict=True):
        ax.set_title(arm)
    assert any("overlaps" in p for p in text_problems(fig))


def analysis_results(kind: str, seeds: int = 2) -> list:
    """What `reslab analyze KIND` hands its figure for an 8-arm ablation at depths 8, 20 and 56 with ``seeds``
    seeds: arrays of the measured shapes with made-up values (paths: the residual arms only)."""
    from reslab.plots.measured import Measured

    rng = np.random.default_rng(0)
    results = []
    for model, norm, zero in itertools.product(("plain", "residual"), ("batch", "none"), (False, True)):
        if kind == "paths" and model == "plain":
            continue
        label = f"{model} (model.norm={norm}, model.zero_init_residual={zero})"
        for depth, seed in itertools.product((8, 20, 56), range(seeds)):
            blocks = (depth - 2) // 2
            layers = blocks + 2
            if kind == "lesion":
                down = np.zeros(blocks, bool)
                down[[blocks // 3, 2 * blocks // 3]] = True
                arrays = {
                    "blocks": np.array([f"b{i}" for i in range(blocks)]),
                    "downsampling": down,
                    "error": rng.uniform(0.1, 0.9, blocks),
                    "loss": rng.uniform(0.3, 3, blocks),
                    "base_error": np.array(0.1),
                    "base_loss": np.array(0.3),
                    "images": np.array(2000),
                    "deleted_k": np.arange(1, 9),
                    "deleted_error": rng.uniform(0.1, 0.9, (8, 10)),
                    "swapped_k": np.arange(1, 9),
                    "swapped_error": rng.uniform(0.1, 0.9, (8, 10)),
                }
            elif kind == "landscape":
                alphas, grid = np.linspace(-1, 1, 41), np.linspace(-1, 1, 11)
                a, b = np.meshgrid(grid, grid, indexing="ij")
                arrays = {
                    "alphas": alphas,
                    "loss_1d": 0.3 + rng.uniform(1, 50, (5, 1)) * alphas**2,
                    "error_1d": np.full((5, 41), 0.5),
                    "grid": grid,
                    "loss_2d": 0.3 + rng.uniform(1, 50) * (a**2 + b**2),
                    "error_2d": np.full((11, 11), 0.5),
                    "origin_loss": np.array(0.3),
                    "origin_error": np.array(0.1),
                    "images": np.array(256),
                }
            elif kind == "shattered":
                lags = np.exp(-np.arange(64)[None] / rng.uniform(2, 30, (layers, 1)))
                arrays = {
                    "layers": np.array([f"l{i}" for i in range(layers)]),
                    "layer_number": np.arange(1, 2 * layers, 2)[:layers],
                    "init_lag": lags,
                    "trained_lag": lags**0.5,
                    "init_lag1_by_pair": lags[None, :, 1].repeat(4, 0),
                    "trained_lag1_by_pair": lags[None, :, 1].repeat(4, 0) ** 0.5,
                    "lag_t": np.arange(64) / 63,
                    "step_rms": np.array(0.01),
                    "pairs": np.array(4),
                    "points": np.array(64),
                    "init_constant": np.zeros(layers, int),
                    "trained_constant": np.zeros(layers, int),
                }
            else:
                from scipy.special import comb

                lengths = np.arange(blocks + 1)
                number = comb(blocks, lengths)
                per_path = np.exp(-lengths)
                total = number * per_path
                arrays = {
                    "blocks": np.array(blocks),
                    "length": lengths,
                    "paths": number,
                    "norms": per_path[:, None, None] * rng.uniform(0.5, 1.5, (blocks + 1, 3, 8)),
                    "per_path": per_path,
                    "total": total,
                    "share": total / total.sum(),
                    "mean_length": np.array((lengths * total).sum() / total.sum()),
                    "mean_length_interval": np.array([1.0, 2.0]),
                    "full_gradient": np.array(1.0),
                    "images": np.array(8),
                    "samples": np.array(3),
                }
            shortcut = "none" if model == "plain" else "A"
            results.append(Measured(label, shortcut, depth, seed, f"{model}-{depth}_seed{seed}", arrays))
    return results


ANALYSIS_SETTINGS = {
    "lesion": {"images": 2000, "max_blocks": 8, "samples": 10, "seed": 0},
    "landscape": {"images": 256, "points": 41, "grid": 11, "span": 1.0, "dims": "both", "seed": 0, "directions": 5},
    "shattered": {"pairs": 4, "points": 64, "seed": 0, "bn_images": 512},
    "paths": {"images": 8, "samples": 3, "seed": 0},
}


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) if k == "landscape" else k for k in sorted(ANALYSIS_SETTINGS)]
)  # landscape's 48 contour panels take 5 s: the slow tier
def test_every_analysis_figure_of_an_eight_arm_ablation_has_no_overlapping_or_cut_text(kind):
    import importlib

    figure = importlib.import_module(f"reslab.plots.{kind}").figure(analysis_results(kind), ANALYSIS_SETTINGS[kind])
    assert text_problems(figure) == []
