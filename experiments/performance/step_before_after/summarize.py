"""The tables of this folder's README from its bench JSON files (run.sh, and the longer after_long.json run).

    .venv/bin/python experiments/performance/step_before_after/summarize.py

Per row: ms per step of each path as the median of its repeats with the fastest and slowest beside it, and the
ratio of the medians (the plain loop's time over reslab's: above 1, reslab is faster).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent
NAMES = {"loop": "plain loop", "full": "reslab", "bare": "reslab, no instruments"}


def cell(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return f"{statistics.median(ms):.2f} ({ms[0]:.2f}–{ms[-1]:.2f})"


def table(path: Path) -> str:
    report = json.loads(path.read_text())
    paths = [p for p in ("loop", "full", "bare") if p in report["rows"][0]["seconds_per_step"]]
    head = ["model", "depth", *[f"{NAMES[p]}: ms/step" for p in paths], "loop / reslab"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        seconds = row["seconds_per_step"]
        ratio = statistics.median(seconds["loop"]) / statistics.median(seconds["full"])
        cells = [row["model"], str(row["depth"]), *[cell(seconds[p]) for p in paths], f"{ratio:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    steps = f"{report['steps']} timed steps after {report['warmup']}, {report['repeats']} repeats"
    return (
        f"`{path.name}` ({steps}, batch {report['rows'][0]['batch']}, {report['rows'][0]['precision']}):\n\n"
        + "\n".join(lines)
    )


def main() -> None:
    for name in (
        "before_main",
        "after_main",
        "after_long",
        "after_log_d20",
        "before_overhead",
        "after_overhead",
        "after_log_overhead",
    ):
        path = HERE / f"{name}.json"
        if path.exists():
            print(table(path), end="\n\n")


if __name__ == "__main__":
    main()
