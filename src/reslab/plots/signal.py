"""The signal-propagation analysis's figure and summary lines: what `reslab analyze signal` draws and prints from the
arrays that `reslab.analysis.signal` measured, beside the theory's prediction it stored with them."""

from __future__ import annotations

import numpy as np

from reslab.plots.measured import by_arm_and_depth, labels_of

MARGIN = 0.02  # decades per layer: how close a measured growth must be to the predicted one to support it


def verdict(low: float, high: float, predicted: float, margin: float = MARGIN) -> str:
    """*supported* when the interval lies within the prediction ± margin, *contradicted* when it lies wholly
    outside, *not shown* otherwise (the report's words, with an equivalence margin as its "no worse" claims)."""
    if predicted - margin <= low and high <= predicted + margin:
        return "supported"
    if high < predicted - margin or low > predicted + margin:
        return "contradicted"
    return "not shown"


def _stream_text(arrays: dict) -> str:
    """The signal propagation plot in numbers: the stream's channel variance entering stage 1's first and last
    blocks, and the branch-to-stream variance ratio at its last (De and Smith: a stream variance growing about
    linearly with the block index, each branch a shrinking share of it)."""
    blocks = int((arrays["stage"] == 1).sum()) // 2  # two convs per block
    if blocks < 2 or "stream" not in arrays:
        return ""
    stream, branch = arrays["stream"][:, :blocks, 1].mean(0), arrays["branch"][:, :blocks, 1].mean(0)
    return (
        f"; stage 1's stream variance {stream[0]:.2f} entering block 1, {stream[-1]:.2f} entering block {blocks} "
        f"({stream[-1] / stream[0]:.1f}×), branch / stream there {branch[-1] / stream[-1]:.2f}"
    )


def across_depths(results) -> list[str]:
    """Per arm at two or more depths, the rise per layer at each: constant for an exponential (Yang et al.'s plain
    BN nets), falling with depth for a power law (De and Smith's residual BN nets)."""
    lines = []
    for label in labels_of(results):
        firsts = {d: m[0].arrays for (a, d), m in by_arm_and_depth(results).items() if a == label}
        if len(firsts) < 2:
            continue
        parts = [
            f"{d}: {a['growth_interval'][0]:+.4f} ({a['growth_interval'][1]:+.4f} to {a['growth_interval'][2]:+.4f})"
            for d, a in sorted(firsts.items())
        ]
        shallow, deep = firsts[min(firsts)]["growth_interval"], firsts[max(firsts)]["growth_interval"]
        if deep[2] < shallow[1]:
            trend = "falls with depth (the deepest's interval lies below the shallowest's), as a power law's"
        elif deep[1] > shallow[2]:
            trend = "rises with depth (the deepest's interval lies above the shallowest's)"
        else:
            trend = "is the same at the shallowest and deepest within their intervals, as an exponential's"
        lines.append(f"- **{label}**, rise per layer by depth: {'; '.join(parts)}; it {trend}")
    return lines


def _draw_dynamics(axes, dynamics, short) -> None:
    """A run's own profile at each step it measured (`SignalAtSteps`), one panel per run, colour = step."""
    import matplotlib

    for ax, ((label, depth), r) in zip(axes, dynamics):
        steps, logs = r.arrays["steps"], np.log10(r.arrays["steps_input_grad"])
        colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(steps)))
        layer = np.arange(1, logs.shape[1] + 1)
        for step, row, color in zip(steps, logs, colors):
            ax.plot(layer, row, color=color, lw=1.1, label=f"step {int(step)}")
        ax.set_title(f"{short[label]}-{depth}: during training", fontsize=8)
        ax.set_xlabel("layer (1 = input side)")
        ax.legend(fontsize=6, frameon=False)
    axes[0].set_ylabel("log10 ‖∂loss/∂input‖\nof the run, at each step")
    for ax in axes[len(dynamics) :]:
        ax.set_visible(False)


def figure(results, settings: dict):
    """One panel per depth: log10 of the input-gradient norm at each layer (1 = input side), the mean over
    initialisations with their range shaded, one colour per arm; dashed, the predicted growth drawn through each
    stage's last layer."""
    from reslab.plots.style import PAGE, add_arm_key, arm_key_height, new_figure, short_arm_labels, styled

    @styled
    def draw():
        depths = sorted({r.depth for r in results})
        labels = labels_of(results)
        short = short_arm_labels(labels)
        colors = {label: f"C{i}" for i, label in enumerate(labels)}
        groups = by_arm_and_depth(results)
        dynamics = [(key, m[0]) for key, m in groups.items() if "steps" in m[0].arrays][:4]
        fig = new_figure(PAGE, (5.4 if dynamics else 2.8) + arm_key_height(short))
        grid = fig.subplots(2 if dynamics else 1, max(len(depths), len(dynamics)), squeeze=False)
        axes = grid[0][: len(depths)]
        for ax in grid[0][len(depths) :]:
            ax.set_visible(False)
        if dynamics:
            _draw_dynamics(grid[1], dynamics, short)
        for ax, depth in zip(axes, depths):
            for (label, d), (r, *_) in groups.items():
                if d != depth:
                    continue
                logs = np.log10(r.arrays["input_grad"])  # (seeds, layers)
                layer = np.arange(1, logs.shape[1] + 1)
                ax.plot(layer, logs.mean(0), color=colors[label], lw=1.2, label=short[label])
                ax.fill_between(layer, logs.min(0), logs.max(0), color=colors[label], alpha=0.2, lw=0)
                predicted, stage = float(r.arrays["predicted"]), r.arrays["stage"]
                shape = r.arrays.get("predicted_profile")  # the expected profile itself, where computed
                if np.isfinite(predicted):
                    for s in (1, 2, 3):
                        at = layer[stage == s]
                        if len(at) > 1:
                            end = logs.mean(0)[stage == s][-1]
                            line = (
                                end + predicted * (at[-1] - at)
                                if shape is None
                                else end + shape[stage == s] - shape[stage == s][-1]
                            )
                            ax.plot(at, line, "--", color=colors[label], lw=0.9)
            ax.set_title(f"depth {depth}")
            ax.set_xlabel("layer (1 = input side)")
        axes[0].set_ylabel("log10 ‖∂loss/∂input‖\nof each layer")
        handles, names = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            for h, n in zip(*ax.get_legend_handles_labels()):
                if n not in names:
                    handles.append(h)
                    names.append(n)
        fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=7)
        add_arm_key(fig, short)
        seeds = int(results[0].arrays["input_grad"].shape[0])
        head = (
            "Signal propagation: the gradient norm layer by layer (top: at initialisation; below: during the run)\n"
            if dynamics
            else "Signal propagation at initialisation: the gradient norm layer by layer (training mode, BN on the "
            "batch)\n"
        )
        fig.suptitle(
            head + f"{seeds} initialisations each, range shaded; dashed: the predicted rise toward the input\n"
            "(plain nets: Yang et al. 2019 with BN, zero padding's losses without; residual nets with BN: a power "
            "law, no line)",
            fontsize="medium",
        )
        return fig

    return draw()


def summary(results, settings: dict) -> list[str]:
    lines = []
    for (label, depth), members in by_arm_and_depth(results).items():
        arrays = members[0].arrays  # a run's seed only seeds its initialisations: the first run's stand for all
        growth = arrays["growth"]
        mean, low, high = (float(v) for v in arrays["growth_interval"])
        inner = int(((arrays["stage"] >= 1) & (arrays["stage"] <= 3)).sum())
        text = (
            f"- **{label}-{depth}**: the gradient norm rises toward the input by {mean:+.4f} decades per layer (95% "
            f"interval {low:+.4f} to {high:+.4f} over {len(growth)} initialisations), {mean * inner:+.1f} decades "
            f"over its {inner} inner layers"
        )
        predicted = float(arrays["predicted"])
        if np.isfinite(predicted):
            what = (
                f"Yang et al.'s λ = {10 ** (2 * predicted):.3f} (BN over {int(arrays['bn_positions'])} positions)"
                if str(arrays["norm"]) == "batch" and members[0].shortcut == "none"
                else "He initialisation's preserved gradient, less what zero padding loses at the maps' borders"
                if "predicted_profile" in arrays
                else "no exponential growth"
            )
            text += (
                f"; predicted {predicted:+.4f} ({what}): {verdict(low, high, predicted)} within ±{MARGIN} decades per "
                f"layer; measured / predicted {mean / predicted:.2f}"
                if predicted
                else f"; predicted 0 ({what}): {verdict(low, high, predicted)} within ±{MARGIN} decades per layer"
            )
        elif members[0].shortcut != "none" and str(arrays["norm"]) == "batch":
            text += "; predicted: a power law (De and Smith), so a rise per layer that falls with depth (below)"
            text += _stream_text(arrays)
        else:
            text += "; no prediction here for this arm"
        lines.append(text)
        if "steps_growth" in arrays:
            during = ", ".join(f"step {int(k)}: {g:+.4f}" for k, g in zip(arrays["steps"], arrays["steps_growth"]))
            lines.append(f"  - during its own training (one batch per step), the rise per layer: {during}")
    lines += across_depths(results)
    lines.append(
        f"- A claim is *supported* when the 95% interval lies within the prediction ± {MARGIN} decades per layer, "
        "*contradicted* when it lies wholly outside, *not shown* otherwise. Yang et al.'s theory is for wide "
        "fully-connected nets; a convolution's BN normalises over batch × height × width"
    )
    return lines
