"""The report's intervals over seeds and the claims they decide, against textbook numbers and a tiny real sweep."""

import csv
import math
import shutil

import numpy as np
import pytest
from faults import NanWeightsAt

from reslab.results.report import report
from reslab.results.statistics import claims, decide, difference_interval, mean_interval, one_sided

# The tiny sweep holds plain runs at two learning rates, so every plain run is labelled with its lr.
PLAIN = "plain (optim.lr=0.1)"

T_975_DF2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (printed tables)


def test_the_mean_interval_is_the_student_t_interval():
    e = mean_interval([0.21, 0.22, 0.23])
    half = T_975_DF2 * 0.01 / math.sqrt(3)  # t * s / sqrt(n), s = 0.01
    assert e.value == pytest.approx(0.22) and (e.low, e.high) == pytest.approx((0.22 - half, 0.22 + half))
    assert mean_interval([0.05]).low is None and mean_interval([0.05]).n == (1,)  # one seed: no interval
    assert mean_interval([0.05, None, float("nan")]).n == (1,)  # missing and non-finite values are not seeds
    assert mean_interval([]) is None


def test_the_difference_interval_is_welchs():
    a, b = np.array([0.10, 0.12, 0.14]), np.array([0.02, 0.03, 0.07, 0.04])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))  # Welch-Satterthwaite
    from scipy.stats import t

    half = t.ppf(0.975, df) * math.sqrt(va + vb)
    e = difference_interval(a, b)
    diff = a.mean() - b.mean()
    assert e.value == pytest.approx(diff) and (e.low, e.high) == pytest.approx((diff - half, diff + half))
    assert difference_interval([0.1], [0.2, 0.3]).low is None  # a group of one seed: no interval


def test_an_interval_never_reaches_past_what_an_error_rate_can_take():
    # Two seeds far apart: t = 12.71 with one degree of freedom; the raw interval is 0.50 ± 5.72.
    e = mean_interval([0.05, 0.95])
    assert (e.low, e.high) == (0.0, 1.0) and e.cut and e.value == pytest.approx(0.5)
    raw = mean_interval([0.40, 0.42, 0.44])  # narrow: left as scipy gives it
    assert not raw.cut and 0 < raw.low < raw.high < 1
    # A difference of two error rates lies in [-1, 1].
    d = difference_interval([0.05, 0.95], [0.50, 0.52])
    assert d.low == -1.0 and d.high == 1.0 and d.cut
    from reslab.results.statistics import points

    assert points(e) == "50.00 [0.00, 100.00]*"  # the report marks a cut interval


def test_seeds_with_no_spread_give_no_interval_and_support_nothing():
    same = mean_interval([0.30, 0.30])
    assert same.low is None and same.no_spread and not same.has_interval
    gap = difference_interval([0.30, 0.30], [0.10, 0.10])
    assert gap.value == pytest.approx(0.2) and gap.low is None and gap.no_spread
    assert decide([one_sided([0.30, 0.30], [0.10, 0.10], +1)])[0].startswith("not tested: the seeds gave identical")
    groups = {
        ("plain", 8): [0.3, 0.3],
        ("plain", 20): [0.5, 0.5],
        ("residual", 8): [0.1, 0.1],
        ("residual", 20): [0.1, 0.1],
    }
    assert "supported" not in "\n".join(claims(groups, "plain", "residual", "test error"))


def test_a_claim_is_supported_only_when_its_one_sided_test_holds():
    assert decide([one_sided([0.30, 0.31, 0.32], [0.10, 0.11, 0.12], +1)])[0].startswith("supported")
    assert decide([one_sided([0.10, 0.11, 0.12], [0.30, 0.31, 0.32], +1)])[0].startswith("contradicted")
    assert decide([one_sided([0.10, 0.30, 0.20], [0.15, 0.25, 0.21], +1)])[0].startswith("not shown")
    assert decide([one_sided([0.3], [0.1, 0.2], +1)])[0].startswith("no interval possible")
    # Holm: p = 0.038 alone is supported; twice in one family it is not (2 x 0.038 > 0.05), and the line says so
    x, y = [0.200, 0.212, 0.207], [0.193, 0.198, 0.196]  # one-sided p = 0.038
    alone = one_sided(x, y, +1)
    assert 0.025 < alone.p < 0.05 and decide([alone])[0].startswith("supported")
    assert decide([alone, alone])[0].startswith("not shown") and "Holm-adjusted over 2" in decide([alone, alone])[0]


def test_holm_adjusts_a_family_step_down():
    from reslab.results.statistics import holm

    # Sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04): Holm (1979), by hand.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2]) == [0.2] and holm([0.5, 0.9]) == [1.0, 1.0]


def test_directional_claims_are_one_sided_welch_tests():
    from scipy import stats

    from reslab.results.statistics import one_sided

    x, y = [0.30, 0.31, 0.35], [0.28, 0.30, 0.29]
    t = one_sided(x, y, +1)
    assert t.p == pytest.approx(stats.ttest_ind(x, y, equal_var=False, alternative="greater").pvalue)
    assert t.p_against == pytest.approx(stats.ttest_ind(x, y, equal_var=False, alternative="less").pvalue)
    assert not one_sided([0.3], [0.2, 0.1], +1).tested and not one_sided([0.3, 0.3], [0.2, 0.2], +1).tested


def test_claims_name_each_comparison_and_its_verdict():
    groups = {
        ("plain", 20): [0.10, 0.11, 0.12],
        ("plain", 56): [0.30, 0.32, 0.31],
        ("residual", 20): [0.05, 0.06, 0.05],
        ("residual", 56): [0.04, 0.07, 0.05],
    }
    text = "\n".join(claims(groups, "plain", "residual", "training error"))
    assert "- plain: training error rises with depth:\n  - depth 20 → 56: +20.00 [" in text
    assert "**supported (one-sided p = " in text
    # no rise detected, but three noisy seeds cannot show it is below 1 point: not shown, never "supported"
    assert "deeper nets are no worse on training error (a rise below 1 percentage point)" in text
    assert "depth 20 → 56: +0.00 [" in text and "points: **not shown" in text.split("no worse")[1]
    assert "- residual beats plain on training error (plain − residual):\n  - depth 20:" in text
    assert "plain: training error against depth: +0.556 [" in text  # 20 points over 36 layers


def test_no_worse_is_supported_only_inside_its_margin():
    tight = {("residual", 20): [0.050, 0.051, 0.052], ("residual", 56): [0.050, 0.052, 0.051]}
    tight |= {("plain", 20): [0.1, 0.11], ("plain", 56): [0.2, 0.21]}
    within = "\n".join(claims(tight, "plain", "residual", "test error", margin=0.01))
    assert "no worse" in within and "depth 20 → 56: +0.00 [" in within
    assert within.split("no worse")[1].split("\n")[1].count("**supported") == 1
    worse = {**tight, ("residual", 56): [0.080, 0.082, 0.081]}  # 3 points worse, margin 1 point
    text = "\n".join(claims(worse, "plain", "residual", "test error", margin=0.01))
    assert "**contradicted" in text.split("no worse")[1]


def test_the_report_prints_intervals_differences_and_claims(tiny_sweep):
    rows = {(r["arm"], r["depth"]): r for r in report(tiny_sweep, figures=False, quiet=True)}
    two = rows[PLAIN, 8]  # two seeds: an interval around the mean
    assert two["test_error_ci_low"] <= two["test_error"] <= two["test_error_ci_high"]
    assert rows[PLAIN, 14]["test_error_ci_low"] is None  # one seed
    md = (tiny_sweep / "summary.md").read_text()
    assert md.startswith(f"# Sweep {tiny_sweep.parent.name}/{tiny_sweep.name}")  # the date's folder too
    assert "95% Student t interval of the mean over seeds" in md and "## Differences" in md
    # each seed's value and n beside the mean: plain-8 has seeds 0 and 1
    (s0, v0), (s1, v1) = two["test_error_by_seed"]
    assert (s0, s1) == (0, 1) and two["seeds"] == 2 and two["test_error_values"] == [v0, v1]
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {PLAIN} | 8 |"))
    assert f"| {100 * v0:.1f} (s0), {100 * v1:.1f} (s1) | 2 |" in line
    csv_rows = csv.DictReader((tiny_sweep / "summary.csv").open())
    csv_row = next(r for r in csv_rows if (r["model"], r["variant"], r["depth"]) == ("plain", "", "8"))  # lr 0.1
    assert csv_row["test_error_by_seed"] == f"seed0={v0:.6g};seed1={v1:.6g}"
    assert f"| {PLAIN} − residual | 8 |" in md and "## What the data support" in md
    assert f"residual beats {PLAIN} on training error" in md and "Holm-adjusted" in md
    assert "no interval possible" in md  # depth 14 has one seed per arm


@pytest.mark.slow
def test_a_diverged_or_failed_job_is_listed_and_left_out_of_the_intervals(tiny_sweep, tmp_path):
    from conftest import TINY

    from reslab.config import compose_config
    from reslab.job import train

    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, sweep)
    cfg = compose_config([*TINY, "model=plain", "seed=2"], output_dir=sweep / "plain-8_seed2")  # as the others
    assert train(cfg, callbacks=[NanWeightsAt(3)])["status"] == "diverged"
    rows = {(r["arm"], r["depth"]): r for r in report(sweep, figures=False, quiet=True)}
    plain8 = rows[PLAIN, 8]
    assert plain8["runs"] == 3 and plain8["seeds"] == 2 and "1 diverged" in plain8["status"]
    assert len(plain8["test_error_values"]) == 2  # the intervals are over the two finished seeds only
    assert rows["residual", 20]["seeds"] == 0 and rows["residual", 20]["test_error_ci_low"] is None  # failed
    md = (sweep / "summary.md").read_text()
    assert "| plain-8_seed2 | diverged |" in md
