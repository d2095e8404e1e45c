#!/usr/bin/env bash
# A longer-budget degradation study on one GPU: Fashion-MNIST at its native 28x28, plain and residual nets, STEPS
# iterations each (default 6000: about 14 epochs of the 54k training images), the paper's optimiser (SGD 0.1,
# momentum 0.9, wd 1e-4, batch 128, lr /10 at 50% and 75% of the run; no warm-up at any depth), no augmentation.
# ARGS picks the jobs (default: depths 20 and 56, both arms, seeds 0 and 1); all N_JOBS jobs share the GPU at once
# through Hydra's joblib launcher. The recorded study is the union of three such sweeps (see README.md here).
# Not the paper's schedule (64k iterations on CIFAR-10): a reduced run on another dataset, labelled as such.
#
# Run from the repository root on a machine with a GPU, Hydra's wheels on PYTHONPATH and Fashion-MNIST in data/:
#   bash experiments/degradation_fashion28_gpu/run.sh            # writes $OUT (default: gpu_out)
# The committed study is these three launches (the second and third at the same time, each with its own OUT and
# SWEEP), its 14 job folders then put into one sweep/ here by the retention rule (experiments/README.md):
#   bash experiments/degradation_fashion28_gpu/run.sh
#   ARGS="depth=20,56 model=plain,residual seed=2 runtime.threads=2" N_JOBS=4 bash experiments/degradation_fashion28_gpu/run.sh
#   ARGS="depth=110 model=plain,residual seed=0 runtime.threads=2" N_JOBS=2 bash experiments/degradation_fashion28_gpu/run.sh
#   # back here, each $OUT's sweep.tgz and events.tgz unpacked into one folder <all>:
#   .venv/bin/python experiments/retention.py copy <all> experiments/degradation_fashion28_gpu/sweep
#   .venv/bin/reslab report experiments/degradation_fashion28_gpu/sweep
# A deadline (DEADLINE seconds, default 470) stops the sweep with SIGTERM: jobs checkpoint and the report says
# which did not finish; rerunning the same command with hydra.sweep.dir=<that dir> completes them.
set -u -o pipefail
OUT=${OUT:-gpu_out}
STEPS=${STEPS:-6000}
DEADLINE=${DEADLINE:-470}
SWEEP=${SWEEP:-/tmp/reslab_fashion28}
ARGS=${ARGS:-depth=20,56 model=plain,residual seed=0,1}
N_JOBS=${N_JOBS:-8}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/machine.txt"
python3 -c "import torch, lightning, os; print('torch', torch.__version__, 'lightning', lightning.__version__, \
torch.cuda.get_device_name(), 'cpus', os.cpu_count())" | tee -a "$OUT/machine.txt"
git rev-parse HEAD 2>/dev/null | tee -a "$OUT/machine.txt"

# shellcheck disable=SC2206  # ARGS is split into overrides on purpose
CMD=(python3 -m reslab -m $ARGS
  dataset.downsample=1 data_dir=data
  trainer.max_steps=$STEPS trainer.val_check_interval=1000 trainer.limit_val_batches=1.0 trainer.log_every_n_steps=50
  runtime.progress=log runtime.progress_every=10
  callbacks.checkpoint.every_n_train_steps=1000
  callbacks.grad_norms.every_n_steps=50 callbacks.grad_norms.figure_every_n_steps=2000
  callbacks.responses.every_n_steps=500 callbacks.responses.figure_every_n_steps=2000
  hydra/launcher=joblib hydra.launcher.n_jobs=$N_JOBS hydra.sweep.dir=$SWEEP)
echo "${CMD[*]}" | tee "$OUT/command.txt"
start=$(date +%s.%N)
timeout --signal=TERM --kill-after=60 "$DEADLINE" "${CMD[@]}" > "$OUT/sweep.log" 2>&1
rc=$?
end=$(date +%s.%N)
python3 -c "print(f'exit status $rc, wall time {$end - $start:.1f} s')" | tee -a "$OUT/command.txt"
grep -E "train error|did not finish|failed|stopped by" "$OUT/sweep.log" | tail -20
cat "$SWEEP/summary.md" 2>/dev/null | head -30
# Everything but the checkpoints, in two files (the device returns few files, each at most 16 MiB): the records,
# series, summaries and figures; and TensorBoard's event files.
tar czf "$OUT/sweep.tgz" --exclude='checkpoints' --exclude='events.out.tfevents.*' \
  -C "$(dirname "$SWEEP")" "$(basename "$SWEEP")"
(cd "$(dirname "$SWEEP")" && find "$(basename "$SWEEP")" -name 'events.out.tfevents.*' -print0 \
  | tar czf "$OUT/events.tgz" --null -T -)
ls -la "$OUT"
