#!/usr/bin/env bash
# The multi-seed record behind the README's Results: the default sweep's budget (Fashion-MNIST pooled to 14x14,
# 600 iterations, the paper's optimiser) at depths 8, 20, 32, 56 and 110, plain and residual, seeds 0, 1 and 2:
# 30 jobs, two at a time (hydra/launcher=parallel: one job per core on the 2-core machine it was measured on).
# Writes the machine and commit to machine.txt and the wall time to time.txt here, and keeps the sweep (records,
# configs, event files, gradient and response arrays, the report with 95% intervals and its figures) in sweep/
# here by the retention rule (experiments/README.md). The sweep's log stays beside the scratch sweep ($SWEEP.log).
#   bash experiments/degradation_fashion_mnist/run.sh        # from the repository root, after make install
set -u -o pipefail
HERE=experiments/degradation_fashion_mnist
RESLAB=${RESLAB:-.venv/bin/reslab}
SWEEP=${SWEEP:-/tmp/reslab_degradation_fashion_mnist}
CMD=("$RESLAB" -m depth=8,20,32,56,110 model=plain,residual seed=0,1,2 hydra/launcher=parallel
  runtime.progress=none hydra.sweep.dir="$SWEEP")
rm -rf "$SWEEP"
{ lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/\(Flags: *\).*\(avx512_bf16\).*/\1... \2 .../'; nproc; \
  git rev-parse HEAD; date -u; echo "${CMD[*]}"; } > "$HERE/machine.txt"
start=$(date +%s.%N)
"${CMD[@]}" > "$SWEEP.log" 2>&1
rc=$?
end=$(date +%s.%N)
echo "exit $rc, wall $(python3 -c "print(f'{$end - $start:.1f}')") s" | tee "$HERE/time.txt"
.venv/bin/python experiments/retention.py copy "$SWEEP" "$HERE/sweep"
