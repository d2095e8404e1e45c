#!/usr/bin/env bash
# Issue 14's study, training part: plain vs residual at depths 20 and 56, seeds 0 and 1, with and without batch
# norm, plus residual nets without BN whose residual branches start at zero (Fixup-style), at the default budget
# (Fashion-MNIST 14x14, 600 iterations). Residual nets without BN and with the default init diverge (recorded as
# diverged). Two launches into one sweep folder; analyze.sh runs the analyses on it. Depth 110: gpu_study.sh.
#   bash experiments/explain_fashion_mnist/train.sh        # from the repository root, after make install
set -uo pipefail
SWEEP=${SWEEP:-/tmp/reslab_explain}
COMMON=(hydra/launcher=parallel runtime.progress=none hydra.sweep.dir="$SWEEP")
.venv/bin/reslab -m depth=20,56 model=plain,residual model.norm=batch,none seed=0,1 "${COMMON[@]}"
.venv/bin/reslab -m depth=20,56 model=residual model.norm=none model.zero_init_residual=true seed=0,1 "${COMMON[@]}"
exit 0  # the diverged runs make each launch exit 1; the report lists them
