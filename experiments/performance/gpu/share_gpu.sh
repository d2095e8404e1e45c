#!/usr/bin/env bash
# Several jobs sharing one GPU against one job at a time, and `reslab bench` against the GPU's datasheet peak.
# Run on a lent GPU machine from the repository root, with Hydra's wheels installed first (PYTHONPATH):
#   bench   reslab bench, eager, residual-56 and plain-56 on CIFAR-10-shaped data: reslab/loop and % of the
#           datasheet peak (the bench's derivation line says where the peak comes from)
#   share   K = 1, 4, 8 copies of one job (residual-56, eager, CIFAR-10-shaped data, 600 steps, the paper
#           preset's instrument intervals) started at once as separate processes; per K: the wall time from
#           launch to the last exit, each job's own training time (metrics.json wall_time_s) and the
#           aggregate training steps per second
# Each part leaves its files in $OUT; the summary lines start with "share:" and "bench".
set -u -o pipefail
OUT=${OUT:-gpu_out}
WORK=/tmp/reslab_share
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
DATA="dataset=synthetic dataset.synthetic_train=10000 dataset.synthetic_test=1000 dataset.crop_pad=4 dataset.hflip=true"
STEPS=${STEPS:-600}
KS=${KS:-1 4 8}
PARTS=${PARTS:-bench share}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/machine.txt"
python3 -c "import torch, lightning, os; print('torch', torch.__version__, 'lightning', lightning.__version__, \
torch.cuda.get_device_name(), 'cpus', os.cpu_count())" | tee -a "$OUT/machine.txt"

if [[ " $PARTS " == *" bench "* ]]; then
echo "== bench"
timeout 150 python3 -m reslab bench --depths 56 --models residual plain --steps 40 --warmup 10 --repeats 2 \
  --out "$OUT/bench_eager.json" -- $DATA 2>&1 | grep -v "^\[" | tail -8
fi

if [[ " $PARTS " == *" share "* ]]; then
echo "== share"
for K in $KS; do
  rm -rf "$WORK/k$K"
  start=$(date +%s.%N)
  for i in $(seq 1 "$K"); do
    python3 -m reslab experiment=paper depth=56 model=residual $DATA seed=$i trainer.max_steps=$STEPS \
      trainer.val_check_interval=$STEPS trainer.limit_val_batches=1 runtime.progress=none \
      hydra.run.dir="$WORK/k$K/job$i" > "$WORK/k$K.job$i.log" 2>&1 &
  done
  wait
  end=$(date +%s.%N)
  python3 - "$WORK/k$K" "$K" "$start" "$end" "$STEPS" <<'EOF' | tee -a "$OUT/share.txt"
import json, pathlib, sys
root, k, start, end, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
records = [json.loads(p.read_text()) for p in sorted(root.glob("*/metrics.json"))]
done = [r for r in records if r["status"] == "finished"]
train = [r["wall_time_s"] for r in done]
wall = end - start
print(f"share: K={k} finished={len(done)}/{k} wall={wall:.1f}s job train time min/max={min(train):.1f}/{max(train):.1f}s "
      f"aggregate={len(done) * steps / max(train):.1f} train steps/s (per job {steps / (sum(train) / len(train)):.1f}) "
      f"precision={done[0]['precision'] if done else '-'}")
EOF
done
fi
tar czf "$OUT/share_logs.tgz" -C "$WORK" . 2>/dev/null
