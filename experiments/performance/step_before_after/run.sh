#!/usr/bin/env bash
# Issue 15's CPU before/after: `reslab bench` (step mode) at one commit and then another, back to back on the same
# machine, from their own worktrees, with this checkout's virtualenv; nothing else should run meanwhile.
#   bash experiments/performance/step_before_after/run.sh BEFORE AFTER SCRATCH_DIR
# Per commit: the main table (both arms, depths 20/56/110, every path, 3 repeats in rotating order), the fixed cost
# per step on a tiny net, and a torch.profiler breakdown of residual-20's full path. Writes <which>_*.json and
# profile_<which>/ here.
# The README's other measurements, at the current commit (they were made at 54d9f55, 8d24707 and e901f8d):
#   bash experiments/performance/step_before_after/run.sh more
# the 7-repeat run (after_long.json), the depth-20 and tiny-net reruns (after_log_*.json), the cProfile of
# residual-20's full path (cprofile_parts.txt) and the README's tables (summarize.py).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$PWD/.venv/bin/python
if [ "${1:-}" = more ]; then
  "$PY" -m reslab bench --depths 20 56 110 --models residual plain --paths loop full --steps 60 --warmup 5 \
    --repeats 7 --out "$HERE/after_long.json"
  "$PY" -m reslab bench --depths 20 --models residual plain --paths loop full --steps 60 --warmup 5 --repeats 7 \
    --out "$HERE/after_log_d20.json"
  "$PY" -m reslab bench --depths 8 --models residual --steps 200 --warmup 10 --repeats 3 \
    --out "$HERE/after_log_overhead.json" -- dataset=synthetic dataset.batch_size=8 model.width=4 \
    dataset.synthetic_train=4000
  "$PY" "$HERE/cprofile_parts.py" > "$HERE/cprofile_parts.txt"
  "$PY" "$HERE/summarize.py"
  exit
fi
[ $# -eq 3 ] || { echo "run.sh: give BEFORE AFTER SCRATCH_DIR, or 'more'" >&2; exit 2; }
BEFORE=$1 AFTER=$2 WORK=$3
mkdir -p "$WORK"
{ lscpu | grep -E "^(Model name|CPU\(s\))"; grep -o -m1 -w avx512_bf16 /proc/cpuinfo; } > "$HERE/machine.txt"; "$PY" -c "import torch; print('torch', torch.__version__)" >> "$HERE/machine.txt"
for which in before after; do
  commit=$([ $which = before ] && echo "$BEFORE" || echo "$AFTER")
  git worktree add -f "$WORK/tree_$which" "$commit" >/dev/null 2>&1
  (
    cd "$WORK/tree_$which" || exit 1
    export PYTHONPATH="$PWD/src"
    # reslab.conf must be this tree's conf/, not the one the virtualenv's editable install points to
    [ -e src/reslab/conf ] || ln -s ../../conf src/reslab/conf
    echo "$which: commit $(git rev-parse --short HEAD)" | tee -a "$HERE/times.txt"
    "$PY" -m reslab bench --depths 20 56 110 --models residual plain --steps 40 --warmup 5 --repeats 3 \
      --out "$HERE/${which}_main.json" 2>&1 | grep -v "^\[" | tee "$HERE/${which}_main.txt"
    "$PY" -m reslab bench --depths 8 --models residual --steps 200 --warmup 10 --repeats 3 \
      --out "$HERE/${which}_overhead.json" -- dataset=synthetic dataset.batch_size=8 model.width=4 \
      dataset.synthetic_train=4000 2>&1 | grep -v "^\[" | tee "$HERE/${which}_overhead.txt"
    "$PY" -m reslab bench --depths 20 --models residual --paths full --steps 60 --warmup 5 --repeats 1 \
      --profile "$HERE/profile_$which" --out "$WORK/${which}_profile.json" > /dev/null 2>&1
  )
done
