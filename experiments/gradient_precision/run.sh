#!/usr/bin/env bash
# How exact float32 per-layer gradient norms are at initialisation, against float64: the three runs whose output
# README.md here shows (plain-110, residual-110, plain-56; default config, seed 0, first training batch, CPU).
#   bash experiments/gradient_precision/run.sh          # from the repository root, after make install
set -euo pipefail
PY=${PY:-.venv/bin/python}
"$PY" experiments/gradient_precision/check.py                    # plain-110
"$PY" experiments/gradient_precision/check.py --model residual   # residual-110
"$PY" experiments/gradient_precision/check.py --depth 56         # plain-56
