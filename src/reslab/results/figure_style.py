"""The figures' shared look: paper sizes and fonts, one colour per depth in every figure, the order of arms, and
the smoothing of noisy per-batch curves. No pyplot: figures are built with the object-oriented API, so nothing
depends on a backend or on global state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from reslab.results.runs import Run

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
ARM_ORDER = ("plain", "residual", "residual_b")


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


def arm_order(arm: str) -> tuple:
    """plain, residual, residual_b first (each followed by its variants), then anything else."""
    base = arm.split(" (")[0]
    return (ARM_ORDER.index(base) if base in ARM_ORDER else len(ARM_ORDER), arm)


def arms_of(runs: Sequence[Run]) -> list[str]:
    return sorted({r.arm for r in runs}, key=arm_order)


def by_arm_and_depth(runs: Sequence[Run]) -> dict[tuple[str, int], list[Run]]:
    """Runs that differ only in seed, grouped by (arm, depth)."""
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.arm, r.depth)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: kv[0][1]))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average (edges use the available points): the per-batch training error is noisy. The window is at
    most a quarter of the points, so a short run is smoothed little rather than bent into a shape it did not have."""
    window = min(window, len(values) // 4)
    if window <= 1:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")
