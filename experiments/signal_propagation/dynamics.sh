#!/usr/bin/env bash
# Issue 24's dynamics: plain-110 with BN trained at the default budget (600 steps, Fashion-MNIST 14×14), measuring its
# own gradient profile at steps 0, 1, 10, 100 and after the last (callbacks=[default,signal]); then
# `reslab analyze signal` on it (README.md here). From the repository root, after make install and make data.
set -euo pipefail
HERE=experiments/signal_propagation
RUN=${RUN:-/tmp/reslab_signal_dynamics}
SEEDS=${SEEDS:-10}
rm -rf "$RUN"
.venv/bin/reslab -m depth=110 model=plain 'callbacks=[default,signal]' hydra.sweep.dir="$RUN" > "$RUN.log" 2>&1
.venv/bin/reslab analyze signal "$RUN" --seeds "$SEEDS" --batches 2 --threads 2 | tee "$RUN.analysis.log"
.venv/bin/python experiments/retention.py copy "$RUN" "$HERE/dynamics"
