#!/usr/bin/env bash
# The no-BN plain nets' vanishing gradient against zero padding's prediction, at two image sizes (README.md here):
# at 28x28 (dataset.downsample=1) every stage's maps are twice as wide as at the default 14x14, so the border's share
# and the predicted loss per layer are smaller.
#   bash experiments/signal_propagation/padding.sh
# From the repository root, after make install and make data; as run.sh, one step at lr 1e-9 gives each configuration
# a job directory, and `reslab analyze signal` measures fresh nets built from each config.
set -euo pipefail
HERE=experiments/signal_propagation
SWEEP=${SWEEP:-/tmp/reslab_signal_padding}
rm -rf "$SWEEP"
.venv/bin/reslab -m depth=20,56,110 model=plain model.norm=none dataset.downsample=1 \
  optim.lr=1e-9 trainer.max_steps=1 trainer.limit_val_batches=1 \
  callbacks.grad_norms=null callbacks.responses=null hydra.sweep.dir="$SWEEP" > "$SWEEP.log" 2>&1
.venv/bin/reslab analyze signal "$SWEEP" --seeds 10 --batches 2 --threads 2 | tee "$SWEEP.analysis.log"
.venv/bin/python experiments/retention.py copy "$SWEEP" "$HERE/padding"
