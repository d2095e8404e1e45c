#!/usr/bin/env bash
# `make demo`'s sweep as an earlier commit ran it, for the studies that commit made (fashion14_600steps,
# fashion28_200steps): from a git worktree of COMMIT with this checkout's virtualenv, into SCRATCH; then the retention
# rule (experiments/README.md) keeps the job folders in STUDY/sweep, and the report's summary.md, summary.csv and
# figures are copied into STUDY. From the repository root, after make install:
#   bash experiments/demo_at_commit.sh COMMIT STUDY SCRATCH
set -euo pipefail
COMMIT=$1 HERE=$2 WORK=$3
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
