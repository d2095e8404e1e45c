"""The sweep report: a Table-6-like table and the figures, written into the sweep directory.

    reslab report multirun/2026-11-26/08-30-00-123456

Reads every job (finished, running, failed or diverged) and writes ``summary.csv``, ``summary.md`` and
the figures as PNG and PDF; prints the table and where the files are. Also run by a Hydra callback at the
end of every multirun.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np

from reslab.files import MLFLOW_RUN_FILE, REPORT_LOCK_FILE, exclusive, write_atomic, write_text_atomic
from reslab.plots import ANALYSES
from reslab.plots import training as plots
from reslab.plots.style import arm_order, in_arm_order
from reslab.results.runs import Run, load_sweep, write_missing_curves
from reslab.results.setup import setup_section, sweep_command, title
from reslab.results.statistics import (
    DEFAULT_MARGIN,
    DIFFERENCE_INTERVAL,
    MEAN_INTERVAL,
    claims,
    difference_interval,
    mean_interval,
    points_text,
)
from reslab.results.statistics import points as pts
from reslab.results.tables import markdown_table, problems_table
from reslab.tensorboard_views import has_training_events, tensorboard_link, write_sweep_views

COLUMNS = (
    "model",
    "variant",
    "shortcut",
    "depth",
    "params",
    "runs",
    "seeds",
    "train_error",
    "train_error_std",
    "train_error_ci_low",
    "train_error_ci_high",
    "train_error_by_seed",
    "val_error",
    "val_error_std",
    "val_error_ci_low",
    "val_error_ci_high",
    "test_error",
    "test_error_std",
    "test_error_ci_low",
    "test_error_ci_high",
    "test_error_by_seed",
    "steps",
    "status",
)
FIGURES = {
    "error_curves": lambda runs, rows: plots.error_curves(runs),
    "error_vs_depth": lambda runs, rows: plots.error_vs_depth(rows),
    "grad_norm_profiles": lambda runs, rows: plots.grad_norm_profiles(runs),
    "grad_norm_heatmaps": lambda runs, rows: plots.grad_norm_heatmaps(runs),
    "response_std": lambda runs, rows: plots.response_std(runs),
}

# What each figure is drawn from: where no run has it (a folder kept without curves or the instruments'
# arrays), the figure is not drawn, and a file of it already there is left as it is rather than replaced by empty axes.
FIGURE_DATA = {
    "error_curves": ("training curves (curves.csv or event files)", lambda r: bool(r.curves)),
    "grad_norm_profiles": ("grad_norms.npz", lambda r: r.grad_norms is not None),
    "grad_norm_heatmaps": ("grad_norms.npz", lambda r: r.grad_norms is not None),
    "response_std": ("responses.npz", lambda r: r.responses is not None),
}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def summarize(runs: list[Run]) -> list[dict]:
    """One row per (arm, depth), arm = model plus any other swept setting: mean ± sample std over the
    finished seeds; the status column counts all jobs."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.arm, run.depth), []).append(run)
    rows = []
    shortcut = {arm: members[0].shortcut for (arm, _), members in groups.items()}
    for (arm, depth), members in sorted(
        groups.items(), key=lambda kv: (kv[0][1], arm_order(kv[0][0], shortcut[kv[0][0]]))
    ):
        done = [r for r in members if r.status == "finished"]
        row = {
            "arm": arm,
            "model": members[0].model,
            "variant": members[0].variant,
            "shortcut": members[0].shortcut,
            "pairing": members[0].pairing,
            "depth": depth,
            "params": members[0].record.get("params"),
            "runs": len(members),
            "steps": max((r.steps for r in members), default=0),
            "status": ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in members).items())),
        }
        row["seeds"] = len(done)
        for key in ("train_error", "val_error", "test_error"):
            # (seed, value) of every finished seed that has the value, in seed order; the statistics use the values
            row[key + "_by_seed"] = sorted((r.seed, r.record[key]) for r in done if r.record.get(key) is not None)
            values = row[key + "_values"] = [v for _, v in row[key + "_by_seed"]]
            row[key], row[key + "_std"] = _mean_std(values)
            ci = mean_interval(values)
            row[key + "_ci_low"], row[key + "_ci_high"] = (ci.low, ci.high) if ci is not None else (None, None)
            row[key + "_ci_cut"] = bool(ci is not None and ci.cut)
        rows.append(row)
    return rows


def mlflow_stores(runs) -> list[str]:
    """The MLflow tracking stores the runs logged to (logger=mlflow), as their jobs recorded them."""
    stores = set()
    for r in runs:
        try:
            stores.add(json.loads((r.path / MLFLOW_RUN_FILE).read_text())["tracking_uri"])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(stores)


def arm_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(plain arm, residual arm) pairs: a net without shortcuts and one with them, the same in every other setting
    of their records' identity (`Run.pairing`), whatever the arms are called."""
    shortcut = {r["arm"]: r["shortcut"] for r in rows}
    arms = {(r["arm"], r["shortcut"], r["pairing"]) for r in rows}
    plains = {pairing: arm for arm, cut, pairing in arms if cut == "none"}
    return sorted(
        ((plains[pairing], arm) for arm, cut, pairing in arms if cut != "none" and pairing in plains),
        key=lambda p: (arm_order(p[0], shortcut[p[0]]), arm_order(p[1], shortcut[p[1]])),
    )


def statistics_sections(rows: list[dict], margin: float = DEFAULT_MARGIN) -> str:
    """The differences between arms and depths with their intervals, and the claims they support."""
    by = {(r["arm"], r["depth"]): r for r in rows}
    pairs = arm_pairs(rows)
    if not pairs:
        return ""
    out = [
        f"## Differences\n\nPercentage points, mean difference with its {DIFFERENCE_INTERVAL} over seeds in "
        f"brackets (none with one seed per group).\n",
        "| comparison | depth | train error | test error |",
        "|---|---|---|---|",
    ]
    for plain, residual in pairs:
        for depth in sorted({d for a, d in by if a == plain} & {d for a, d in by if a == residual}):
            a, b = by[plain, depth], by[residual, depth]
            cells = [pts(difference_interval(a[k + "_values"], b[k + "_values"]), True) for k in METRICS]
            out.append(f"| {plain} − {residual} | {depth} | {' | '.join(cells)} |")
    for arm in in_arm_order({r["arm"]: r["shortcut"] for r in rows}):
        depths = sorted(d for a, d in by if a == arm)
        for deeper in depths[1:]:  # each deeper net against the shallowest
            lo, hi = by[arm, depths[0]], by[arm, deeper]
            cells = [pts(difference_interval(hi[k + "_values"], lo[k + "_values"]), True) for k in METRICS]
            out.append(f"| {arm}: depth {deeper} − depth {depths[0]} | {deeper} | {' | '.join(cells)} |")
    out.append(
        "\n## What the data support\n\nEach claim is a family of one-sided Welch tests at 95 % (seeds not paired), "
        'Holm-adjusted within the family; *contradicted* when the opposite one-sided test holds. "No worse" is '
        f"a non-inferiority test: supported only when the data show a rise below {points_text(margin)} "
        "(`reslab report --margin`). Each line gives the difference in points with its two-sided interval; the "
        "depth trend is a least-squares line over every run of the arm. One seed, or seeds that all gave the "
        "same value, test nothing.\n"
    )
    for key, name in (("train_error", "training error"), ("test_error", "test error")):
        groups = {k: r[key + "_values"] for k, r in by.items() if r[key + "_values"]}
        for plain, residual in pairs:
            out += claims(groups, plain, residual, name, margin)
    return "\n".join(out) + "\n"


METRICS = ("train_error", "test_error")


def analyses_section(sweep_dir: Path) -> str:
    """What ``reslab analyze`` wrote for this sweep (``analysis/<kind>.md``, each with its figure), in the order of
    `reslab.plots.ANALYSES` (read from the files: the report never imports the analyses); empty if none has run."""
    found = [sweep_dir / "analysis" / f"{kind}.md" for kind in ANALYSES]
    parts = [p.read_text().strip() for p in found if p.is_file()]
    if not parts:
        return ""
    return "## Analyses (reslab analyze)\n\n" + "\n\n".join(parts) + "\n"


def figures_section(sweep_dir: Path) -> str:
    """The report's figures, embedded (those drawn so far: a sweep's tables are rewritten after every job)."""
    drawn = [name for name in FIGURES if (sweep_dir / "figures" / f"{name}.png").exists()]
    return "## Figures\n\n" + "\n\n".join(f"![{n}](figures/{n}.png)" for n in drawn) + "\n" if drawn else ""


def _csv_value(value) -> object:
    if isinstance(value, list):  # (seed, value) pairs: "seed0=0.1;seed1=0.12"
        return ";".join(f"seed{seed}={v:.6g}" for seed, v in value)
    return "" if value is None else value


def write_tables(sweep_dir: Path, runs: list[Run], rows: list[dict], margin: float = DEFAULT_MARGIN) -> str:
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: _csv_value(r.get(k)) for k in COLUMNS} for r in rows)
    write_text_atomic(sweep_dir / "summary.csv", table.getvalue())
    text = f"{title(sweep_dir, runs)}\n\n"
    if setup := setup_section(runs, sweep_command(sweep_dir)):
        text += f"{setup}\n"
    text += (
        f"## Final errors\n\nError (%) at the end of training: mean ± sample "
        f"std over the finished seeds (n), and in brackets the {MEAN_INTERVAL} (marked *; none with one seed, or "
        f"when every seed gave the same value). Train error: mean over the last training batches (see metrics.json)."
        f"\n\n{markdown_table(rows)}\n"
    )
    if figures := figures_section(sweep_dir):
        text += f"\n{figures}"
    if stats_text := statistics_sections(rows, margin):
        text += f"\n{stats_text}"
    if problems := problems_table(runs):
        text += f"\n## Jobs that did not finish\n\n{problems}\n"
    if analyses := analyses_section(sweep_dir):
        text += f"\n{analyses}"
    write_text_atomic(sweep_dir / "summary.md", text)
    return text


def write_figures(sweep_dir: Path, runs: list[Run], rows: list[dict], skipped: list[str] | None = None) -> list[Path]:
    """Every figure whose data some run has; the others' names, with what is missing, go to ``skipped``."""
    out = sweep_dir / "figures"
    out.mkdir(exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        what, has = FIGURE_DATA.get(name, ("", lambda r: True))
        if not any(has(r) for r in runs):
            if skipped is not None:
                skipped.append(f"{name} (no run has its {what})")
            continue
        fig = make(runs, rows)
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            write_atomic(path, lambda f, fig=fig, ext=ext: fig.savefig(f, format=ext, dpi=200))
            written.append(path)
    return written


def report(
    sweep_dir: str | Path, figures: bool = True, quiet: bool = False, margin: float = DEFAULT_MARGIN
) -> list[dict]:
    """Write the tables (and figures) for ``sweep_dir``; return the table rows. ``margin``: how much worse (as a
    fraction) a deeper residual net may be and still count as "no worse"."""
    sweep_dir = Path(sweep_dir)
    # Under the joblib launcher every worker rewrites the report as its jobs end: one writer at a time, each reading
    # the records as they are when its turn comes (every file is also replaced atomically).
    with exclusive(sweep_dir / REPORT_LOCK_FILE):
        runs = load_sweep(sweep_dir)
        curves_written = write_missing_curves(runs)
        rows = summarize(runs)
        # Figures of runs that all failed would be empty axes.
        done = any(r.status == "finished" for r in runs)
        skipped: list[str] = []
        written: list[Path] = []
        try:  # figures first, so that summary.md embeds them; the tables are written even if a figure fails
            written = write_figures(sweep_dir, runs, rows, skipped) if figures and done else []
        finally:
            text = write_tables(sweep_dir, runs, rows, margin)
        upgraded = write_sweep_views(
            sweep_dir,
            {
                str(r.path.relative_to(sweep_dir)): (r.run_record.hparams(params=r.record.get("params")), r.finished)
                for r in runs
                if r.status in ("finished", "diverged") and has_training_events(r.path)
            },
            depths=[r.depth for r in runs],
            arms=[r.model for r in runs],
        )
    if not quiet:
        print(text)
        print(
            f"report: {sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}"
            + (f", {len(written)} figure files in {sweep_dir / 'figures'}" if written else "")
        )
        if skipped:
            print(f"report: not drawn, any earlier file kept: {'; '.join(skipped)}")
        if curves_written:
            print(f"report: curves.csv written from the event files of {curves_written} runs made by older code")
        if upgraded:
            print(f"report: TensorBoard sessions written by older code dropped from {len(upgraded)} runs' event files")
        if any(has_training_events(r.path) for r in runs):
            print(f"report: to see every run's curves side by side: tensorboard --logdir {sweep_dir}")
            print(f"report: then open {tensorboard_link()} (runs coloured by arm and depth, the error charts first)")
        for uri in mlflow_stores(runs):
            print(f"report: runs logged to MLflow: mlflow ui --backend-store-uri {uri} (pip install mlflow)")
    return rows
