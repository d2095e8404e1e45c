#!/usr/bin/env bash
# The default sweep (depth=20,56,110 x plain,residual, 600 steps on Fashion-MNIST at 14x14) run twice, back to back,
# on the same machine with nothing else running: in series (Hydra's basic launcher, one job at a time with torch's
# default threads), then in parallel (hydra/launcher=parallel: joblib with one job per core and, by
# trainer.threads=auto, one torch thread per job on a 2-core machine). Writes the wall times to times.txt and both
# sweeps (reports included) under $OUT.
#   bash experiments/performance/parallel_sweep/run.sh          # from the repository root, after make install
set -u -o pipefail
OUT=${OUT:-experiments/performance/parallel_sweep}
RESLAB=${RESLAB:-.venv/bin/reslab}
SWEEP=(depth=20,56,110 model=plain,residual)
mkdir -p "$OUT"
{ lscpu | grep -E "Model name|^CPU\(s\)"; nproc; git rev-parse HEAD; date -u; } > "$OUT/machine.txt"
: > "$OUT/times.txt"
for mode in series parallel; do
  rm -rf "/tmp/reslab_$mode"
  extra=()
  [ "$mode" = parallel ] && extra=(hydra/launcher=parallel)
  start=$(date +%s.%N)
  "$RESLAB" -m "${SWEEP[@]}" "${extra[@]}" trainer.progress=none hydra.sweep.dir="/tmp/reslab_$mode" \
    > "$OUT/$mode.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$mode: exit $rc, wall $(python3 -c "print(f'{$end - $start:.1f}')") s: $RESLAB -m ${SWEEP[*]} ${extra[*]}" \
    | tee -a "$OUT/times.txt"
  mkdir -p "$OUT/$mode"
  cp "/tmp/reslab_$mode/summary.md" "/tmp/reslab_$mode/summary.csv" "$OUT/$mode/"
  for job in /tmp/reslab_$mode/*/metrics.json; do
    mkdir -p "$OUT/$mode/$(basename "$(dirname "$job")")"
    cp "$job" "$OUT/$mode/$(basename "$(dirname "$job")")/"
  done
done
