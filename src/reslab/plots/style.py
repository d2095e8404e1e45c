"""The figures' shared look: paper sizes and fonts, one colour per depth in every figure, the order of arms, and
the smoothing of noisy per-batch curves. No pyplot: figures are built with the object-oriented API, so nothing
depends on a backend or on global state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure


class Run(Protocol):
    """What the figures read of a run (`reslab.results.runs.Run` has it): its curve family and depth, its curves and
    the instruments' arrays."""

    arm: str
    shortcut: str  # none (plain) | A | B: what styles and pairs arms, never their names
    depth: int
    seed: int
    status: str  # finished, diverged, failed, ...
    curves: dict
    grad_norms: dict | None
    responses: dict | None


COLUMN, PAGE = 3.3, 7.0  # figure widths in inches
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# One colour per depth everywhere (tab10), fixed for the usual depths so sweeps compare too.
_STANDARD_DEPTHS = (8, 14, 20, 32, 44, 56, 110, 164, 1202)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
# The order of arms in every figure and table: by shortcut, plain (none) first, then A and B; by name within one.
SHORTCUTS = ("none", "A", "B")


def depth_color(depth: int) -> str:
    if depth in _STANDARD_DEPTHS:
        return _PALETTE[_STANDARD_DEPTHS.index(depth)]
    return _PALETTE[hash(depth) % len(_PALETTE)]


def new_figure(width: float, height: float) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def styled(fn):
    """Run a plotting function with the paper style in effect (rc params are read at artist creation)."""

    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


def arm_order(arm: str, shortcut: str) -> tuple:
    """The sort key of an arm: its shortcut (plain first), then its label."""
    return (SHORTCUTS.index(shortcut) if shortcut in SHORTCUTS else len(SHORTCUTS), arm)


def in_arm_order(shortcuts: dict[str, str]) -> list[str]:
    """The arms of ``arm label -> shortcut``, in figure order."""
    return sorted(shortcuts, key=lambda arm: arm_order(arm, shortcuts[arm]))


def arms_of(runs: Sequence[Run]) -> list[str]:
    return in_arm_order({r.arm: r.shortcut for r in runs})


def by_arm_and_depth(runs: Sequence[Run]) -> dict[tuple[str, int], list[Run]]:
    """Runs that differ only in seed, grouped by (arm, depth)."""
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.arm, r.depth)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: kv[0][1]))


def shown_seed(members: Sequence[Run], series: str) -> Run | None:
    """The run a one-seed panel shows (``series``: "grad_norms" or "responses"): the lowest seed that finished and
    recorded the series, else the lowest that recorded it (a diverged run's panel is then labelled so)."""
    recorded = [r for r in members if getattr(r, series) is not None and len(getattr(r, series)["steps"])]
    finished = [r for r in recorded if r.status == "finished"]
    return min(finished or recorded, key=lambda r: r.seed, default=None)


def seed_note(run: Run, members: Sequence[Run]) -> str:
    """`seed_label` where the run is not simply the lowest seed and finished (`` (seed 1, diverged)``), else ''."""
    if run.status == "finished" and run.seed == min(m.seed for m in members):
        return ""
    status = "" if run.status == "finished" else f", {run.status}"
    return f" (seed {run.seed}{status})"


def seed_label(run: Run, members: Sequence[Run]) -> str:
    """``seed 1 of 2`` (and ``, diverged`` for a run that did not finish): which run a one-seed panel shows."""
    status = "" if run.status == "finished" else f", {run.status}"
    return f"seed {run.seed} of {len(members)}{status}" if len(members) > 1 else f"seed {run.seed}{status}"


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average (edges use the available points): the per-batch training error is noisy. The window is at
    most a quarter of the points, so a short run is smoothed little rather than bent into a shape it did not have."""
    window = min(window, len(values) // 4)
    if window <= 1:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def curve(run: Run, tag: str) -> tuple[np.ndarray, np.ndarray]:
    return run.curves.get(tag, (np.zeros(0, np.int64), np.zeros(0)))


def seed_curves(runs: list[Run], tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Every run's (seed's) values at the steps all of them logged: (steps, array of shape runs × steps)."""
    curves = [curve(r, tag) for r in runs]
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return np.zeros(0, np.int64), np.zeros((0, 0))
    common = curves[0][0]
    for steps, _ in curves[1:]:
        common = np.intersect1d(common, steps)
    return common, np.stack([v[np.isin(s, common)] for s, v in curves])


def mean_curve(runs: list[Run], tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (seeds) at the steps all of them logged."""
    steps, values = seed_curves(runs, tag)
    return steps, (values.mean(axis=0) if len(steps) else np.zeros(0))


# An arm's own label longer than this does not fit a panel title of an 8-arm figure on a page.
SHORT_LABEL_CHARS = 14


def short_arm_labels(arms: Sequence[str]) -> dict[str, str]:
    """Labels a panel title or a legend can hold: the arms' own where all are short (``plain``, ``residual``),
    else each arm's model and a number (``plain 1``, ``plain 2``, ``residual 1``), explained by `add_arm_key`."""
    if all(len(a) <= SHORT_LABEL_CHARS for a in arms):
        return {a: a for a in arms}
    counts: dict[str, int] = defaultdict(int)
    short = {}
    for arm in arms:
        model = arm.split(" (", 1)[0]
        counts[model] += 1
        short[arm] = f"{model} {counts[model]}"
    return short


def arm_key_height(short: dict[str, str]) -> float:
    """Inches a figure grows by to hold the key `add_arm_key` puts below it (none where the labels are the arms')."""
    keyed = sum(s != a for a, s in short.items())
    return 0.15 * keyed + 0.3 if keyed else 0.0


def arm_key(short: dict[str, str]) -> list:
    """What each short arm label stands for, as legend entries without a mark (none where labels are the arms')."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], ls="", marker="", label=f"{s} = {a}") for a, s in short.items() if s != a]


def add_arm_key(fig: Figure, short: dict[str, str]) -> None:
    """Below the figure, what each short arm label stands for (nothing where the labels are the arms' own)."""
    handles = arm_key(short)
    entries = [h.get_label() for h in handles]
    if not entries:
        return
    ncol = 2 if len(entries) > 3 and max(map(len, entries)) <= 60 else 1
    fig.legend(
        handles,
        entries,
        loc="outside lower center",
        ncol=ncol,
        frameon=False,
        handlelength=0,
        handletextpad=0,
        columnspacing=2.0,
        title="arms",
        title_fontsize=7,
    )


def wrap_title(title: str, width: int = 38) -> str:
    """A panel title on as many lines as it needs: an arm's label can carry several settings."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title
