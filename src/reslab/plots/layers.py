"""Per-layer figures: gradient norms against layer index and over training (profiles, heat maps) and the layer
responses' spread (He et al. Fig. 7), for a sweep (the report) and for one run (TensorBoard's image tab)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullFormatter

from reslab.plots.style import (
    COLUMN,
    PAGE,
    Run,
    add_arm_key,
    arm_key_height,
    arms_of,
    by_arm_and_depth,
    depth_color,
    new_figure,
    seed_label,
    seed_note,
    short_arm_labels,
    shown_seed,
    styled,
    wrap_title,
)


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
    short = short_arm_labels(arms)
    fig = new_figure(PAGE, 1.9 * len(arms) + 0.3 + arm_key_height(short))
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
            ax.set_title(wrap_title(f"{short[arm]}, step {steps[i]}", 24))
    for ax in axes.flat:
        ax.set_yscale("log")
        _layer_axis(ax, n_max)
        ax.grid(alpha=0.3, which="both", lw=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient L2 norm")
    for row in axes:
        if row[-1].lines:
            row[-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside the data
    add_arm_key(fig, short)
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
    short = short_arm_labels(arms)
    fig = new_figure(PAGE, 1.8 * len(arms) + 0.9 + arm_key_height(short))
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
            good = np.isfinite(values) & (values > 0)
            shown = np.where(good, np.clip(values, norm.vmin, norm.vmax), np.where(values == 0, norm.vmin / 10, np.nan))
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
            ax.set_title(wrap_title(f"{short[arm]}-{depth}, {label}", 16))
        if image is not None:
            bar = fig.colorbar(image, ax=axes[:, j], location="bottom", shrink=0.9, aspect=30)
            bar.set_label(f"depth {depth}", fontsize=7)
            if norm.vmax / norm.vmin < 10:  # under a decade: 1-2-5 labels, not every minor tick's (they overprint)
                bar.ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                bar.ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes.flat:
        if not ax.images:
            ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("iterations")
    fig.supylabel("layer index (1 = input side)", fontsize=8)
    low, high = (_ordinal(p) for p in percentiles)
    fig.suptitle(
        f"gradient L2 norm; colour scale per depth: {low} to {high} percentile of its panels; zero: light blue; "
        "not finite: blank",
        fontsize=7,
    )
    add_arm_key(fig, short)
    return fig


@styled
def response_std(runs: Sequence[Run]) -> Figure:
    """He et al. Fig. 7: std of each 3×3 layer's response (after BN, before addition/ReLU) at the end of
    training, by layer index (left) and sorted by magnitude (right); colour = depth, line style = arm (dashed =
    plain where there are only the paper's arms); one seed per line, the lowest that finished (the legend names
    any other)."""
    arms = arms_of(runs)
    short = short_arm_labels(arms)
    styles = _arm_styles(runs, arms)
    fig = new_figure(PAGE, 2.4 + arm_key_height(short))
    left, right = fig.subplots(1, 2, sharey=True)
    n_max, others, depths = 1, [], set()
    for (arm, depth), members in by_arm_and_depth(runs).items():
        run = shown_seed(members, "responses")
        if run is None:
            continue
        values = run.responses["values"][-1]
        n_max, note = max(n_max, len(values)), seed_note(run, members)
        depths.add(depth)
        if note:
            others.append(f"{short[arm]}-{depth}{note}")
        kw = {"color": depth_color(depth), "ls": styles[arm], "lw": 1.0}
        left.plot(np.arange(1, len(values) + 1), values, **kw)
        right.plot(np.arange(1, len(values) + 1), np.sort(values)[::-1], **kw)
    _layer_axis(left, n_max)
    right.set_xlabel("rank (sorted by magnitude)")
    left.set_ylabel("response std")
    values = np.concatenate([line.get_ydata() for line in left.lines] + [np.zeros(0)])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > 100:  # e.g. a plain-110 whose responses blew up
        left.set_yscale("log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if right.lines:
        handles = [Line2D([], [], color=depth_color(d), label=f"{d} layers") for d in sorted(depths)]
        handles += [Line2D([], [], color="0.35", ls=styles[a], lw=1.0, label=short[a]) for a in arms]
        seeds = "one seed per line:\nthe lowest that finished"
        if others:
            seeds += "; other seeds:\n" + "\n".join(others[:3]) + ("\n…" if len(others) > 3 else "")
        ncol = 2 if len(handles) > 8 else 1
        fig.legend(handles=handles, loc="outside right upper", frameon=False, title=seeds, title_fontsize=7, ncol=ncol)
    add_arm_key(fig, short)
    return fig


# Line styles for arms: the paper's two (or three) arms by shortcut; more arms cycle through these.
_SHORTCUT_STYLES = {"none": "--", "A": "-", "B": ":"}
_ARM_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)), (0, (3, 1, 1, 1)))


def _arm_styles(runs: Sequence[Run], arms: Sequence[str]) -> dict:
    shortcuts = {r.arm: r.shortcut for r in runs}
    if len({shortcuts[a] for a in arms}) == len(arms):  # one arm per shortcut: dashed plain, as in the paper
        return {a: _SHORTCUT_STYLES.get(shortcuts[a], "-.") for a in arms}
    return {a: _ARM_STYLES[i % len(_ARM_STYLES)] for i, a in enumerate(arms)}


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
