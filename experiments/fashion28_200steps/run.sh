#!/usr/bin/env bash
# The sweep behind this folder: `make demo` at commit a2a80da, whose defaults made it, i.e.
#   python run.py -m depth=20,56,110 model=plain,residual data_dir=data
# run from a worktree of that commit (as experiments/performance/sweep_before_after.sh does) with this checkout's
# virtualenv, into a scratch folder; then the retention rule (experiments/README.md) keeps the job folders in
# sweep/ here, and the report's summary.md, summary.csv and figures are copied beside this README. The committed
# files predate the rule: only the summaries and figures were kept, not the job folders.
# About half an hour on the 2-core dev VM (make demo took 32.2 min there); data_dir=data as make demo had it.
#   bash experiments/fashion28_200steps/run.sh [SCRATCH_DIR]      # from the repository root, after make install
set -euo pipefail
COMMIT=a2a80da
HERE=experiments/fashion28_200steps
WORK=${1:-/tmp/reslab_fashion28_200}
ROOT=$PWD
PY=$ROOT/.venv/bin/python
rm -rf "$WORK" && mkdir -p "$WORK"
git worktree add -f "$WORK/tree" "$COMMIT" > /dev/null
(
  cd "$WORK/tree"
  PYTHONPATH="$PWD/src" "$PY" run.py -m depth=20,56,110 model=plain,residual data_dir="$ROOT/data" \
    hydra.sweep.dir="$WORK/sweep" > "$WORK/sweep.log" 2>&1
)
git worktree remove --force "$WORK/tree"
"$PY" experiments/retention.py copy "$WORK/sweep" "$HERE/sweep"
cp "$WORK/sweep/summary.md" "$WORK/sweep/summary.csv" "$HERE/"
mkdir -p "$HERE/figures" && cp "$WORK"/sweep/figures/*.png "$HERE/figures/"
