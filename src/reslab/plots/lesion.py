"""The lesion study's figure and summary lines: what `reslab analyze lesion` draws and prints from the arrays that
`reslab.analysis.lesion` measured."""

from __future__ import annotations

import numpy as np

from reslab.plots.measured import by_arm_and_depth, labels_of
from reslab.plots.style import PAGE, new_figure, styled


def several(results) -> bool:
    """Whether the results hold the several-block deletions and the reorderings (Veit et al. Fig. 5)."""
    return all("deleted_error" in r.arrays for r in results)


def figure(results, settings: dict):
    """One panel per depth: test error (%) against the deleted block's position, one line per arm (mean over
    seeds, range shaded), the intact net's error as a dotted line, downsampling blocks shaded grey. Below, where
    measured, per depth: test error against the number of blocks deleted at once (solid) and of swaps (dashed),
    the mean over draws and seeds with their middle half (25th to 75th percentile) shaded (Veit et al. Fig. 5)."""
    from matplotlib.ticker import MaxNLocator

    @styled
    def draw():
        depths = sorted({r.depth for r in results})
        labels = labels_of(results)
        colors = {label: f"C{i}" for i, label in enumerate(labels)}
        more = several(results)
        fig = new_figure(PAGE, 4.6 if more else 2.4)
        grid = fig.subplots(2 if more else 1, len(depths), squeeze=False)
        axes = grid[0]
        groups = by_arm_and_depth(results)
        for ax, depth in zip(axes, depths):
            first = next(r for r in results if r.depth == depth)
            position = np.arange(1, len(first.arrays["error"]) + 1)
            for i in np.flatnonzero(first.arrays["downsampling"]):
                ax.axvspan(position[i] - 0.5, position[i] + 0.5, color="0.9", lw=0)
            for (label, d), members in groups.items():
                if d != depth:
                    continue
                errors = 100 * np.stack([m.arrays["error"] for m in members])
                base = 100 * np.mean([float(m.arrays["base_error"]) for m in members])
                color = colors[label]
                ax.plot(position, errors.mean(0), "-o", ms=2.5, color=color, label=label.replace("model.", ""))
                if len(members) > 1:
                    ax.fill_between(position, errors.min(0), errors.max(0), color=color, alpha=0.2, lw=0)
                ax.axhline(base, color=color, ls=":", lw=1)
                missing = position[np.isnan(errors.mean(0))]
                if len(missing):
                    ax.plot(missing, np.full(len(missing), 0.0), "x", color=color, ms=4, clip_on=False)
            ax.set_title(f"depth {depth} ({len(position)} blocks)")
            ax.set_xlabel("deleted block")
            ax.set_ylim(bottom=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_ylabel("test error (%)\nafter deleting it")
        if more:
            _draw_several(grid[1], depths, groups, colors)
        handles = {}
        for ax in axes:  # one entry per arm, whichever depths it ran at
            for handle, name in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(name, handle)
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle(
            "Lesion study (Veit et al. 2016): blocks deleted or reordered at test time\n"
            f"{int(results[0].arrays['images'])} test images; mean over seeds (range shaded)\n"
            "dotted: intact net; x: cannot be deleted; grey: downsampling block"
        )
        return fig

    return draw()


def _draw_several(axes, depths, groups, colors) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax, depth in zip(axes, depths):
        for (label, d), members in groups.items():
            if d != depth:
                continue
            for kind, style in (("deleted", "-"), ("swapped", "--")):
                ks = members[0].arrays[f"{kind}_k"]
                if not len(ks):
                    continue
                errors = 100 * np.concatenate([m.arrays[f"{kind}_error"] for m in members], axis=1)  # k × (draws·seeds)
                ax.plot(ks, np.nanmean(errors, 1), style, marker="o", ms=2, color=colors[label])
                low, high = np.nanpercentile(errors, [25, 75], axis=1)  # the full range of 20 draws hides the lines
                ax.fill_between(ks, low, high, color=colors[label], alpha=0.15, lw=0)
        ax.set_xlabel("k: deleted (solid), swaps (dashed)")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("test error (%): mean,\nmiddle half of draws shaded")


def _several_summary(members: list, base: float) -> str:
    """The mean test error, with its range over the draws and seeds, at the smallest and largest k of each kind."""
    parts = []
    for kind, what in (("deleted", "k blocks deleted together"), ("swapped", "k random swaps")):
        ks = members[0].arrays.get(f"{kind}_k")
        if ks is None or not len(ks):
            continue
        errors = 100 * np.concatenate([m.arrays[f"{kind}_error"] for m in members], axis=1)
        at = [
            f"k={int(ks[i])} {np.nanmean(errors[i]):.1f}% ({np.nanmin(errors[i]):.1f}–{np.nanmax(errors[i]):.1f}%)"
            for i in sorted({0, len(ks) - 1})
        ]
        parts.append(f"{what}: {', '.join(at)} over {np.isfinite(errors[0]).sum()} draws")
    return "; " + "; ".join(parts) if parts else ""


def summary(results, settings: dict) -> list[str]:
    lines = []
    for (label, depth), members in by_arm_and_depth(results).items():
        errors = 100 * np.stack([m.arrays["error"] for m in members]).mean(0)
        base = 100 * np.mean([float(m.arrays["base_error"]) for m in members])
        down = members[0].arrays["downsampling"]
        inner = errors[~down & ~np.isnan(errors)]
        at_down = errors[down & ~np.isnan(errors)]
        seeds = f", mean of {len(members)} seeds" if len(members) > 1 else ""
        text = f"- **{label}-{depth}**{seeds}: intact {base:.1f}%; one non-downsampling block deleted: "
        text += f"median {np.median(inner):.1f}%, worst {inner.max():.1f}%" if len(inner) else "none"
        if len(at_down):
            text += f"; a downsampling block deleted: {', '.join(f'{e:.1f}%' for e in at_down)}"
        elif down.any():
            text += "; downsampling blocks cannot be deleted (no shortcut)"
        text += _several_summary(members, base)
        lines.append(text)
    return lines
