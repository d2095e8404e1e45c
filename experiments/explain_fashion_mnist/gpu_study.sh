#!/usr/bin/env bash
# Issue 14's study at a longer budget, on one GPU: train the explain study's arms at Fashion-MNIST's native 28x28 for
# STEPS iterations (plain and residual with and without BN, residual without BN with zero-initialised branches;
# depths 56 and 110; seed 0; residual nets without BN and Kaiming init diverge at once, as in train.sh), all 10 jobs
# sharing the GPU through the joblib launcher. Then, with ANALYSES=1, run the four analyses on the sweep on the GPU
# and pack everything but the checkpoints into $OUT; with WEIGHTS=1 (the default) pack the sweep with its final
# weights instead (each last.ckpt reduced to the weights, its step and identity, which is what `reslab analyze` reads;
# the optimiser's state stays behind), in parts of 15 MB, to analyse elsewhere.
# Not the paper's schedule (64k iterations on CIFAR-10): a reduced run on another dataset, labelled as such.
#
# Run from the repository root with Hydra's wheels on PYTHONPATH and Fashion-MNIST in data/:
#   bash experiments/explain_fashion_mnist/gpu_study.sh          # writes $OUT (default: gpu_out)
set -u -o pipefail
OUT=${OUT:-gpu_out}
STEPS=${STEPS:-2500}
DEADLINE=${DEADLINE:-250}
SWEEP=${SWEEP:-/tmp/reslab_explain28}
N_JOBS=${N_JOBS:-8}
ANALYSES=${ANALYSES:-0}
WEIGHTS=${WEIGHTS:-1}
DEPTHS=${DEPTHS:-56,110}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/machine.txt"
python3 -c "import torch, lightning, os; print('torch', torch.__version__, 'lightning', lightning.__version__, \
torch.cuda.get_device_name(), 'cpus', os.cpu_count())" | tee -a "$OUT/machine.txt"

COMMON=(dataset.downsample=1 data_dir=data seed=0
  trainer.max_steps=$STEPS trainer.val_check_interval=1000 trainer.limit_val_batches=1.0 trainer.log_every_n_steps=50
  runtime.progress=log runtime.progress_every=20 runtime.threads=1
  callbacks.checkpoint.every_n_train_steps=1000 callbacks.checkpoint.save_top_k=0
  callbacks.grad_norms.every_n_steps=50 callbacks.grad_norms.figure_every_n_steps=1000
  callbacks.responses.every_n_steps=500 callbacks.responses.figure_every_n_steps=1000
  hydra/launcher=joblib hydra.launcher.n_jobs=$N_JOBS hydra.sweep.dir=$SWEEP)
start=$(date +%s.%N)
# Two launches at once into one folder. Their job directories must differ by name: the first sweeps model.norm, so its
# names say it (plain-56_seed0_model.norm=none); the second (zero-init, refused for plain nets) is residual-56_seed0.
timeout --signal=TERM --kill-after=30 "$DEADLINE" python3 -m reslab -m depth=$DEPTHS model=plain,residual \
  model.norm=batch,none "${COMMON[@]}" > "$OUT/train.log" 2>&1 &
timeout --signal=TERM --kill-after=30 "$DEADLINE" python3 -m reslab -m depth=$DEPTHS model=residual \
  model.norm=none model.zero_init_residual=true "${COMMON[@]}" hydra.launcher.n_jobs=2 > "$OUT/train_zero.log" 2>&1
wait
end=$(date +%s.%N)
python3 -c "print(f'training wall time {$end - $start:.1f} s')" | tee "$OUT/times.txt"
python3 -m reslab report "$SWEEP" > "$OUT/report.log" 2>&1
if [ "$WEIGHTS" = 1 ]; then
  python3 - "$SWEEP" <<'PY'
import sys, pathlib, torch
for ckpt in pathlib.Path(sys.argv[1]).glob("*/checkpoints/last.ckpt"):
    full = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({k: full[k] for k in ("state_dict", "global_step", "epoch", "reslab_identity")}, ckpt)
PY
  find "$SWEEP" -name 'step*.ckpt' -delete
  tar czf - -C "$(dirname "$SWEEP")" "$(basename "$SWEEP")" | split -b 15M - "$OUT/sweep_with_weights.tgz.part"
  ls -la "$OUT"
  exit 0
fi
[ "$ANALYSES" = 1 ] || exit 0
for analysis in "lesion --images 0" "landscape --images 1000 --points 41 --grid 21" \
  "shattered --pairs 8 --points 128" "paths --images 128 --samples 10"; do
  a_start=$(date +%s.%N)
  # shellcheck disable=SC2086  # the options are split on purpose
  timeout "${ANALYSIS_DEADLINE:-75}" python3 -m reslab analyze $analysis "$SWEEP" --device cuda >> "$OUT/analyze.log" 2>&1
  echo "$analysis: exit $?, $(python3 -c "print(f'{$(date +%s.%N) - $a_start:.1f}')") s" | tee -a "$OUT/times.txt"
done
python3 -m reslab report "$SWEEP" >> "$OUT/report.log" 2>&1
tar czf "$OUT/sweep.tgz" --exclude='checkpoints' --exclude='events.out.tfevents.*' \
  -C "$(dirname "$SWEEP")" "$(basename "$SWEEP")"
(cd "$(dirname "$SWEEP")" && find "$(basename "$SWEEP")" -name 'events.out.tfevents.*' -print0 \
  | tar czf "$OUT/events.tgz" --null -T -)
ls -la "$OUT"
