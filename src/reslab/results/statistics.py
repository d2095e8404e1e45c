"""Intervals over seeds, and what they say about the paper's claims.

Every interval is a 95% confidence interval from scipy: for one (arm, depth), the Student t interval of the mean
over seeds (``scipy.stats.t.interval`` with the sample standard error); for a difference between two groups of
seeds (plain − residual at one depth, deepest − shallowest of one arm), Welch's t interval, which assumes neither
equal variances nor that seed k of one arm is paired with seed k of the other
(``scipy.stats.ttest_ind(..., equal_var=False).confidence_interval``). With fewer than two seeds in a group no
interval is possible, and the report says so instead of printing one.

A claim is *supported* at that level when the whole interval lies on its side of zero, *contradicted* when the
whole interval lies on the other side, and *not shown* when the interval contains zero: the seeds cannot tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
MEAN_INTERVAL = "95% Student t interval of the mean over seeds"
DIFFERENCE_INTERVAL = "95% Welch t interval"


@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) over seeds with its interval; ``low``/``high`` are None when the seeds
    are too few for one."""

    value: float
    low: float | None
    high: float | None
    n: tuple[int, ...]  # seeds in each group

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def side(self) -> int:
        """+1 if the whole interval is above zero, -1 if below, 0 if it contains zero or there is none."""
        if not self.has_interval:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _clean(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def mean_interval(values) -> Estimate | None:
    """The mean of ``values`` with its t interval (none for one value; zero width when all are equal)."""
    x = _clean(values)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, None, None, (1,))
    sem = float(stats.sem(x))
    if sem == 0:
        return Estimate(mean, mean, mean, (x.size,))
    low, high = stats.t.interval(LEVEL, df=x.size - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high), (x.size,))


def difference_interval(a, b) -> Estimate | None:
    """mean(a) − mean(b) with Welch's t interval (none unless both groups have two values or more)."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return None
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(diff, None, None, (x.size, y.size))
    if x.std() == 0 and y.std() == 0:  # no spread at all: scipy's interval is undefined; the difference is exact
        return Estimate(diff, diff, diff, (x.size, y.size))
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence_level=LEVEL)
    return Estimate(diff, float(ci.low), float(ci.high), (x.size, y.size))


def points(e: Estimate | None, signed: bool = False) -> str:
    """``+2.31 [0.40, 4.22]`` in percentage points, or the value alone when there is no interval."""
    if e is None:
        return "–"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    text = fmt.format(100 * e.value)
    if e.has_interval:
        text += f" [{100 * e.low:.2f}, {100 * e.high:.2f}]"
    return text


def verdict(e: Estimate | None, expected: int) -> str:
    """How the interval of ``e`` bears on a claim that its value has the sign ``expected`` (+1 or -1)."""
    if e is None:
        return "no data"
    if not e.has_interval:
        return f"no interval possible ({' and '.join(map(str, e.n))} seed(s)): not tested"
    side = e.side()
    if side == expected:
        return "supported at 95%"
    if side == -expected:
        return "contradicted at 95%"
    return "not shown at 95% (the interval contains 0)"


def claims(groups: dict[tuple[str, int], list[float]], plain: str, residual: str, metric: str) -> list[str]:
    """One sentence per claim for a pair of arms, from ``groups`` (arm, depth) -> per-seed values of ``metric``."""
    lines = []
    for arm, claim, expected in (
        (plain, f"{plain}: {metric} rises with depth", +1),
        (residual, f"{residual}: deeper nets are no worse ({metric} does not rise with depth)", -1),
    ):
        depths = sorted(d for a, d in groups if a == arm)
        for hi in depths[1:]:  # each deeper net against the shallowest
            lo = depths[0]
            change = difference_interval(groups[arm, hi], groups[arm, lo])
            if expected == -1 and change is not None and change.side() == 0 and change.has_interval:
                result = "not contradicted at 95%: no rise detected, which does not show that there is none"
            elif expected == -1 and change is not None and change.side() == -1:
                result = "supported at 95% (deeper is better)"
            elif expected == -1 and change is not None and change.side() == 1:
                result = f"contradicted at 95%: the deeper {residual} net has the higher {metric} here"
            else:
                result = verdict(change, expected)
            lines.append(f"- {claim} (depth {lo} → {hi}: {points(change, signed=True)} points): **{result}**.")
    for depth in sorted({d for a, d in groups if a == plain} & {d for a, d in groups if a == residual}):
        gap = difference_interval(groups[plain, depth], groups[residual, depth])
        lines.append(
            f"- {residual} beats {plain} at depth {depth} on {metric} ({plain} − {residual}: "
            f"{points(gap, signed=True)} points): **{verdict(gap, +1)}**."
        )
    return lines
