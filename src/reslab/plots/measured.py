"""What an analysis measured on one run, as its figure and summary receive it, and its grouping by arm and depth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reslab.plots.style import arm_order, in_arm_order


@dataclass
class Measured:
    """One run's arrays, with what the figures group and label them by."""

    label: str  # the arm as the report shows it
    shortcut: str  # none (plain) | A | B: what orders and styles the arms
    depth: int
    seed: int
    name: str  # the job directory's name
    arrays: dict[str, np.ndarray]


def by_arm_and_depth(results: list[Measured]) -> dict[tuple[str, int], list[Measured]]:
    """The results grouped by (arm, depth), seeds together, in the figures' order: depth, then arm."""
    groups: dict[tuple[str, int], list[Measured]] = {}
    for r in sorted(results, key=lambda r: (r.depth, arm_order(r.label, r.shortcut), r.seed)):
        groups.setdefault((r.label, r.depth), []).append(r)
    return groups


def labels_of(results: list[Measured]) -> list[str]:
    """The arms' labels in figure order (plain first)."""
    return in_arm_order({r.label: r.shortcut for r in results})


def shortcut_of(results: list[Measured]) -> dict[str, str]:
    return {r.label: r.shortcut for r in results}
