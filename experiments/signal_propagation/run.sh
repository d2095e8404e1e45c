#!/usr/bin/env bash
# Issue 24's study: signal propagation at initialisation, measured against theory (README.md here).
#   bash experiments/signal_propagation/run.sh
# From the repository root, after make install and make data. `reslab analyze signal` reads each run's config and
# builds fresh nets from it, so the sweep is only there to give each configuration a job directory: one step at
# lr 1e-9 (reslab refuses lr 0; the weights barely move, so a residual net without BN, whose activations double
# every block, cannot diverge before it is measured). The sweep is kept by the retention rule (experiments/README.md).
set -euo pipefail
HERE=experiments/signal_propagation
SWEEP=${SWEEP:-/tmp/reslab_signal}
SEEDS=${SEEDS:-10}
BATCHES=${BATCHES:-2}
rm -rf "$SWEEP"
.venv/bin/reslab -m depth=20,56,110 model=plain,residual model.norm=batch,none \
  optim.lr=1e-9 trainer.max_steps=1 trainer.limit_val_batches=1 \
  callbacks.grad_norms=null callbacks.responses=null hydra.sweep.dir="$SWEEP" > "$SWEEP.log" 2>&1
.venv/bin/reslab analyze signal "$SWEEP" --seeds "$SEEDS" --batches "$BATCHES" --threads 2 | tee "$SWEEP.analysis.log"
.venv/bin/python experiments/retention.py copy "$SWEEP" "$HERE/sweep"
