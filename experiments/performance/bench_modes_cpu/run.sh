#!/usr/bin/env bash
# `reslab bench --mode job` and `--mode share` on the dev CPU, on CIFAR-10-shaped synthetic data: the two
# commands of README.md here, each printing its table (schedule.txt, share.txt) and writing its JSON.
#   bash experiments/performance/bench_modes_cpu/run.sh        # from the repository root, after make install
set -euo pipefail
HERE=experiments/performance/bench_modes_cpu
PY=${PY:-.venv/bin/python}
"$PY" -m reslab bench --mode job --project-steps 64000 --run-dir /tmp/bm_sched --out "$HERE/schedule.json" \
  -- dataset=synthetic trainer.max_steps=200 runtime.progress=none | tee "$HERE/schedule.txt"
"$PY" -m reslab bench --mode share --jobs 2 --run-dir /tmp/bm_share --out "$HERE/share.json" \
  -- dataset=synthetic depth=20 model=plain,residual trainer.max_steps=200 | tee "$HERE/share.txt"
