"""``reslab report SWEEP_DIR``'s command line: the sweep's tables and figures (`reslab.results.report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import reslab.results.report as report_module
from reslab.results.report import report
from reslab.results.runs import load_sweep
from reslab.results.statistics import DEFAULT_MARGIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reslab report", description=report_module.__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (or any folder of job directories)")
    parser.add_argument("--no-figures", action="store_true", help="write only the tables")
    parser.add_argument(
        "--margin",
        type=float,
        default=100 * DEFAULT_MARGIN,
        help="non-inferiority margin in percentage points: a deeper residual net is 'no worse' when the data show "
        "its error rises by less than this (default: %(default)g)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.margin < 100:
        print(f"reslab: error: --margin {args.margin:g}: choose a number of points between 0 and 100", file=sys.stderr)
        return 2
    if not args.sweep_dir.is_dir():
        print(
            f"reslab: error: {args.sweep_dir} is not a directory; pass a sweep directory such as "
            f"multirun/<date>/<time>",
            file=sys.stderr,
        )
        return 2
    if not load_sweep(args.sweep_dir):
        print(
            f"reslab: error: no jobs (no metrics.json) under {args.sweep_dir}; is it a sweep directory?",
            file=sys.stderr,
        )
        return 2
    report(args.sweep_dir, figures=not args.no_figures, margin=args.margin / 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
