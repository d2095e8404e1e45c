#!/usr/bin/env bash
# Several jobs sharing one GPU against one at a time, and `reslab bench` against the datasheet peak: the command of
# README.md here. Needs a CUDA GPU (it was an NVIDIA H200), from the repository root, Hydra's wheels installed.
# share_gpu.sh writes machine.txt, share.txt and bench_eager.json into $OUT; they are copied here.
#   bash experiments/performance/gpu/share_h200/run.sh
set -u -o pipefail
command -v nvidia-smi > /dev/null || { echo "share_h200/run.sh: needs a CUDA GPU machine" >&2; exit 2; }
export OUT=${OUT:-gpu_out}
bash experiments/performance/gpu/share_gpu.sh
cp "$OUT/machine.txt" "$OUT/share.txt" "$OUT/bench_eager.json" experiments/performance/gpu/share_h200/
