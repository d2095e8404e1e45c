"""Pure plotting functions: data in, a matplotlib Figure out. Used by the report, TensorBoard and notebooks.

Figures are sized for a paper (3.3 in column, 7 in page width) at 8 pt, and every depth has one colour in
every figure (`reslab.plots.style`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reslab.plots.depth import error_vs_depth  # the report's and the notebook's figures, from one module
from reslab.plots.layers import (  # noqa: F401  (re-exported: the report, the instruments and the notebook)
    ZERO_COLOUR,
    grad_norm_heatmaps,
    grad_norm_profiles,
    heatmap_figure,
    layer_profile_figure,
    response_std,
)
from reslab.plots.style import (
    PAGE,
    Run,
    add_arm_key,
    arm_key_height,
    arms_of,
    by_arm_and_depth,
    curve,
    depth_color,
    mean_curve,
    new_figure,
    seed_curves,
    short_arm_labels,
    smooth,
    styled,
    wrap_title,
)


@styled
def error_curves(runs: Sequence[Run], smooth_points: int = 9) -> Figure:
    """He et al. Fig. 6 (Fig. 1 is its 20-vs-56 case): training error (dashed, smoothed; the logged points faint
    beneath) and validation error (solid) against iterations, one panel per arm, one colour per depth; mean over
    seeds, with the range over seeds shaded where there are several. The final test error is a dot at the end."""
    arms = arms_of(runs)
    short = short_arm_labels(arms)
    fig = new_figure(PAGE, 2.6 + arm_key_height(short))
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
        ax.set_title(wrap_title(short[arm] if short[arm] != arm else f"{arm} nets", 18))
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
    add_arm_key(fig, short)
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
    "ZERO_COLOUR",
]
