#!/usr/bin/env bash
# Issue 15's GPU check: the CUDA-graph step (runtime.cuda_graph=true), the paper's schedule whole, and several
# jobs sharing the GPU. Run on a lent GPU machine from the repository root, Hydra's wheels installed first
# (PYTHONPATH). `step_graph_gpu.sh PART...` runs the parts named, in order, and starts none once $DEADLINE
# seconds (default 560) have passed; each part prints a summary and leaves its JSON and logs in $OUT:
#   check     correctness on the GPU: residual-20, 400 steps, Lightning's automatic step vs the graph step's
#             eager form vs the recorded graph (eager net, then compiled with mode default); the final losses
#             and errors side by side (eager must equal automatic; the graph must be close to both)
#   step      reslab bench, residual-56 and residual-110: the compiled hand loop (reduce-overhead) against
#             reslab with runtime.cuda_graph=true, with its default instruments (full) and without (bare); then
#             the graph step once under torch.profiler (the profile comes back in $OUT)
#   schedule  the paper's whole schedule: experiment=paper depth=56 model=residual, 64k steps, validation on
#             5k images every 2k steps, checkpoints and instruments as the preset sets them, graph step
#   share     the Fig. 6 sweep (plain and residual at 20/32/44/56/110) as 5 jobs at a time on the one GPU,
#             $SHARE_STEPS steps each, graph step; per-job rates give the series time and the 64k projection
# The data is CIFAR-10-shaped synthetic data (the machine has no network and no CIFAR-10 copy): 50k/10k images
# of 3x32x32 with pad-4 crop and flip, so FLOPs, bytes and launches per step are CIFAR-10's; its errors mean
# nothing about CIFAR.
set -u -o pipefail
OUT=${OUT:-gpu_out}
DEADLINE=${DEADLINE:-560}
SHARE_STEPS=${SHARE_STEPS:-2000}
WORK=/tmp/reslab_graph
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
CIFAR="dataset=synthetic dataset.synthetic_train=50000 dataset.synthetic_test=10000 dataset.crop_pad=4 dataset.hflip=true"
SMALL="dataset=synthetic dataset.synthetic_train=10000 dataset.synthetic_test=1000 dataset.crop_pad=4 dataset.hflip=true"
for part in "$@"; do
  case $part in check|step|schedule|share) ;; *) echo "step_graph_gpu.sh: unknown part '$part'; choose check, step, schedule or share" >&2; exit 2;; esac
done
began=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - began) )); }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, lightning, sys, os; print('python', sys.version.split()[0], 'torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(), 'cpus', os.cpu_count())"
  git log -1 --format='commit %H' 2>/dev/null || true
} 2>&1 | tee "$OUT/machine.txt"

part_check() {
  for mode in false eager true; do
    timeout "$1" python3 -m reslab depth=20 model=residual $SMALL trainer.max_steps=400 trainer.val_check_interval=200 \
      runtime.cuda_graph=$mode runtime.progress=none hydra.run.dir="$WORK/check/$mode" > "$WORK/check_$mode.log" 2>&1
  done
  timeout "$1" python3 -m reslab depth=20 model=residual $SMALL trainer.max_steps=400 trainer.val_check_interval=200 \
    runtime.cuda_graph=true runtime.compile=default runtime.progress=none hydra.run.dir="$WORK/check/true_compiled" \
    > "$WORK/check_true_compiled.log" 2>&1
  python3 - "$WORK/check" <<'EOF' | tee "$OUT/check.txt"
import json, pathlib, sys
for job in ("false", "eager", "true", "true_compiled"):
    p = pathlib.Path(sys.argv[1]) / job / "metrics.json"
    r = json.loads(p.read_text()) if p.exists() else {"status": "missing"}
    print(f"check: cuda_graph={job:14} {r.get('status'):9} steps={r.get('steps')} train_loss={r.get('train_loss')} "
          f"test_error={r.get('test_error')} wall={r.get('wall_time_s')}s {r.get('error', '')}")
EOF
  tail -3 "$WORK"/check_*.log > "$OUT/check_logs.txt" 2>&1
}

part_step() {
  timeout "$1" python3 -m reslab bench --depths 56 110 --models residual --steps 300 --warmup 30 --repeats 1 \
    --loop-overrides runtime.compile=reduce-overhead runtime.cuda_graph=false --profile "$OUT/profile" \
    --out "$OUT/bench_step.json" -- $SMALL runtime.cuda_graph=true 2>&1 | grep -v "^\[" | tail -12
}

part_schedule() {
  timeout "$1" python3 -m reslab bench --mode job --run-dir "$WORK/schedule" --out "$OUT/bench_schedule.json" \
    -- experiment=paper depth=56 model=residual $CIFAR runtime.cuda_graph=true runtime.progress=log 2>&1 \
    | grep -v "^\[" | tail -15
}

part_share() {
  timeout "$1" python3 -m reslab bench --mode share --jobs 5 --skip-series --run-dir "$WORK/share" \
    --out "$OUT/bench_share.json" -- experiment=paper $SMALL trainer.max_steps=$SHARE_STEPS \
    trainer.val_check_interval=$SHARE_STEPS runtime.cuda_graph=true runtime.progress=none 2>&1 | grep -v "^\[" | tail -20
}

for part in "$@"; do
  budget=$(left)
  if [ "$budget" -lt 30 ]; then echo "== $part: skipped, $budget s left of the deadline"; continue; fi
  echo "== $part ($budget s left)"
  "part_$part" "$budget"
done
tar czf "$OUT/logs.tgz" -C "$WORK" --exclude='*.ckpt' . 2>/dev/null
echo "done in $(( $(date +%s) - began )) s"
