#!/usr/bin/env bash
# A first look at nets without batch norm (issue 14, item 1): depths 20 and 56, plain and residual, with and without
# BN, 200 iterations of the default setup (Fashion-MNIST 14x14), seed 0; then residual nets without BN with their
# residual branches initialised at zero (Fixup-style). Two launches into one sweep folder; the report labels each run.
# Then the report's summary.md and two figures are copied here (what the committed run kept), and the job folders
# are kept in sweep/ here by the retention rule (experiments/README.md; added after the committed run).
#   bash experiments/no_batchnorm_first_look/run.sh         # from the repository root, after make install
set -euo pipefail
HERE=experiments/no_batchnorm_first_look
SWEEP=${SWEEP:-/tmp/reslab_no_batchnorm}
COMMON=(trainer.max_steps=200 trainer.val_check_interval=100 callbacks.grad_norms.every_n_steps=10
  hydra/launcher=parallel runtime.progress=none hydra.sweep.dir="$SWEEP")
# A launch with a diverged run exits with status 1 (the report lists the run): go on to the next step.
.venv/bin/reslab -m depth=20,56 model=plain,residual model.norm=batch,none "${COMMON[@]}" || true
.venv/bin/reslab -m depth=20,56 model=residual model.norm=none model.zero_init_residual=true "${COMMON[@]}" || true
.venv/bin/reslab report "$SWEEP"
cp "$SWEEP/summary.md" "$SWEEP/summary.csv" "$HERE/"
cp "$SWEEP/figures/error_curves.png" "$SWEEP/figures/grad_norm_profiles.png" "$HERE/figures/"
.venv/bin/python experiments/retention.py copy "$SWEEP" "$HERE/sweep"
