"""Pure plotting functions: data in, a matplotlib Figure out. Used by the report, TensorBoard and notebooks.

Figures are sized for a paper (3.3 in column, 7 in page width) at 8 pt, and every depth has one colour in
every figure (`reslab.plots.style`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, NullFormatter

from reslab.plots.depth import error_vs_depth  # the report's and the notebook's figures, from one module
from reslab.plots.style import (
    COLUMN,
    PAGE,
    Run,
    arms_of,
    by_arm_and_depth,
    curve,
    depth_color,
    mean_curve,
    new_figure,
    seed_curves,
    seed_label,
    shown_seed,
    smooth,
    styled,
)


@styled
def error_curves(runs: Sequence[Run], smooth_points: int = 9) -> Figure:
    """He et al. Fig. 6 (Fig. 1 is its 20-vs-56 case): training error (dashed, smoothed; the logged points faint
    beneath) and validation error (solid) against iterations, one panel per arm, one colour per depth; mean over
    seeds, with the range over seeds shaded where there are several. The final test error is a dot at the end."""
    arms = arms_of(runs)
    fig = new_figure(PAGE, 2.6)
    axes = fig.subplots(1, len(arms), sharey=True, squeeze=False)[0]
    groups = by_arm_and_depth(runs)
    for ax, arm in zip(axes, arms):
        for (model, depth), members in groups.items():
            if model != arm:
                continue
            color = depth_color(depth)
            steps, seeds = seed_curves(members, "train/error")
            steps = steps + 1  # TensorBoard's step s is the (s+1)-th iteration: x is iterations done
            if len(steps):
                dots = 1.5 if len(steps) > 60 else 3.5  # a short run's few points must show
                ax.plot(steps, 100 * seeds.mean(axis=0), ls="", marker=".", ms=dots, color=color, alpha=0.35)
                smoothed = np.stack([smooth(v, smooth_points) for v in seeds])
                ax.plot(steps, 100 * smoothed.mean(axis=0), "--", color=color, lw=1.0)
                if len(seeds) > 1:
                    ax.fill_between(
                        steps, 100 * smoothed.min(axis=0), 100 * smoothed.max(axis=0), color=color, alpha=0.15, lw=0
                    )
            steps, val = mean_curve(members, "val/error")
            if len(steps):
                ax.plot(steps + 1, 100 * val, "-", color=color, marker="o" if len(steps) < 8 else None, ms=2.5)
            tests = [r.record.get("test_error") for r in members if r.record.get("test_error") is not None]
            if tests:
                ax.plot(
                    [max(r.steps for r in members)],
                    [100 * np.mean(tests)],
                    "o",
                    color=color,
                    ms=4,
                    mec="black",
                    mew=0.5,
                )
        ax.set_title(_wrap(f"{arm} nets"))
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error (%)")
    depths = sorted({d for (_, d) in groups})
    handles = [Line2D([], [], color=depth_color(d), label=f"{d} layers") for d in depths]
    handles += [
        Line2D([], [], ls="--", color="gray", label="train (smoothed)"),
        Line2D([], [], ls="", marker=".", color="gray", alpha=0.5, label="train (logged)"),
        Patch(color="gray", alpha=0.15, label="range over seeds"),
        Line2D([], [], ls="-", color="gray", label="validation"),
        Line2D([], [], ls="", marker="o", color="gray", mec="black", mew=0.5, label="test (final)"),
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig


def _wrap(title: str, width: int = 38) -> str:
    """A panel title on as many lines as it needs: an arm's label can carry several settings."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title


def _ordinal(x: float) -> str:
    """1st, 2nd, 99th, 2.5th."""
    if x != int(x):
        return f"{x:g}th"
    n = int(x)
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _log_norm(arrays: Sequence[np.ndarray], percentiles: tuple[float, float] = (0.0, 100.0)) -> LogNorm:
    """A log colour scale over the finite, positive values between the given percentiles (NaN/inf of a diverged
    run are left blank; zeros have no place on a log scale)."""
    good = np.concatenate([a[np.isfinite(a) & (a > 0)] for a in arrays] + [np.zeros(0)])
    if not good.size:
        return LogNorm(vmin=1e-3, vmax=1.0)
    low, high = np.percentile(good, percentiles)
    return LogNorm(vmin=low, vmax=high if high > low else low * 10)


def _layer_axis(ax, n_layers: int) -> None:
    ax.set_xlabel("layer index (1 = input side)")
    ax.set_xlim(0.5, n_layers + 0.5)


@styled
def grad_norm_profiles(runs: Sequence[Run], fractions: Sequence[float] = (0.0, 0.5, 1.0)) -> Figure:
    """Per-layer gradient L2 norm against layer index (log scale): rows = arms, columns = points of
    training (fractions of the recorded steps), one line per depth: one seed, the lowest that finished (the
    legend says which)."""
    arms = arms_of(runs)
    fig = new_figure(PAGE, 1.9 * len(arms) + 0.3)
    axes = fig.subplots(len(arms), len(fractions), sharey=True, squeeze=False)
    groups = by_arm_and_depth(runs)
    n_max = 1
    for (arm, depth), members in groups.items():
        run = shown_seed(members, "grad_norms")
        if run is None:
            continue
        steps, values = run.grad_norms["steps"], run.grad_norms["values"]
        n_max = max(n_max, values.shape[1])
        for col, frac in enumerate(fractions):
            i = min(len(steps) - 1, round(frac * (len(steps) - 1)))
            ax = axes[arms.index(arm), col]
            label = f"{depth} layers ({seed_label(run, members)})"
            ax.plot(np.arange(1, values.shape[1] + 1), values[i], color=depth_color(depth), label=label)
            ax.set_title(_wrap(f"{arm}, step {steps[i]}"))
    for ax in axes.flat:
        ax.set_yscale("log")
        _layer_axis(ax, n_max)
        ax.grid(alpha=0.3, which="both", lw=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient L2 norm")
    for row in axes:
        if row[-1].lines:
            row[-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside the data
    return fig


ZERO_COLOUR = "#4dd2ff"  # a zero gradient on the heat maps (a log scale has no place for it)


@styled
def grad_norm_heatmaps(runs: Sequence[Run], percentiles: tuple[float, float] = (1.0, 99.0)) -> Figure:
    """Gradient L2 norm per layer (rows, input side at the top) and step (columns), one panel per arm (rows) and
    depth (columns), one seed each (the lowest that finished; the title says which). The panels of one depth share
    a log colour scale spanning the given percentiles of their values, so the arms of a depth compare directly;
    values beyond it take the end colours, zeros are drawn in their own colour and non-finite values left blank."""
    arms = arms_of(runs)
    groups = {}
    for key, members in by_arm_and_depth(runs).items():
        run = shown_seed(members, "grad_norms")
        if run is not None:
            groups[key] = (run, seed_label(run, members))
    depths = sorted({d for (_, d) in groups})
    fig = new_figure(PAGE, 1.8 * len(arms) + 0.9)
    axes = fig.subplots(len(arms), max(1, len(depths)), squeeze=False)
    cmap = colormaps["magma"].with_extremes(under=ZERO_COLOUR, bad="white")
    for j, depth in enumerate(depths):
        column = {arm: v for (arm, d), v in groups.items() if d == depth}
        norm = _log_norm([run.grad_norms["values"] for run, _ in column.values()], percentiles)
        image = None
        for arm, (run, label) in column.items():
            ax = axes[arms.index(arm), j]
            steps, values = run.grad_norms["steps"], run.grad_norms["values"].T
            # Positive values clipped to the scale; a zero below it (the "under" colour: zero's own); NaN/inf masked.
            shown = np.where(
                values > 0, np.clip(values, norm.vmin, norm.vmax), np.where(values == 0, norm.vmin / 10, values)
            )
            image = ax.imshow(
                np.ma.masked_invalid(shown),
                aspect="auto",
                norm=norm,
                cmap=cmap,
                interpolation="nearest",
                # One measurement still spans a visible column: half an interval (or a step) either side of it.
                extent=(steps[0] - 0.5, steps[-1] + 0.5, values.shape[0] + 0.5, 0.5)
                if len(steps) == 1
                else (steps[0], steps[-1], values.shape[0] + 0.5, 0.5),
            )
            ax.set_title(_wrap(f"{arm}-{depth}, {label}"))
            ax.set_xlabel("iterations")
            ax.set_ylabel("layer index")
        if image is not None:
            bar = fig.colorbar(image, ax=axes[:, j], location="bottom", shrink=0.9, aspect=30)
            bar.set_label(f"gradient L2 norm, depth {depth}", fontsize=7)
            if norm.vmax / norm.vmin < 10:  # under a decade: 1-2-5 labels, not every minor tick's (they overprint)
                bar.ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                bar.ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes.flat:
        if not ax.images:
            ax.set_visible(False)
    low, high = (_ordinal(p) for p in percentiles)
    fig.suptitle(
        f"colour scale per depth: {low} to {high} percentile of its panels; zero: light blue; not finite: blank",
        fontsize=7,
    )
    return fig


@styled
def response_std(runs: Sequence[Run]) -> Figure:
    """He et al. Fig. 7: std of each 3×3 layer's response (after BN, before addition/ReLU) at the end of
    training, by layer index (left) and sorted by magnitude (right); colour = depth, dashed = plain; one seed per
    line, the lowest that finished (the legend, outside the axes, says which)."""
    fig = new_figure(PAGE, 2.4)
    left, right = fig.subplots(1, 2, sharey=True)
    styles = {"none": "--", "A": "-", "B": ":"}  # by shortcut
    n_max = 1
    for (arm, depth), members in by_arm_and_depth(runs).items():
        run = shown_seed(members, "responses")
        if run is None:
            continue
        values = run.responses["values"][-1]
        n_max = max(n_max, len(values))
        label = f"{arm}-{depth} ({seed_label(run, members)})"
        kw = {"color": depth_color(depth), "ls": styles.get(run.shortcut, "-."), "label": label}
        left.plot(np.arange(1, len(values) + 1), values, **kw)
        right.plot(np.arange(1, len(values) + 1), np.sort(values)[::-1], **kw)
    _layer_axis(left, n_max)
    right.set_xlabel("layer index (sorted by magnitude)")
    left.set_ylabel("response std")
    values = np.concatenate([line.get_ydata() for line in left.lines] + [np.zeros(0)])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > 100:  # e.g. a plain-110 whose responses blew up
        left.set_yscale("log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if right.lines:
        fig.legend(handles=right.lines, loc="outside right upper", frameon=False)  # never over the data
    return fig


@styled
def layer_profile_figure(
    names: Sequence[str], values: np.ndarray, ylabel: str, title: str = "", log: bool = False
) -> Figure:
    """One run's per-layer values against layer index (for TensorBoard's image tab)."""
    fig = new_figure(COLUMN + 1, 2.2)
    ax = fig.subplots()
    ax.plot(np.arange(1, len(values) + 1), values, marker=".", ms=3)
    if log:
        ax.set_yscale("log")
    _layer_axis(ax, len(values))
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}  ({names[0]} … {names[-1]})" if names else title)
    ax.grid(alpha=0.3)
    return fig


@styled
def heatmap_figure(names: Sequence[str], steps: np.ndarray, values: np.ndarray, label: str) -> Figure:
    """One run's layer × step heat map on a log colour scale (for TensorBoard's image tab)."""
    fig = new_figure(COLUMN + 1, 2.4)
    ax = fig.subplots()
    norm = _log_norm([values])
    last = steps[-1] if steps[-1] > steps[0] else steps[0] + 1
    image = ax.imshow(
        values.T,
        aspect="auto",
        norm=norm,
        cmap="magma",
        interpolation="nearest",
        extent=(steps[0], last, len(names) + 0.5, 0.5),
    )
    ax.set_xlabel("iterations")
    ax.set_ylabel("layer index")
    fig.colorbar(image, ax=ax, label=label)
    return fig


__all__ = [
    "error_curves",
    "error_vs_depth",
    "grad_norm_profiles",
    "grad_norm_heatmaps",
    "response_std",
    "layer_profile_figure",
    "heatmap_figure",
    "depth_color",
    "curve",
]
