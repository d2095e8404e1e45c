"""The report's markdown tables: final errors per (arm, depth) with each seed's value, and the jobs that did not
finish."""

from __future__ import annotations

from reslab.results.runs import Run


def _pct(
    mean: float | None, std: float | None, low: float | None = None, high: float | None = None, cut: bool = False
) -> str:
    if mean is None:
        return "–"
    text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")
    if low is None or high is None:
        return text
    return text + f" [{100 * low:.2f}, {100 * high:.2f}]" + ("*" if cut else "")


def _cell(row: dict, key: str) -> str:
    low, high, cut = row.get(key + "_ci_low"), row.get(key + "_ci_high"), row.get(key + "_ci_cut", False)
    return _pct(row[key], row[key + "_std"], low, high, cut)


def _seeds(row: dict, key: str) -> str:
    """Each finished seed's value, so that a reader sees why an interval is wide: ``42.9 (s0), 61.8 (s1)``."""
    return ", ".join(f"{100 * v:.1f} (s{seed})" for seed, v in row[key + "_by_seed"]) or "–"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | depth | params | train error (%) | val error (%) | test error (%) | test error by seed (%) | n "
        "| runs | steps | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "–"
        lines.append(
            f"| {r['arm']} | {r['depth']} | {params} | {_cell(r, 'train_error')} | {_cell(r, 'val_error')} | "
            f"{_cell(r, 'test_error')} | {_seeds(r, 'test_error')} | {r['seeds']} | {r['runs']} | {r['steps']} | "
            f"{r['status']} |"
        )
    return "\n".join(lines)


def problems_table(runs: list[Run]) -> str:
    """Jobs that did not finish: which, why, and where the full traceback is."""
    bad = [r for r in runs if r.status not in ("finished",)]
    if not bad:
        return ""
    lines = ["| job | status | step | error | traceback |", "|---|---|---|---|---|"]
    for r in bad:
        lines.append(
            f"| {r.path.name} | {r.status} | {r.steps} | {r.record.get('error', '')} | "
            f"{r.record.get('traceback', '')} |"
        )
    return "\n".join(lines)
