"""The shattered-gradients analysis's figure and summary lines: what `reslab analyze shattered` draws and prints
from the arrays that `reslab.analysis.shattered` measured (kept apart so that each module stays short)."""

from __future__ import annotations

import numpy as np

from reslab.plots.measured import by_arm_and_depth, labels_of, shortcut_of

STATES = ("init", "trained")  # the panels: the nets `reslab.analysis.shattered` measures
THRESHOLD = 0.5  # the summary's "decorrelated" level


def _mean(members, key: str) -> np.ndarray:
    """Mean over seeds, leaving out NaN (a net whose gradients are all zero); NaN where every seed's is."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": the all-NaN case, NaN on purpose
        return np.nanmean(np.stack([m.arrays[key] for m in members]), axis=0)


def first_below(layer_number: np.ndarray, values: np.ndarray, level: float = THRESHOLD) -> int | None:
    """The first layer whose value is below ``level``, or None."""
    below = np.flatnonzero(values < level)
    return int(layer_number[below[0]]) if len(below) else None


def arm_styles(arms: list[str], shortcut: dict[str, str]) -> dict[str, tuple]:
    """(line style, marker) per arm: the line style tells the shortcut (plain solid), the marker each arm of one
    shortcut apart (a variant)."""
    dashes = {"none": "-", "A": "--", "B": "-."}
    markers = "osD^v<>"
    seen: dict[str, int] = {}
    styles = {}
    for arm in arms:
        k = seen[shortcut[arm]] = seen.get(shortcut[arm], -1) + 1
        styles[arm] = (dashes.get(shortcut[arm], ":"), markers[k % len(markers)])
    return styles


def figure(results, settings: dict):
    """Two columns, at initialisation and after training. Top: the lag-1 correlation at every layer against its
    number of weighted layers from the input. Bottom: at the logits, the correlation against the distance along
    the line. Colour: depth; line style: plain or residual; marker: the arm's variant; mean over pairs and seeds."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter

    from reslab.plots.style import PAGE, add_arm_key, arm_key_height, depth_color, new_figure, short_arm_labels, styled

    @styled
    def draw():
        groups = by_arm_and_depth(results)
        depths = sorted({d for _, d in groups})
        arms = labels_of(results)
        style = arm_styles(arms, shortcut_of(results))
        short = short_arm_labels(arms)
        fig = new_figure(PAGE, 5.4 + arm_key_height(short))
        axes = fig.subplots(2, 2, sharey="row")
        for col, state in enumerate(STATES):
            top, bottom = axes[0, col], axes[1, col]
            for (arm, depth), members in groups.items():
                ls, marker = style[arm]
                kw = dict(color=depth_color(depth), ls=ls, marker=marker, ms=3.5, mfc="white", mew=0.9, lw=1.1)
                layer, lag = members[0].arrays["layer_number"], _mean(members, f"{state}_lag")
                if not np.isfinite(lag[:, 1]).any():
                    continue  # a net whose gradients are all zero (collapsed to a constant): nothing to draw
                # Every tenth point marked (a count, not matplotlib's distance-based float, which NaN points break).
                top.plot(layer, lag[:, 1], markevery=max(1, len(layer) // 10), **kw)
                t = members[0].arrays["lag_t"]
                bottom.plot(t[1:], lag[-1, 1:], markevery=max(1, len(t) // 10), **kw)
            top.set_title("at initialisation (BN statistics estimated)" if state == "init" else "after training")
            top.set_xlabel("weighted layers from the input (last: logits)")
            top.set_xlim(left=0)
            bottom.set_xscale("log")
            bottom.xaxis.set_major_locator(FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]))
            bottom.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            bottom.set_xlabel("t: distance along the line (a→b = 1)")
            for ax in (top, bottom):
                ax.axhline(0, color="0.6", lw=0.6, zorder=0)
                ax.grid(True, color="0.92", lw=0.6)
        axes[0, 0].set_ylabel("lag-1 gradient correlation\n(neighbouring points)")
        axes[1, 0].set_ylabel("gradient correlation\nat the logits")
        for row in axes:
            lo = min(ax.get_ylim()[0] for ax in row)
            for ax in row:
                ax.set_ylim(min(lo, -0.05), 1.05)
        handles = [Line2D([], [], color=depth_color(d), lw=1.5, label=f"depth {d}") for d in depths]
        handles += [
            Line2D([], [], color="0.25", ls=style[a][0], marker=style[a][1], ms=3.5, mfc="white", label=short[a])
            for a in arms
        ]
        fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=7)
        add_arm_key(fig, short)
        first = results[0].arrays
        pairs, points = int(first["pairs"]), int(first["points"])
        seeds = max(len(m) for m in groups.values())
        fig.suptitle(
            "Shattered gradients (Balduzzi et al. 2017): correlation of input gradients at nearby inputs\n"
            f"{pairs} lines between test images a and b, {points} points each"
            + (f"; mean of {seeds} seeds" if seeds > 1 else "")
            + "\nscalar: a fixed random projection (blocks), a's class (logits)",
            fontsize="medium",
        )
        return fig

    return draw()


def summary(results, settings: dict) -> list[str]:
    def at(layer_number, values) -> str:
        below = first_below(layer_number, values)
        return f"layer {below}" if below is not None else "never"

    def value(v: float) -> str:
        return f"{v:.2f}" if np.isfinite(v) else "none (zero gradient)"

    out = []
    for (label, depth), members in by_arm_and_depth(results).items():
        layer = members[0].arrays["layer_number"]
        init, trained = _mean(members, "init_lag")[:, 1], _mean(members, "trained_lag")[:, 1]
        seeds = f", mean of {len(members)} seeds" if len(members) > 1 else ""
        if not np.isfinite(trained).any():
            out.append(
                f"- **{label}-{depth}**{seeds}: every input gradient is zero (the net's output is constant): "
                "no correlation to measure"
            )
            continue
        out.append(
            f"- **{label}-{depth}**{seeds}: lag-1 gradient correlation at the logits {value(init[-1])} at init"
            f"{by_pair(members, 'init')}, {value(trained[-1])} trained{by_pair(members, 'trained')} (last block "
            f"{value(init[-2])}, {value(trained[-2])}); "
            f"first below {THRESHOLD}: {at(layer, init)} at init, {at(layer, trained)} trained" + left_out(members)
        )
    return out


def by_pair(members, state: str) -> str:
    """The spread behind a mean at the logits: the lowest and highest line (pair of images) of all seeds."""
    values = np.concatenate([m.arrays[f"{state}_lag1_by_pair"][:, -1] for m in members])
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return ""
    return f" (lines {values.min():.2f} to {values.max():.2f})"


def left_out(members) -> str:
    """What the correlations leave out: gradients constant over their entries (zero), per state, where any were."""
    parts = []
    for state in ("init", "trained"):
        counts = [m.arrays.get(f"{state}_constant") for m in members]
        if any(c is None for c in counts):
            return "; constant gradients not counted (measured before they were)"
        total = int(sum(int(c.sum()) for c in counts))
        if total:
            each = sum(int(m.arrays["pairs"]) * int(m.arrays["points"]) for m in members)
            layers = int(sum(int((c > 0).sum()) for c in counts))
            parts.append(f"{total} gradients at {state} ({layers} layer(s), of {each} points per layer)")
    return "; left out as constant (zero): " + ", ".join(parts) if parts else ""
