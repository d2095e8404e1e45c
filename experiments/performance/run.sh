#!/usr/bin/env bash
# The measurements of experiments/performance/README.md, by part, with the commands that made them; from the
# repository root, after make install, with nothing else running on the machine. Each part names the commit its
# committed numbers come from; run at another commit, it measures that commit instead.
#   bash experiments/performance/run.sh PART...
#   bench          run_cpu.sh: make bench, the fixed cost per step, the instruments part by part and end to end,
#                  the optimiser step, bf16 against fp32 (18b4002; about 30 min on the 2-core dev VM)
#   recheck110     residual-110 alone, loop against reslab without instruments (0f10bee)
#   profile        profile_step.py: cProfile of the per-step framework cost (58142dc)
#   sweeps         sweep_before_after.sh 6130b36 58142dc, kept in sweeps/ (about an hour)
#   sweeps18       sweep_before_after.sh 6130b36 18b4002, kept in sweeps_18b4002/ (about an hour)
#   gpu            on a lent GPU machine only (needs CUDA): gpu/run_gpu.sh's parts as the second session ran them
#                  (c5373ed), then gpu/timeline.py on the paper run
# The sub-studies have their own run.sh: bench_modes_cpu/, parallel_sweep/, step_before_after/, gpu/share_h200/.
set -u -o pipefail
HERE=experiments/performance
PY=${PY:-.venv/bin/python}
WORK=${WORK:-/tmp/reslab_performance}
[ $# -gt 0 ] || { sed -n '5,15p' "$0" >&2; exit 2; }
for part in "$@"; do
  case "$part" in
    bench) bash "$HERE/run_cpu.sh" ;;
    recheck110)
      "$PY" -m reslab bench --depths 110 --models residual --paths loop bare --steps 10 --repeats 4 \
        --out "$HERE/bench_cpu_d110_recheck.json" ;;
    profile) "$PY" "$HERE/profile_step.py" > "$HERE/profile_step.txt" ;;
    sweeps | sweeps18)
      after=$([ "$part" = sweeps ] && echo 58142dc || echo 18b4002)
      dest=$([ "$part" = sweeps ] && echo sweeps || echo sweeps_18b4002)
      rm -rf "$WORK/$dest"
      bash "$HERE/sweep_before_after.sh" 6130b36 "$after" "$WORK/$dest"
      for which in before after; do
        "$PY" experiments/retention.py copy "$WORK/$dest/$which" "$HERE/$dest/$which"
      done
      cp "$WORK/$dest/times.txt" "$HERE/$dest/times.txt" ;;
    gpu)
      command -v nvidia-smi > /dev/null || { echo "run.sh gpu: needs a CUDA GPU machine" >&2; exit 2; }
      DATA=.data PAPER_LIMIT=330 DEADLINE=572 bash "$HERE/gpu/run_gpu.sh" compiled paper eager
      python3 "$HERE/gpu/timeline.py" /tmp/reslab_gpu/paper/residual-56 --csv gpu_out/paper_residual56_timeline.csv \
        | tee gpu_out/paper_residual56_timeline.txt ;;
    *) echo "run.sh: unknown part '$part'" >&2; sed -n '5,15p' "$0" >&2; exit 2 ;;
  esac
done
