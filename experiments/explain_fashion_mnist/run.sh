#!/usr/bin/env bash
# Issue 14's study, both parts, with the commands that made them (README.md here):
#   bash experiments/explain_fashion_mnist/run.sh cpu            # the CPU study: train.sh, analyze.sh, kept in cpu_sweep/
#   bash experiments/explain_fashion_mnist/run.sh gpu            # on a lent GPU machine: train the 28x28 study
#   bash experiments/explain_fashion_mnist/run.sh gpu-analyze DIR   # back here, DIR = the GPU sweep unpacked:
#                                                                   # analyses on the CPU, kept in gpu_sweep_56/
# From the repository root, after make install. Each part ends by keeping the sweep by the retention rule
# (experiments/README.md): records, configs, event files, gradient and response arrays, the analyses' arrays, the
# report and the analyses' summaries and figures; no checkpoints.
set -u -o pipefail
HERE=experiments/explain_fashion_mnist
case "${1:-}" in
  cpu)
    export SWEEP=${SWEEP:-/tmp/reslab_explain}
    bash "$HERE/train.sh"
    bash "$HERE/analyze.sh"
    .venv/bin/python experiments/retention.py copy "$SWEEP" "$HERE/cpu_sweep"
    ;;
  gpu)
    DEPTHS=56 DEADLINE=150 bash "$HERE/gpu_study.sh"
    ;;
  gpu-analyze)
    [ $# -eq 2 ] || { echo "run.sh gpu-analyze: give the unpacked GPU sweep folder" >&2; exit 2; }
    SWEEP=$2 LESION="--images 500" LANDSCAPE="--images 128" bash "$HERE/analyze.sh"
    .venv/bin/python experiments/retention.py copy "$2" "$HERE/gpu_sweep_56"
    ;;
  *)
    echo "run.sh: name the part: cpu, gpu (on a GPU machine) or gpu-analyze DIR" >&2
    exit 2
    ;;
esac
