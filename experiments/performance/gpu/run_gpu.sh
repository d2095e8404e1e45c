#!/usr/bin/env bash
# The prepared GPU check behind experiments/performance/README.md, run on a lent GPU machine from the
# repository root, with Fashion-MNIST's IDX files in $DATA/fashion_mnist and, where Hydra is missing, its
# wheels installed first. `run_gpu.sh PART...` runs the parts named, in order, each under its own time limit,
# and stops starting parts once $DEADLINE seconds (default 570) have passed since the script began; each part
# leaves its files in $OUT/<part>.tgz:
#   precision  bf16 vs fp32 (TF32 convs): residual-20 on Fashion-MNIST 28x28, 1500 steps, seeds 0 and 1
#   compiled   make bench, torch.compile mode $MODE (reduce-overhead = CUDA graphs), residual-56, loop/full/bare,
#              then the full path once more under torch.profiler (bench --profile)
#   paper      the paper's full schedule (experiment=paper: 64k steps, validation on 5k images every 2k,
#              checkpoints, instruments) for residual-56 on CIFAR-10-shaped data, compiled, timed end to end
#              (up to $PAPER_LIMIT seconds)
#   eager      make bench, eager: depths 20/56/110, both arms, CIFAR-10-shaped data, bf16, channels-last
#   instruments  instrument_parts.py: the instruments' parts timed one by one, residual-56, compiled, at the
#              default (CPU-sized) intervals and at the paper preset's
# CIFAR-10 itself cannot be fetched on that machine (no network); the synthetic set has CIFAR-10's shape and
# sizes (50k/10k images of 3x32x32, pad-4 crop and flip), so the FLOPs, bytes and launches per step are the
# same; its errors mean nothing about CIFAR. Each part prints a summary.
set -u
PAPER_LIMIT=${PAPER_LIMIT:-500}
# Each part's own time limit in seconds; the names are checked before anything runs or spends device time.
declare -A LIMIT=([precision]=80 [compiled]=150 [paper]=$PAPER_LIMIT [eager]=130 [instruments]=150)
[ $# -gt 0 ] || { echo "run_gpu.sh: name the parts to run: precision, compiled, paper, eager, instruments" >&2; exit 2; }
for part in "$@"; do
  [ -n "${LIMIT[$part]:-}" ] || { echo "run_gpu.sh: unknown part '$part'; choose precision, compiled, paper, eager or instruments" >&2; exit 2; }
done
OUT=${OUT:-gpu_out}
DATA=${DATA:-.data}
WORK=/tmp/reslab_gpu
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
CIFAR_SHAPED="dataset=synthetic dataset.synthetic_train=50000 dataset.synthetic_test=10000 dataset.crop_pad=4 dataset.hflip=true"
MODE=${MODE:-reduce-overhead}
DEADLINE=${DEADLINE:-570}
set -o pipefail
began=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - began) )); }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, lightning, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())"
} 2>&1 | tee "$OUT/machine.txt"
BENCH_DATA="$CIFAR_SHAPED dataset.synthetic_train=10000 dataset.synthetic_test=1000"  # speed only: fewer images to draw

part_precision() {
echo "== precision: bf16 vs fp32"
mkdir -p "$WORK/precision"
for prec in bf16 32; do
  for seed in 0 1; do
    timeout "$1" python3 run.py depth=20 model=residual dataset.downsample=1 data_dir="$DATA" seed=$seed \
      trainer.max_steps=1500 trainer.val_check_interval=500 runtime.precision=$prec \
      hydra.run.dir="$WORK/precision/residual-20_${prec}_seed$seed" > "$WORK/precision/${prec}_$seed.log" 2>&1 &
  done
done
wait
python3 - "$WORK/precision" <<'EOF'
import json, sys, pathlib
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json")):
    r = json.loads(p.read_text())
    print(f"{p.parent.name:32} {r['status']:9} precision={r['precision']:10} train_error={r['train_error']} "
          f"test_error={r['test_error']} wall={r['wall_time_s']}s")
EOF
rm -rf "$WORK"/precision/*/checkpoints
tar czf "$OUT/precision.tgz" -C "$WORK" precision
}

part_eager() {
echo "== eager: bench, depths 20/56/110"
mkdir -p "$WORK/eager"
timeout "$1" python3 -m reslab bench --depths 20 56 110 --steps 40 --warmup 10 --repeats 2 \
  --out "$WORK/eager/bench_gpu_eager.json" $BENCH_DATA 2>&1 | grep -v -i warn | tee "$WORK/eager/eager.log" \
  | sed -n '/^ *model  *depth/,$p'  # the table, the peak and matmul lines
tar czf "$OUT/eager.tgz" -C "$WORK" eager
}

part_compiled() {
echo "== compiled: bench, residual-56, $MODE, then under the profiler"
mkdir -p "$WORK/compiled"
timeout "$1" python3 -m reslab bench --depths 56 --models residual --steps 300 --warmup 30 --repeats 1 \
  --out "$WORK/compiled/bench_gpu_compiled.json" --profile "$WORK/compiled/profile" $BENCH_DATA \
  runtime.compile=$MODE 2>&1 | grep -v -i warn | tee "$WORK/compiled/compiled.log" | sed -n '/^ *model  *depth/,$p'
echo "compiled bench exit ${PIPESTATUS[0]}"
head -2 "$WORK"/compiled/profile/*.txt 2>/dev/null
tar czf "$OUT/compiled.tgz" -C "$WORK" compiled
}

part_instruments() {
echo "== instruments: their parts timed, residual-56, compile=$MODE"
mkdir -p "$WORK/instruments"
PAPER_INTERVALS="callbacks.grad_norms.every_n_steps=100 callbacks.grad_norms.figure_every_n_steps=4000 callbacks.responses.every_n_steps=2000 callbacks.responses.figure_every_n_steps=8000"
{
  timeout "$(( $1 / 3 ))" python3 experiments/performance/instrument_parts.py --depths 56 --steps 300 $BENCH_DATA \
    runtime.compile=$MODE
  timeout "$(( $1 * 2 / 3 ))" python3 experiments/performance/instrument_parts.py --depths 56 --steps 4000 $BENCH_DATA \
    runtime.compile=$MODE $PAPER_INTERVALS
} 2>&1 | grep -v -i -e warn -e _pytree | tee "$WORK/instruments/instrument_parts.log" | grep residual
tar czf "$OUT/instruments.tgz" -C "$WORK" instruments
}

part_paper() {
echo "== paper schedule, residual-56, compile=$MODE"
mkdir -p "$WORK/paper"
start=$(date +%s.%N)
timeout "$1" python3 run.py experiment=paper depth=56 model=residual $CIFAR_SHAPED runtime.compile=$MODE \
  hydra.run.dir="$WORK/paper/residual-56" > "$WORK/paper/run.log" 2>&1
rc=$?
end=$(date +%s.%N)
echo "paper run: exit $rc, $(python3 -c "print(round($end - $start, 1))") s wall (process start to exit)" | tee -a "$WORK/paper/run.log"
python3 - "$WORK/paper/residual-56" <<'EOF'
import json, sys, pathlib
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
d = pathlib.Path(sys.argv[1])
m = d / "metrics.json"
if m.exists():
    r = json.loads(m.read_text())
    print({k: r.get(k) for k in ("status", "steps", "wall_time_s", "precision", "compile", "channels_last",
                                 "train_error", "val_error", "test_error")})
events = EventAccumulator(str(d), size_guidance={"scalars": 0}).Reload()
s = events.Scalars("train/loss")
mid = [e for e in s if e.step >= 1000]
if len(mid) > 2:
    print(f"logged steps {s[0].step}..{s[-1].step}; steady rate from step {mid[0].step}: "
          f"{(mid[-1].step - mid[0].step) / (mid[-1].wall_time - mid[0].wall_time):.1f} steps/s; "
          f"first logged step after {s[0].wall_time - events.FirstEventTimestamp():.1f} s")
EOF
tail -3 "$WORK/paper/run.log"
rm -rf "$WORK"/paper/*/checkpoints
tar czf "$OUT/paper.tgz" -C "$WORK" paper
}

for part in "$@"; do
  limit=${LIMIT[$part]}
  remaining=$(left)
  [ "$remaining" -lt 30 ] && { echo "== $part: skipped, ${remaining}s left of ${DEADLINE}s"; continue; }
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  "part_$part" "$limit"
done
ls -la "$OUT"
