"""The loss-landscape analysis's figure and summary lines: what `reslab analyze landscape` draws and prints
from the arrays that `reslab.analysis.landscape` measured (kept apart so that each module stays short)."""

from __future__ import annotations

import numpy as np

from reslab.plots.measured import by_arm_and_depth, labels_of, shortcut_of

CONVEX_TOLERANCE = 1e-3  # a slice's curvature counts as convex down to -0.1% of its largest eigenvalue
BASIN = 2.0  # the 2-D summary's basin: grid points with a loss below this multiple of the loss at θ
NOT_FINITE = "0.8"  # the 2-D panels' colour where the loss overflowed
DECADES = 4  # the figures show losses up to this many decades above the lowest; higher ones saturate


def _short(label: str) -> str:
    """An arm's label for a narrow panel title: without the ``model.`` prefixes, broken at the variant's
    parentheses and commas (the 1-D legend gives it in full)."""
    return label.replace("model.", "").replace(" (", "\n(").replace(", ", ",\n")


def _loss_range(values: list[np.ndarray]) -> tuple[float, float]:
    """The lowest and highest positive finite loss among ``values``, the highest at most `DECADES` decades above the
    lowest, so that one diverging arm does not flatten the others' scale."""
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)].ravel() for v in values])
    if not len(finite):
        return 1e-3, 1.0
    low = float(finite.min())
    return low, max(min(float(finite.max()), low * 10**DECADES), low * 1.01)


def _nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """1-2-5 values within [low, high], thinned to at most ``most``, for a log colour bar."""
    exponents = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    ticks = [m * 10**e for e in exponents for m in (1, 2, 5) if low <= m * 10**e <= high]
    return ticks[:: max(1, int(np.ceil(len(ticks) / most)))] or [low, high]


def _ratio(value: float) -> str:
    return f"{value:.3g}×" if np.isfinite(value) else "not finite"


def curves_1d(arrays: dict) -> np.ndarray:
    """The 1-D losses as directions × points (results saved before ``--directions`` hold one curve)."""
    return np.atleast_2d(arrays["loss_1d"])


def _spread(values: list[float]) -> str:
    """``median (lowest–highest)`` of ratios, or the one value; any not finite is said."""
    finite = np.array([v for v in values if np.isfinite(v)])
    lost = f", {len(values) - len(finite)} not finite" if len(finite) < len(values) else ""
    if not len(finite):
        return "not finite"
    if len(finite) == 1:
        return _ratio(float(finite[0])) + lost
    low, high = float(finite.min()), float(finite.max())
    return f"median {_ratio(float(np.median(finite)))} ({low:.3g}–{_ratio(high)}{lost})"


def figure(results, settings: dict):
    """Top row: the 1-D loss curves, one panel per depth, one line per arm (mean over seeds, range shaded; plain
    arms solid, residual dashed); log scale where the losses span more than a factor of 20. Below: the 2-D
    landscape of each arm (columns) at each depth (rows), the lowest seed, as filled contours on log-spaced levels
    shared within a depth, with the 2× loss-at-θ contour dashed in white; + marks θ, x the grid's lowest point,
    grey where the loss is not finite. Losses more than `DECADES` decades above a depth's lowest are drawn at the
    top of the scale."""
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from reslab.plots.style import PAGE, add_arm_key, arm_key_height, new_figure, short_arm_labels, styled

    one, two = ("loss_1d" in results[0].arrays, "loss_2d" in results[0].arrays)

    @styled
    def draw():
        depths = sorted({r.depth for r in results})
        labels, shortcut = labels_of(results), shortcut_of(results)
        colors = {label: f"C{i}" for i, label in enumerate(labels)}
        styles = {label: "-" if shortcut[label] == "none" else "--" for label in labels}
        groups = by_arm_and_depth(results)
        short = short_arm_labels(labels)
        keyed = any(short[a] != a for a in labels)
        top_h, row_h = 2.4, float(np.clip(5.6 / len(labels), 1.6, 2.6))  # square 2-D panels filling the width
        heights = [top_h] * one + [row_h * len(depths) + 1.1] * two  # + titles of up to 3 lines, axis labels, legend
        fig = new_figure(PAGE, sum(heights) + 0.4 + arm_key_height(short))
        parts = list(fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0])
        top, bottom = parts[0] if one else None, parts[-1] if two else None
        if one:
            axes = top.subplots(1, len(depths), squeeze=False)[0]
            seen = {}  # one legend entry per arm, whichever depths it ran at
            for ax, depth in zip(axes, depths):
                curves = []
                for (label, d), members in groups.items():
                    if d != depth:
                        continue
                    losses = np.concatenate([curves_1d(m.arrays) for m in members])  # (seeds × directions, points)
                    alphas, mean = members[0].arrays["alphas"], losses.mean(0)
                    curves.append(losses)
                    (line,) = ax.plot(alphas, mean, styles[label], color=colors[label])
                    seen.setdefault(short[label] if keyed else label, line)
                    if len(losses) > 1:
                        ax.fill_between(alphas, losses.min(0), losses.max(0), color=colors[label], alpha=0.2, lw=0)
                    ax.plot(0, mean[len(alphas) // 2], "o", ms=3, color=colors[label])
                low, high = _loss_range(curves)
                if high / low > 20:
                    ax.set_yscale("log")
                    ax.set_ylim(low / 1.5, high * 1.5)
                else:
                    ax.set_ylim(0, high * 1.05)
                ax.set_title(f"depth {depth}")
                ax.set_xlabel("α")
            axes[0].set_ylabel("training loss (nats)")
            count = max(len(curves_1d(r.arrays)) for r in results)
            seeds = " and seeds" if any(len(m) > 1 for m in groups.values()) else ""
            several = f"; mean over {count} random directions{seeds}, their range shaded" if count > 1 else ""
            if count == 1 and seeds:
                several = "; several seeds: mean, range shaded"
            top.suptitle(
                "1-D: loss at θ + α·d (d filter-normalised: α = 1 moves each filter by its own norm); dot: θ"
                + (f"\n{several.removeprefix('; ')}" if several else ""),
                fontsize=8,
            )
            ncol = min(len(seen), 4 if keyed else 2)
            top.legend(seen.values(), seen.keys(), loc="outside lower center", ncol=ncol, frameon=False)
        if two:
            axes = bottom.subplots(len(depths), len(labels), squeeze=False, sharex=True, sharey=True)
            for ax, label in zip(axes[0], labels):
                ax.set_title(short[label] if keyed else _short(label), fontsize=6.5, color=colors[label])
            for row, depth in zip(axes, depths):
                firsts = {label: groups[(label, depth)][0] for label in labels if (label, depth) in groups}
                low, high = _loss_range([r.arrays["loss_2d"] for r in firsts.values()])
                levels, norm = np.geomspace(low, high, 15), LogNorm(low, high)
                filled = None
                for ax, label in zip(row, labels):
                    ax.set_aspect("equal")
                    if label not in firsts:
                        ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
                        continue
                    ax.set_facecolor(NOT_FINITE)  # shows where the loss overflowed (masked below)
                    r = firsts[label]
                    grid, loss = r.arrays["grid"], np.ma.masked_invalid(r.arrays["loss_2d"])
                    filled = ax.contourf(grid, grid, loss.T, levels=levels, norm=norm, cmap="viridis", extend="both")
                    basin = BASIN * float(r.arrays["origin_loss"])
                    if loss.min() < basin < loss.max():
                        ax.contour(grid, grid, loss.T, levels=[basin], colors="white", linewidths=0.8, linestyles="--")
                    i, j = np.unravel_index(np.ma.argmin(loss), loss.shape)
                    ax.plot(0, 0, "+", color="white", ms=7, mew=1.2)
                    ax.plot(grid[i], grid[j], "x", color="red", ms=5, mew=1.0, clip_on=False)
                    ax.tick_params(labelsize=6)
                row[0].set_ylabel(f"depth {depth}\nβ")
                if filled is not None:
                    bar = bottom.colorbar(filled, ax=list(row), shrink=0.9, pad=0.02, aspect=15)
                    bar.set_label("training loss (nats)", fontsize=7)
                    bar.ax.yaxis.set_major_locator(FixedLocator(_nice_ticks(low, high)))
                    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                    bar.ax.yaxis.set_minor_locator(NullLocator())
                    bar.ax.tick_params(labelsize=6)
            for ax in axes[-1]:
                ax.set_xlabel("α")
            marks = [
                Line2D([], [], ls="", marker="+", color="k", ms=6, label="θ (trained weights)"),
                Line2D([], [], ls="", marker="x", color="red", ms=5, label="lowest grid point"),
                Line2D([], [], ls="--", color="0.4", lw=0.8, label=f"{BASIN:g}× the loss at θ"),
            ]
            if any(not np.isfinite(r.arrays["loss_2d"]).all() for r in results):
                marks.append(Patch(color=NOT_FINITE, label="loss not finite"))
            bottom.legend(handles=marks, loc="outside lower center", ncol=len(marks), frameon=False)
            seeds = ", the lowest seed of each" if any(len(m) > 1 for m in groups.values()) else ""
            same = "d1 = d above" if one else "d1, d2 filter-normalised"
            bottom.suptitle(f"2-D: loss at θ + α·d1 + β·d2 ({same}, colours shared within a depth{seeds})", fontsize=8)
        add_arm_key(fig, short)
        fig.suptitle(
            "Loss landscape along filter-normalised random directions (Li et al. 2018)\n"
            f"{int(results[0].arrays['images'])} training images; BN in evaluation mode; biases and BN parameters "
            f"held fixed; direction seed {settings['seed']}"
        )
        return fig

    return draw()


def summary(results, settings: dict) -> list[str]:
    one, two = ("loss_1d" in results[0].arrays, "loss_2d" in results[0].arrays)
    span = settings["span"]
    lines = []
    for (label, depth), members in by_arm_and_depth(results).items():
        seeds = f", mean of {len(members)} seeds" if len(members) > 1 else ""
        loss0 = np.mean([float(m.arrays["origin_loss"]) for m in members])
        error0 = 100 * np.mean([float(m.arrays["origin_error"]) for m in members])
        text = f"- **{label}-{depth}**{seeds}: at θ training loss {loss0:.3g} (error {error0:.1f}%)"
        if one:
            ratios = sharpness_spread([m.arrays for m in members], span)
            count = len(curves_1d(members[0].arrays))
            times = f" × {len(members)} seeds" if len(members) > 1 else ""
            over = f" over {count} directions × 2 signs{times}" if count > 1 else ""
            text += (
                f"; 1-D, loss / loss at θ{over}: {_spread(ratios[span / 2])} at |α| = {span / 2:g}, "
                f"{_spread(ratios[span])} at |α| = {span:g}"
            )
        if two:
            basin = 100 * np.mean([basin_fraction(m.arrays) for m in members])
            step = 2 * span / (settings["grid"] - 1)
            convex = 100 * np.mean([convex_fraction(m.arrays["loss_2d"], step) for m in members])
            text += f"; 2-D (one slice): {basin:.0f}% of the grid within {BASIN:g}× the loss at θ, "
            text += f"locally convex at {convex:.0f}%"
        lines.append(text)
    if one:
        lines.append(
            "- 1-D: the loss at θ + α·d divided by the loss at θ, as the median and range over the random directions d "
            "and -d (one direction is one draw: they differ by up to an order of magnitude); large ratios mean a sharp "
            "minimum along d (d is scaled filter by filter to the net's own weights, so nets of different weight "
            "scales compare)"
        )
    if two:
        lines.append(
            f"- 2-D: the share of the α-β grid whose loss is within {BASIN:g}× the loss at θ (the basin's extent), and "
            f"of its interior points where the slice's finite-difference Hessian has no eigenvalue below "
            f"-{CONVEX_TOLERANCE:g}× its largest (locally convex); a non-convex slice shows negative curvature of the "
            f"loss, a convex one may still hide it in other directions (Li et al. map the full Hessian's eigenvalues)"
        )
    return lines


def sharpness_1d(arrays: dict, span: float, direction: int = 0) -> dict[float, float]:
    """L(α) / L(0) at α = ±span/2 and ±span, interpolated linearly on the 1-D curve along direction ``direction``."""
    base, curve = float(arrays["origin_loss"]), curves_1d(arrays)[direction]
    return {a: float(np.interp(a, arrays["alphas"], curve)) / base for a in (-span, -span / 2, span / 2, span)}


def sharpness_spread(members: list[dict], span: float) -> dict[float, list[float]]:
    """``|α| -> `sharpness_1d` ratios`` at |α| = span/2 and span, pooled over the runs, their directions and the two
    signs of α (d and -d are equally likely draws of a random direction)."""
    pooled: dict[float, list[float]] = {span / 2: [], span: []}
    for arrays in members:
        for k in range(len(curves_1d(arrays))):
            for a, ratio in sharpness_1d(arrays, span, k).items():
                pooled[abs(a)].append(ratio)
    return pooled


def basin_fraction(arrays: dict) -> float:
    """The fraction of the 2-D grid whose loss is within `BASIN` × the loss at θ."""
    return float(np.mean(arrays["loss_2d"] <= BASIN * float(arrays["origin_loss"])))


def convex_fraction(loss: np.ndarray, step: float) -> float:
    """The fraction of the 2-D grid's interior points where the slice is locally convex: the central-difference
    Hessian [[L_aa, L_ab], [L_ab, L_bb]] has no eigenvalue below -`CONVEX_TOLERANCE` × its largest magnitude.
    Points whose stencil touches a loss that is not finite are left out."""
    with np.errstate(invalid="ignore", over="ignore"):
        c = loss[1:-1, 1:-1]
        l_aa = (loss[2:, 1:-1] - 2 * c + loss[:-2, 1:-1]) / step**2
        l_bb = (loss[1:-1, 2:] - 2 * c + loss[1:-1, :-2]) / step**2
        l_ab = (loss[2:, 2:] - loss[2:, :-2] - loss[:-2, 2:] + loss[:-2, :-2]) / (4 * step**2)
    hessians = np.stack([np.stack([l_aa, l_ab], -1), np.stack([l_ab, l_bb], -1)], -1)
    finite = np.isfinite(hessians).all(axis=(-1, -2))
    if not finite.any():
        return float("nan")
    eig = np.linalg.eigvalsh(hessians[finite])  # ascending
    return float(np.mean(eig[:, 0] >= -CONVEX_TOLERANCE * np.abs(eig).max(-1)))
