#!/usr/bin/env bash
# The test cluster's own timings (tools/slurm_cluster.sh): start, stop, and how long a requeued job waits before it
# runs again, over 5 requeues. Root only (the daemons run as root). Writes timings.txt beside this script.
#   bash experiments/slurm_cluster/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=$(mktemp -d /tmp/reslab-slurm-XXXXXX)
chmod 755 "$state"  # munged refuses a socket below a folder not everyone may enter
trap 'bash "$root/tools/slurm_cluster.sh" stop "$state" >/dev/null; rm -rf "$state"' EXIT
out="$here/timings.txt"
{
  echo "# $(date -u +%F) $(git -C "$root" rev-parse --short HEAD) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "# $(sinfo --version 2>/dev/null || slurmctld -V)"
  t0=$(date +%s%N)
  bash "$root/tools/slurm_cluster.sh" start "$state" >/dev/null
  echo "start_ms $(( ($(date +%s%N) - t0) / 1000000 ))"
  export SLURM_CONF=$state/slurm.conf
  job=$(sbatch --parsable --requeue -o /dev/null --wrap 'sleep 600')
  until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do sleep 0.1; done
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    scontrol requeue "$job"
    sleep 0.5
    until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do sleep 0.1; done
    echo "requeue_to_running_ms $(( ($(date +%s%N) - t0) / 1000000 ))"
  done
  scancel "$job"
  t0=$(date +%s%N)
  bash "$root/tools/slurm_cluster.sh" stop "$state" >/dev/null
  echo "stop_ms $(( ($(date +%s%N) - t0) / 1000000 ))"
} | tee "$out"
