"""Intervals over seeds, and what they say about the paper's claims.

Every interval is a 95% confidence interval from scipy: for one (arm, depth), the Student t interval of the mean
over seeds (``scipy.stats.t.interval`` with the sample standard error); for a difference between two groups of
seeds (plain − residual at one depth, deepest − shallowest of one arm), Welch's t interval, which assumes neither
equal variances nor that seed k of one arm is paired with seed k of the other
(``scipy.stats.ttest_ind(..., equal_var=False).confidence_interval``). With fewer than two seeds in a group no
interval is possible, and the report says so instead of printing one.

Error rates are bounded: a mean error lies in 0–100 %, a difference of two in −100 to +100 points. With two or three
seeds the t interval is wide (t = 12.7 for two) and can reach past those bounds; it is then cut at the bound
(``Estimate.cut``) and the report says so. Cutting keeps the interval's coverage (the true value cannot lie beyond
the bound) and only stops it claiming values the quantity cannot take.

Seeds with no spread at all (every value identical) give no interval: a zero-width interval would claim certainty
that two or three seeds cannot give, so such a comparison is *not tested*, never *supported*.

A claim is *supported* at that level when the whole interval lies on its side of zero, *contradicted* when the
whole interval lies on the other side, and *not shown* when the interval contains zero: the seeds cannot tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
MEAN_INTERVAL = "95% Student t interval of the mean over seeds, cut at 0 and 100 % where it reaches past them"
DIFFERENCE_INTERVAL = "95% Welch t interval, cut at ±100 points where it reaches past them"
ERROR_BOUNDS = (0.0, 1.0)  # an error rate, as a fraction
DIFFERENCE_BOUNDS = (-1.0, 1.0)  # a difference of two error rates


@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) over seeds with its interval; ``low``/``high`` are None when the seeds
    are too few for one."""

    value: float
    low: float | None
    high: float | None
    n: tuple[int, ...]  # seeds in each group
    cut: bool = False  # the interval reached past the quantity's bounds and was cut there
    no_spread: bool = False  # every seed gave the same value: no interval, and nothing is tested

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


def _bounded(value: float, low: float, high: float, n: tuple[int, ...], bounds: tuple[float, float]) -> Estimate:
    cut_low, cut_high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(value, cut_low, cut_high, n, cut=(cut_low, cut_high) != (low, high))


def mean_interval(values, bounds: tuple[float, float] = ERROR_BOUNDS) -> Estimate | None:
    """The mean of ``values`` with its t interval, cut at ``bounds`` (none for one value or for values that are all
    equal)."""
    x = _clean(values)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, None, None, (1,))
    sem = float(stats.sem(x))
    if sem == 0:
        return Estimate(mean, None, None, (x.size,), no_spread=True)
    low, high = stats.t.interval(LEVEL, df=x.size - 1, loc=mean, scale=sem)
    return _bounded(mean, float(low), float(high), (x.size,), bounds)


def difference_interval(a, b, bounds: tuple[float, float] = DIFFERENCE_BOUNDS) -> Estimate | None:
    """mean(a) − mean(b) with Welch's t interval, cut at ``bounds`` (none unless both groups have two values or
    more, and none when neither group has any spread)."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return None
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(diff, None, None, (x.size, y.size))
    if x.std() == 0 and y.std() == 0:  # scipy's interval is undefined, and two seeds alike are no evidence
        return Estimate(diff, None, None, (x.size, y.size), no_spread=True)
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence_level=LEVEL)
    return _bounded(diff, float(ci.low), float(ci.high), (x.size, y.size), bounds)


def points(e: Estimate | None, signed: bool = False) -> str:
    """``+2.31 [0.40, 4.22]`` in percentage points, or the value alone when there is no interval."""
    if e is None:
        return "–"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    text = fmt.format(100 * e.value)
    if e.has_interval:
        text += f" [{100 * e.low:.2f}, {100 * e.high:.2f}]" + ("*" if e.cut else "")
    return text


def verdict(e: Estimate | None, expected: int) -> str:
    """How the interval of ``e`` bears on a claim that its value has the sign ``expected`` (+1 or -1)."""
    if e is None:
        return "no data"
    if e.no_spread:
        return "not tested: the seeds gave identical values, so no interval can be had"
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
