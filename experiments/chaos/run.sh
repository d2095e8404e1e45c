#!/usr/bin/env bash
# Issue 25's chaos run: seeded random faults across whole tiny sweeps under the basic, joblib and submitit_local
# launchers and an Optuna search (tools/chaos.py; what it checks: docs/runs-and-failures.md). As root, so that the 'disk full' faults can
# mount their small tmpfs. The log is kept here; the sweeps and each launch's stderr in $WORK.
#   bash experiments/chaos/run.sh            # SEED=3 FAULTS=32 by default (8 per launcher and the search)
set -euo pipefail
SEED=${SEED:-3}
FAULTS=${FAULTS:-32}
WORK=${WORK:-/tmp/reslab_chaos}
rm -rf "$WORK"
.venv/bin/python tools/chaos.py --seed "$SEED" --faults "$FAULTS" --keep "$WORK" \
  | tee "experiments/chaos/seed${SEED}_faults${FAULTS}.log"
