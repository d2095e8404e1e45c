"""The path-length analysis's figure and summary lines: what `reslab analyze paths` draws and prints
from the arrays that `reslab.analysis.paths` measured (kept apart so that each module stays short)."""

from __future__ import annotations

import numpy as np

from reslab.plots.measured import by_arm_and_depth, labels_of

COVERAGE = 0.9  # the share of the total gradient magnitude the reported interval of path lengths holds


def shortest_interval(share: np.ndarray, coverage: float = COVERAGE) -> tuple[int, int]:
    """The shortest run of path lengths [lo, hi] whose shares sum to at least ``coverage`` of the total (of equally
    short ones, the one holding the most)."""
    cum = np.concatenate([[0.0], np.cumsum(share)])
    need = coverage * cum[-1] * (1 - 1e-9)  # float round-off must not push an exact fit out
    best = (len(share), -1.0, 0, len(share) - 1)
    for lo in range(len(share)):
        end = int(np.searchsorted(cum, cum[lo] + need, side="left"))
        if end >= len(cum):
            break
        best = min(best, (end - lo, -(cum[end] - cum[lo]), lo, end - 1))
    return best[2], best[3]


def _alive(members) -> list:
    """The runs with some gradient at the first block's input (a collapsed net has none: its share is NaN)."""
    return [m for m in members if np.isfinite(m.arrays["share"]).all()]


def _combined(members) -> tuple[np.ndarray, np.ndarray, tuple[int, int], float]:
    """The per-path magnitude and share of runs with a gradient (means over seeds), the interval and mean length of
    that share."""
    per_path = np.mean([m.arrays["per_path"] for m in members], axis=0)
    share = np.mean([m.arrays["share"] for m in members], axis=0)
    return per_path, share, shortest_interval(share), float((np.arange(len(share)) * share).sum())


def figure(results, settings: dict):
    """Veit et al.'s Fig. 6 for every residual run: (a) the number of paths of each length, (b) the gradient
    magnitude per path, (c) the share of the total gradient magnitude from paths of each length. Colour: depth;
    line style: arm; mean over seeds, the range over seeds shaded; in (c) a marker at each weighted mean length.
    Runs with no gradient at the first block's input (collapsed nets) are left out of (b) and (c)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from reslab.plots.style import PAGE, add_arm_key, arm_key_height, depth_color, new_figure, short_arm_labels, styled

    @styled
    def draw():
        groups = by_arm_and_depth(results)
        labels = labels_of(results)
        styles = dict(zip(labels, ["-", "--", ":", "-."] * len(labels)))
        short = short_arm_labels(labels)
        fig = new_figure(PAGE, 3.0 + arm_key_height(short))
        ax_count, ax_per, ax_share = fig.subplots(1, 3)
        drawn: list[int] = []
        for (label, depth), members in groups.items():
            color, ls = depth_color(depth), styles[label]
            if depth not in drawn:
                drawn.append(depth)
                ax_count.plot(members[0].arrays["length"], members[0].arrays["paths"], color=color)
            members = _alive(members)
            if not members:
                continue  # said in the summary
            per_path, share, _, mean_length = _combined(members)
            length = np.arange(len(share))
            ax_per.plot(length, np.where(per_path > 0, per_path, np.nan), color=color, ls=ls)
            ax_share.plot(length, share, color=color, ls=ls)
            if len(members) > 1:
                each = np.stack([m.arrays["per_path"] for m in members])
                ax_per.fill_between(length, each.min(0), each.max(0), color=color, alpha=0.15, lw=0)
                each = np.stack([m.arrays["share"] for m in members])
                ax_share.fill_between(length, each.min(0), each.max(0), color=color, alpha=0.15, lw=0)
            ax_share.plot([mean_length], [np.interp(mean_length, length, share)], "v", color=color, ms=4)
        ax_count.set_yscale("log")
        ax_per.set_yscale("log")
        ax_share.set_ylim(bottom=0)
        ax_count.set_title("(a) number of paths")
        ax_per.set_title("(b) gradient per path")
        ax_share.set_title("(c) share of the gradient")
        ax_count.set_ylabel("paths of length k, binom(B, k)")
        ax_per.set_ylabel("gradient norm per image")
        ax_share.set_ylabel("share of the total")
        for ax in (ax_count, ax_per, ax_share):
            ax.set_xlabel("path length k (branches)")
            ax.set_xlim(left=0)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        handles = [Line2D([], [], color=depth_color(d), label=f"depth {d}, B={_blocks(results, d)}") for d in drawn]
        if len(labels) > 1:
            handles += [Line2D([], [], color="0.3", ls=styles[label], label=short[label]) for label in labels]
        handles.append(Line2D([], [], color="0.3", marker="v", ls="none", label="mean length"))
        fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=7)
        add_arm_key(fig, short)
        images, samples = int(results[0].arrays["images"]), int(results[0].arrays["samples"])
        arms = labels[0] if len(labels) == 1 else "residual arms"
        fig.suptitle(
            f"Gradient through paths of each length (Veit et al. 2016, Fig. 6): {arms}\n"
            f"at the first block's input; {images} training images x {samples} random paths per length",
            fontsize="medium",
        )
        return fig

    return draw()


def _blocks(results, depth: int) -> int:
    return int(next(r for r in results if r.depth == depth).arrays["blocks"])


def _interval_text(members) -> str:
    """Each seed's weighted mean length with its 95% bootstrap interval over images (results measured before the
    interval was saved say so)."""
    parts = []
    for m in members:
        interval = m.arrays.get("mean_length_interval")
        if interval is None:
            return "; no interval (measured before paths saved one: --force measures again)"
        parts.append(f"{float(m.arrays['mean_length']):.2f} [{interval[0]:.2f}, {interval[1]:.2f}]")
    seeds = f" by seed ({', '.join(str(m.seed) for m in members)})" if len(members) > 1 else ""
    return f"; mean length{seeds} with its 95% bootstrap interval over images: {'; '.join(parts)}"


def summary(results, settings: dict) -> list[str]:
    lines = []
    for (label, depth), members in by_arm_and_depth(results).items():
        count, alive = int(members[0].arrays["blocks"]), _alive(members)
        dead = [str(m.seed) for m in members if m not in alive]
        zero = "the gradient at the first block's input is exactly zero on every image: the net's output does not "
        zero += "depend on its input (a collapsed net), so there is nothing to divide among paths"
        if not alive:
            lines.append(f"- **{label}-{depth}** ({count} blocks): {zero}")
            continue
        per_path, share, (lo, hi), mean_length = _combined(alive)
        seeds = f", mean of {len(alive)} seeds" if len(alive) > 1 else ""
        mode = f"{count // 2}" if count % 2 == 0 else f"{count // 2} or {count // 2 + 1}"  # binom(B, k)'s peak
        text = (
            f"- **{label}-{depth}** ({count} blocks{seeds}): {COVERAGE:.0%} of the gradient magnitude from paths of "
            f"{lo}-{hi} blocks ({lo / count:.2f}-{hi / count:.2f} of the net), weighted mean {mean_length:.1f} "
            f"blocks ({mean_length / count:.2f}); per path, the shortcut-only path carries {per_path[0]:.2g} and "
            f"the path through all blocks {per_path[-1]:.2g}; most paths have {mode} blocks"
        )
        text += _interval_text(alive)
        if dead:
            text += f"; left out: seed {', '.join(dead)}, where {zero}"
        lines.append(text)
    return lines
