"""``reslab analyze KIND DIR [options]``'s command line: the kind's options, then `reslab.analysis.runner`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from reslab.analysis import KINDS
from reslab.analysis.runner import analysis_module, run_analysis
from reslab.errors import UserError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {kind:<10} {line}" for kind, (_, line) in KINDS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: reslab analyze KIND DIR [options]   (reslab analyze KIND --help: its options)\n\n{listing}")
        return 0 if argv else 2
    kind = argv[0]
    if kind not in KINDS:
        print(f"reslab: error: unknown analysis {kind!r}; choose one of: {', '.join(KINDS)}", file=sys.stderr)
        return 2
    module = analysis_module(kind)
    parser = argparse.ArgumentParser(prog=f"reslab analyze {kind}", description=module.__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run's job directory, or a sweep folder of them")
    parser.add_argument("--data-dir", help="where the run's dataset is (default: the run's own data_dir)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: a GPU if any")
    parser.add_argument("--force", action="store_true", help="measure again even where saved arrays match")
    parser.add_argument(
        "--threads", type=int, help="CPU threads (default: torch's, one per core; 1 is faster on a busy CPU)"
    )
    module.add_options(parser)
    args = parser.parse_args(argv[1:])
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise UserError(f"--threads must be a positive number of CPU threads, got {args.threads}")
            torch.set_num_threads(args.threads)
        return run_analysis(kind, args, argv[1:])
    except UserError as e:
        print(f"reslab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only folder, a full disk: the analysis writes beside the runs
        print(
            f"reslab: error: {e.filename or 'a file'}: {e.strerror or e}; the analysis reads the runs and writes "
            f"beside them: free space, or analyse a copy of the folder in a writable place",
            file=sys.stderr,
        )
        return 2
