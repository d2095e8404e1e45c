#!/usr/bin/env bash
# The default sweep (depth=20,56,110 x plain,residual, 600 steps on Fashion-MNIST at 14x14) run twice, back to back,
# on the same machine with nothing else running: in series (Hydra's basic launcher, one job at a time with torch's
# default threads), then in parallel (hydra/launcher=parallel: joblib with one job per core and, by
# runtime.threads=auto, one torch thread per job on a 2-core machine). Writes the wall times to times.txt and keeps
# both sweeps (reports included) under $OUT by the retention rule (experiments/README.md); each launch's log stays
# beside its scratch sweep (/tmp/reslab_<mode>.log). The committed run predates the rule and kept only each job's
# metrics.json and the summaries.
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
  "$RESLAB" -m "${SWEEP[@]}" "${extra[@]}" runtime.progress=none hydra.sweep.dir="/tmp/reslab_$mode" \
    > "/tmp/reslab_$mode.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$mode: exit $rc, wall $(python3 -c "print(f'{$end - $start:.1f}')") s: $RESLAB -m ${SWEEP[*]} ${extra[*]}" \
    | tee -a "$OUT/times.txt"
  .venv/bin/python experiments/retention.py copy "/tmp/reslab_$mode" "$OUT/$mode"
done
