#!/usr/bin/env bash
# A first look at nets without batch norm (issue 14, item 1): depths 20 and 56, plain and residual, with and without
# BN, 200 iterations of the default setup (Fashion-MNIST 14x14), seed 0; then residual nets without BN with their
# residual branches initialised at zero (Fixup-style). Two launches into one sweep folder; the report labels each run.
#   bash experiments/no_batchnorm_first_look/run.sh         # from the repository root, after make install
set -euo pipefail
SWEEP=${SWEEP:-/tmp/reslab_no_batchnorm}
COMMON=(trainer.max_steps=200 trainer.val_every_n_steps=100 callbacks.grad_norms.every_n_steps=10
  hydra/launcher=parallel trainer.progress=none hydra.sweep.dir="$SWEEP")
.venv/bin/reslab -m depth=20,56 model=plain,residual model.norm=batch,none "${COMMON[@]}"
.venv/bin/reslab -m depth=20,56 model=residual model.norm=none model.zero_init_residual=true "${COMMON[@]}" || true
.venv/bin/reslab report "$SWEEP"
