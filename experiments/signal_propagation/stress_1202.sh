#!/usr/bin/env bash
# Issue 24's stress test: residual-1202 with BN at initialisation (README.md here), 3 initialisations of one batch.
# From the repository root, after make install and make data. A one-step job at lr 1e-9 gives the configuration a
# job directory (`reslab analyze signal` reads the config, not the weights).
set -euo pipefail
HERE=experiments/signal_propagation
RUN=${RUN:-/tmp/reslab_signal_1202}
rm -rf "$RUN"
.venv/bin/reslab -m depth=1202 model=residual optim.lr=1e-9 trainer.max_steps=1 trainer.limit_val_batches=1 \
  callbacks.grad_norms=null callbacks.responses=null hydra.sweep.dir="$RUN" > "$RUN.log" 2>&1
.venv/bin/reslab analyze signal "$RUN" --seeds "${SEEDS:-3}" --batches 1 --threads 2 | tee "$RUN.analysis.log"
.venv/bin/python experiments/retention.py copy "$RUN" "$HERE/stress_1202"
