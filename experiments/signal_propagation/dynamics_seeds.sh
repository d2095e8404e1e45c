#!/usr/bin/env bash
# Issue 24's dynamics repeated: plain-110 with BN at seeds 1 and 2, two jobs at once (README.md here), as dynamics.sh
# does for seed 0. From the repository root, after make install and make data.
set -euo pipefail
HERE=experiments/signal_propagation
RUN=${RUN:-/tmp/reslab_dyn_seeds}
rm -rf "$RUN"
.venv/bin/reslab -m depth=110 model=plain seed=1,2 'callbacks=[default,signal]' hydra/launcher=parallel \
  hydra.launcher.n_jobs=2 hydra.sweep.dir="$RUN" > "$RUN.log" 2>&1
.venv/bin/reslab analyze signal "$RUN" --seeds 10 --batches 2 --threads 2 | tee "$RUN.analysis.log"
.venv/bin/python experiments/retention.py copy "$RUN" "$HERE/dynamics_seeds"
