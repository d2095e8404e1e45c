"""The degradation plot: final error against depth, one line per arm, each seed beside its mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reslab.plots.style import (
    PAGE,
    add_arm_key,
    arm_key_height,
    depth_color,
    in_arm_order,
    new_figure,
    short_arm_labels,
    styled,
)


@styled
def error_vs_depth(rows: Sequence[dict]) -> Figure:
    """The degradation plot: final training error (left) and test error (right) against depth, one line per arm
    (its own marker and line style), each point in its depth's colour as in every other figure: the mean over seeds
    with its 95% t interval as error bars (none where a depth has one seed; cut at 0 and 100 %), and beside it each
    seed's value as a small hollow marker. Arms are nudged sideways so that equal values stay visible. ``rows`` are
    the report's table rows."""
    styles = (
        ("o", "-"),
        ("s", "--"),
        ("^", ":"),
        ("D", "-."),
        ("v", (0, (5, 1))),
        ("P", (0, (1, 1))),
        ("X", (0, (3, 1, 1, 1))),
        ("h", (0, (8, 2))),
    )
    arms = in_arm_order({r["arm"]: r["shortcut"] for r in rows})
    short = short_arm_labels(arms)
    fig = new_figure(PAGE, 2.5 + arm_key_height(short) + 0.12 * max(0, len(arms) - 4))  # and a longer legend
    axes = fig.subplots(1, 2, sharey=True)
    depths = sorted({r["depth"] for r in rows})
    for ax, key, title in zip(axes, ("train_error", "test_error"), ("training error", "test error")):
        for i, arm in enumerate(arms):
            marker, ls = styles[i % len(styles)]
            nudge = 1.0 + 0.03 * (i - (len(arms) - 1) / 2)  # a few percent of the depth, on the log axis
            mine = sorted((r for r in rows if r["arm"] == arm and r.get(key) is not None), key=lambda r: r["depth"])
            if not mine:
                continue
            x = np.asarray([r["depth"] * nudge for r in mine])
            y = np.asarray([100 * r[key] for r in mine])
            ax.plot(x, y, ls=ls, color="0.35", lw=1.0, label=arm)
            for r, xi, yi in zip(mine, x, y):
                below, above = _interval_bar(r, key)
                ax.errorbar(
                    [xi],
                    [yi],
                    yerr=[[100 * below], [100 * above]],
                    marker=marker,
                    ms=4,
                    capsize=2,
                    color=depth_color(r["depth"]),
                    mec="black",
                    mew=0.4,
                    ls="",
                    zorder=3,
                )
                seeds = 100 * np.asarray(r.get(key + "_values") or [], dtype=float)
                if seeds.size > 1:  # each seed beside its mean, so a wide interval shows its cause
                    ax.plot(
                        np.full(seeds.size, xi * 1.06),
                        seeds,
                        ls="",
                        marker=marker,
                        ms=2.5,
                        mfc="none",
                        mec=depth_color(r["depth"]),
                        mew=0.6,
                        zorder=2,
                    )
        ax.set_xscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.minorticks_off()
        ax.set_xlabel("depth (weighted layers)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final error (%)")
    handles = [
        Line2D([], [], ls=styles[i % len(styles)][1], marker=styles[i % len(styles)][0], color="0.35", label=short[arm])
        for i, arm in enumerate(arms)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color=depth_color(d), mec="black", mew=0.4, label=f"{d} layers")
        for d in depths
    ]
    handles.append(Line2D([], [], ls="", marker="o", ms=2.5, mfc="none", mec="0.35", mew=0.6, label="each seed"))
    fig.legend(
        handles=handles,
        loc="outside right upper",
        frameon=False,
        title="mean of n seeds; bars: 95% t\ninterval, cut at 0 and 100 %",
        title_fontsize=7,
    )
    add_arm_key(fig, short)
    return fig


def _interval_bar(row: dict, key: str) -> tuple[float, float]:
    """How far the row's interval reaches below and above its mean (0, 0 without an interval)."""
    low, high = row.get(key + "_ci_low"), row.get(key + "_ci_high")
    return (row[key] - low, high - row[key]) if low is not None and high is not None else (0.0, 0.0)
