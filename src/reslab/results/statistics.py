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

The intervals describe; the claims are decided by tests (`claims`): each claim is a family of one-sided Welch tests,
Holm-adjusted within the family, *supported* when its adjusted p is below 5 %, *contradicted* when the opposite
one-sided test's is, and *not shown* otherwise; a comparison without an interval is *not tested*, and says why.
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


def untested(e: Estimate | None) -> str:
    """Why a comparison without an interval tests nothing."""
    if e is None:
        return "no data"
    if e.no_spread:
        return "not tested: the seeds gave identical values, so no interval can be had"
    return f"no interval possible ({' and '.join(map(str, e.n))} seed(s)): not tested"


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family's p-values (controls the family-wise error rate). By hand: scipy has
    Benjamini-Hochberg/Yekutieli (false discovery rate) only, and statsmodels is not worth a dependency for 6 lines."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Test:
    """One claim's one-sided Welch test: ``p`` for the claim, ``p_against`` for the opposite direction."""

    estimate: Estimate | None
    p: float | None = None
    p_against: float | None = None

    @property
    def tested(self) -> bool:
        return self.p is not None


def one_sided(x, y, expected: int, shift: float = 0.0) -> Test:
    """Welch's one-sided test that mean(x) − mean(y) − shift has the sign ``expected`` (+1 or −1); untested when a
    group has fewer than two seeds or no group has any spread. The opposite direction's p is 1 − p (a continuous
    test statistic)."""
    estimate = difference_interval(x, y)
    if estimate is None or not estimate.has_interval:
        return Test(estimate)
    alternative = "greater" if expected > 0 else "less"
    p = float(stats.ttest_ind(_clean(x) - shift, _clean(y), equal_var=False, alternative=alternative).pvalue)
    return Test(estimate, p, 1.0 - p)


def decide(tests: list[Test]) -> list[str]:
    """Each test's verdict with Holm's adjustment over the tested ones (the claim's family)."""
    tested = [i for i, t in enumerate(tests) if t.tested]
    adj_for = dict(zip(tested, holm([tests[i].p for i in tested]), strict=True))
    adj_against = dict(zip(tested, holm([tests[i].p_against for i in tested]), strict=True))
    out = []
    for i, t in enumerate(tests):
        if not t.tested:
            out.append(untested(t.estimate))
        elif adj_for[i] < 1 - LEVEL:
            out.append(f"supported (one-sided p = {t.p:.2g}, Holm-adjusted over {len(tested)}: {adj_for[i]:.2g})")
        elif adj_against[i] < 1 - LEVEL:
            out.append(f"contradicted (the opposite one-sided test, Holm-adjusted: p = {adj_against[i]:.2g})")
        else:
            out.append(f"not shown (one-sided p = {t.p:.2g}, Holm-adjusted over {len(tested)}: {adj_for[i]:.2g})")
    return out


def trend(points_by_depth: dict[int, list[float]]) -> str | None:
    """The depth trend of one arm as a least-squares line over every run (not the means): slope in points per layer
    with its 95% t interval and the two-sided p of no trend (``scipy.stats.linregress``); None with fewer than three
    runs or fewer than two depths."""
    xs = [d for d, values in points_by_depth.items() for v in _clean(values)]
    ys = [v for d, values in points_by_depth.items() for v in _clean(values)]
    if len(xs) < 3 or len(set(xs)) < 2:
        return None
    fit = stats.linregress(xs, ys)
    half = stats.t.ppf(0.5 + LEVEL / 2, len(xs) - 2) * fit.stderr
    return (
        f"{100 * fit.slope:+.3f} [{100 * (fit.slope - half):+.3f}, {100 * (fit.slope + half):+.3f}] points per layer "
        f"over {len(xs)} runs at depths {min(xs)}–{max(xs)} (p = {fit.pvalue:.2g} for no trend)"
    )


DEFAULT_MARGIN = 0.01  # "no worse": by less than one percentage point (reslab report --margin)


def points_text(fraction: float) -> str:
    return f"{100 * fraction:g} percentage point" + ("" if 100 * fraction == 1 else "s")


def claims(
    groups: dict[tuple[str, int], list[float]], plain: str, residual: str, metric: str, margin: float = DEFAULT_MARGIN
) -> list[str]:
    """The paper's claims for a pair of arms, from ``groups`` (arm, depth) -> per-seed values of ``metric``. Each
    claim is a family of one-sided Welch tests at 95%, Holm-adjusted within the family: the plain net's error rises
    from its shallowest depth to each deeper one; the residual net beats the plain one at each depth both have; the
    deeper residual nets are no worse than its shallowest by more than ``margin`` (a non-inferiority test: the claim
    is supported when the data show the rise is below the margin, not merely that no rise was detected). Each
    line gives the difference in points with its two-sided interval. Then each arm's depth trend over every run."""
    lines = []
    plain_depths = sorted(d for a, d in groups if a == plain)
    residual_depths = sorted(d for a, d in groups if a == residual)
    families = [
        (
            f"{plain}: {metric} rises with depth",
            [
                (f"depth {plain_depths[0]} → {d}", groups[plain, d], groups[plain, plain_depths[0]], +1, 0.0)
                for d in plain_depths[1:]
            ],
        ),
        (
            f"{residual} beats {plain} on {metric} ({plain} − {residual})",
            [
                (f"depth {d}", groups[plain, d], groups[residual, d], +1, 0.0)
                for d in plain_depths
                if d in residual_depths
            ],
        ),
        (
            f"{residual}: deeper nets are no worse on {metric} (a rise below {points_text(margin)})",
            [
                (
                    f"depth {residual_depths[0]} → {d}",
                    groups[residual, d],
                    groups[residual, residual_depths[0]],
                    -1,
                    margin,
                )
                for d in residual_depths[1:]
            ],
        ),
    ]
    for claim, cases in families:
        if not cases:
            continue
        tests = [one_sided(x, y, expected, shift) for _, x, y, expected, shift in cases]
        lines.append(f"- {claim}:")
        for (label, *_), test, result in zip(cases, tests, decide(tests), strict=True):
            lines.append(f"  - {label}: {points(test.estimate, signed=True)} points: **{result}**.")
    for arm in (plain, residual):
        if (line := trend({d: v for (a, d), v in groups.items() if a == arm})) is not None:
            lines.append(f"- {arm}: {metric} against depth: {line}.")
    return lines
