#!/usr/bin/env bash
# The default sweep (`make demo`'s) at two commits, one after the other on the same machine, each from its
# own git worktree so that nothing else changes between them. From the repository root, after
# `make install`; about an hour on the 2-core dev VM, with nothing else running.
#   bash experiments/performance/sweep_before_after.sh <before commit> <after commit> <scratch dir>
set -u
BEFORE=$1 AFTER=$2 WORK=$3
PY=$PWD/.venv/bin/python
mkdir -p "$WORK"
for which in before after; do
  commit=$([ $which = before ] && echo "$BEFORE" || echo "$AFTER")
  git worktree add -f "$WORK/tree_$which" "$commit" >/dev/null 2>&1
  (
    cd "$WORK/tree_$which"
    start=$(date +%s.%N)
    PYTHONPATH="$PWD/src" "$PY" run.py -m depth=20,56,110 model=plain,residual \
      hydra.sweep.dir="$WORK/$which" > "$WORK/$which.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    echo "$which commit=$(git rev-parse --short HEAD) rc=$rc wall_s=$(python3 -c "print(round($end - $start, 1))")" \
      | tee -a "$WORK/times.txt"
  )
done
