#!/usr/bin/env bash
# The sweep behind this folder: `make demo` at commit e2d1b1e, whose defaults made it, i.e.
#   python run.py -m depth=20,56,110 model=plain,residual data_dir=data
# run from a worktree of that commit with this checkout's virtualenv (experiments/demo_at_commit.sh). The committed
# files predate the retention rule: only the summaries and figures were kept, not the job folders.
# About half an hour on the 2-core dev VM (make demo took 30.0 min there); data_dir=data as make demo had it.
#   bash experiments/fashion14_600steps/run.sh [SCRATCH_DIR]      # from the repository root, after make install
set -euo pipefail
bash experiments/demo_at_commit.sh e2d1b1e experiments/fashion14_600steps "${1:-/tmp/reslab_fashion14}"
